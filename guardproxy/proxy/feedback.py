"""`POST /v1/feedback`: a client or reviewer labels a logged decision (the sidecar trainer's signal).

    {"request_id": "...", "label": "false_positive" | "false_negative" | "correct",
     "note": "...", "stage": "input" | "output", "step": "input.0.injection"}   -> 201 {"id", "request_id", "label"}

The actor is the `x-guardproxy-user` header when present, else a fingerprint of the credential the
gateway also puts in audit records (`key:` + 12 hex of sha256 of the Authorization header, so the two
can be joined), else `anonymous`. The header is taken as is (deploy behind an auth layer that sets it),
except that one carrying personal data (an e-mail address as a user name) is kept as `user:` + 12 hex of
its sha256: the same person's feedback still joins up, and the store holds no PII.

That is `auth.mode: none`. With `keys`, only reviewer and admin keys may post (others get 401/403 before
the body is read), the actor is the key's name, and the header is honoured because such a key vouches for it.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.handlers import HTTPRouteHandler

from guardproxy.audit.feedback import FEEDBACK_LABELS, Feedback
from guardproxy.audit.records import UnknownRequest
from guardproxy.audit.sink import AuditSink
from guardproxy.auth.access import Access
from guardproxy.auth.guard import Caller
from guardproxy.auth.keys import Role
from guardproxy.detectors.pii_regex import find_pii
from guardproxy.errors import GuardproxyError, InvalidRequest
from guardproxy.proxy.gateway import new_request_id
from guardproxy.proxy.request_body import read_body

AnyRequest = Request[Any, Any, Any]
USER_HEADER = "x-guardproxy-user"
MAX_BODY_BYTES = 64 * 1024
MAX_NOTE_CHARS = 4000
MAX_NAME_CHARS = 200
# A client may send feedback the moment its answer arrives, before the audit writer has stored the
# record (it batches for up to ~50 ms): wait at most this long for what was queued to be written.
SETTLE_TIMEOUT_S = 2.0
_FIELDS = frozenset({"request_id", "label", "note", "stage", "step"})
_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


class RequestNotFound(GuardproxyError):
    """Feedback names a request id the audit log does not hold."""

    status = 404
    type = "invalid_request_error"
    code = "request_not_found"


def actor_of(authorization: str | None, user: str | None, caller: Caller | None = None) -> str:
    """Who gave the feedback, without ever keeping a credential. With keys on, the key's name, or the user
    header when a reviewer/admin key vouches for it (a client key cannot post feedback at all)."""
    if caller is not None and not caller.key.role.allows(Role.REVIEWER):
        return caller.key.name
    if user and user.strip():
        name = user.strip()[:MAX_NAME_CHARS]
        return "user:" + hashlib.sha256(name.encode()).hexdigest()[:12] if find_pii(name) else name
    if caller is not None:
        return caller.key.name
    if authorization:
        return "key:" + hashlib.sha256(authorization.encode()).hexdigest()[:12]
    return "anonymous"


def parse_feedback(raw: bytes, *, actor: str, now: float) -> Feedback:
    """The request body as a `Feedback`, or InvalidRequest naming the field that is wrong."""
    try:
        body = _decode(raw)
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"We could not parse the JSON body of your request: {exc}.") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise InvalidRequest(f"Unknown field(s): {', '.join(unknown)}.", param=unknown[0])
    request_id = body.get("request_id")
    if not isinstance(request_id, str) or not request_id.strip():
        raise InvalidRequest("'request_id' is required: the x-guardproxy-request-id of a response.", param="request_id")
    label = next((known for known in FEEDBACK_LABELS if known == body.get("label")), None)
    if label is None:
        raise InvalidRequest(
            f"'label' must be one of {', '.join(FEEDBACK_LABELS)}, got {body.get('label')!r}.", param="label"
        )
    stage = body.get("stage")
    if stage not in (None, "input", "output"):
        raise InvalidRequest(f"'stage' must be 'input', 'output' or absent, got {stage!r}.", param="stage")
    note = _optional_str(body, "note", MAX_NOTE_CHARS) or ""
    return Feedback(
        request_id=request_id.strip(),
        label=label,
        actor=actor,
        ts=now,
        note=note,
        stage="input" if stage == "input" else "output" if stage == "output" else None,
        step=_optional_str(body, "step", MAX_NAME_CHARS),
    )


def _optional_str(body: dict[str, Any], name: str, limit: int) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"'{name}' must be a string.", param=name)
    if len(value) > limit:
        raise InvalidRequest(f"'{name}' is longer than {limit} characters.", param=name)
    return value


async def store_feedback(sink: AuditSink, fb: Feedback) -> int:
    """Scrub and write off the event loop; on an unknown id, let records queued before now reach the
    store, then retry."""
    try:
        return await asyncio.to_thread(sink.add_feedback, fb)
    except UnknownRequest:
        if not await _settle(sink):
            raise
    return await asyncio.to_thread(sink.add_feedback, fb)


async def _settle(sink: AuditSink) -> bool:
    """Wait until every record accepted before this call is written (or given up). False: nothing was pending."""
    stats = sink.stats()
    target = stats.accepted
    if stats.written + stats.quarantined + stats.abandoned >= target:
        return False
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while time.monotonic() < deadline:
        await asyncio.sleep(0.01)
        stats = sink.stats()
        if stats.written + stats.quarantined + stats.abandoned >= target:
            break
    return True


def feedback_route(
    sink: AuditSink, access: Access, *, request_id_header: str, body_read_timeout_s: Callable[[], float]
) -> HTTPRouteHandler:
    """The route handler, bound to the app's audit sink (no module-level state). Its body has the deadline of a
    model request, `body_read_timeout_s()` (the current policy's), and a limit of its own."""

    @post("/v1/feedback", status_code=201)
    async def feedback(request: AnyRequest) -> Response[bytes]:
        # This call's own id (for its response and error body), not the id being labelled.
        request.state.request_id = new_request_id()
        authorization = request.headers.get("authorization")
        # Before the body is read: feedback trains the next guard model, so an unknown caller is not heard at all.
        caller = access.check(authorization, Role.REVIEWER)
        raw = await read_body(request, MAX_BODY_BYTES, body_read_timeout_s(), what="The feedback body")
        actor = actor_of(authorization, request.headers.get(USER_HEADER), caller)
        fb = parse_feedback(raw, actor=actor, now=time.time())
        try:
            feedback_id = await store_feedback(sink, fb)
        except UnknownRequest:
            raise RequestNotFound(
                f"No audit record has the request id '{fb.request_id}'.", param="request_id"
            ) from None
        body = {"id": feedback_id, "object": "feedback", "request_id": fb.request_id, "label": fb.label}
        headers = {request_id_header: request.state.request_id}
        return Response(_encode(body), status_code=201, media_type="application/json", headers=headers)

    return feedback
