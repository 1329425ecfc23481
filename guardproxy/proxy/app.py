"""`create_app(settings) -> Litestar`: the OpenAI-compatible routes around the gateway.

Everything the app needs is built here and captured by the handlers; nothing lives at module
level, so several apps (tests, benchmarks) can run in one process.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import msgspec
import structlog
from litestar import Litestar, Request, Response, get, post
from litestar.exceptions import HTTPException
from litestar.response import Stream
from prometheus_client import CONTENT_TYPE_LATEST

from guardproxy.audit.store import open_store
from guardproxy.core import JSON
from guardproxy.detectors.model_files import detector_model_dirs
from guardproxy.detectors.pii_regex import scrub_pii
from guardproxy.errors import BodyTooLarge, GuardproxyError, InvalidRequest, RequestReadTimeout
from guardproxy.policies.loader import load_policy, policy_fingerprint
from guardproxy.policies.schema import Policy
from guardproxy.policies.watcher import PolicyWatcher
from guardproxy.proxy.audit_sink import AuditSink
from guardproxy.proxy.feedback import feedback_route
from guardproxy.proxy.gateway import Gateway, JSONResult, client_label, new_request_id
from guardproxy.proxy.metrics import Metrics
from guardproxy.proxy.runtime import RuntimeHolder, build_runtime
from guardproxy.proxy.settings import Settings
from guardproxy.proxy.texts import Kind

log = structlog.get_logger(__name__)
AnyRequest = Request[Any, Any, Any]
REQUEST_ID_HEADER = "x-guardproxy-request-id"
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


def create_app(settings: Settings) -> Litestar:
    policy = load_policy(settings.policy_path)
    holder = RuntimeHolder(build_runtime(policy))
    store = open_store(policy.audit.path)
    sink = AuditSink(
        store,
        queue_size=policy.audit.queue_size,
        on_full=policy.audit.on_full,
        scrub=None if policy.audit.store_raw else scrub_pii,
    )
    metrics = Metrics()
    gateway = Gateway(holder, sink, metrics, preferences=store)  # one store for records, feedback, triples
    state = {"fingerprint": policy_fingerprint(policy)}

    async def apply_policy(new: Policy) -> None:
        runtime = await asyncio.to_thread(build_runtime, new)
        holder.swap(runtime)
        state["fingerprint"] = policy_fingerprint(new)
        metrics.policy_reloads.labels("applied").inc()
        log.info("policy_reloaded", path=str(settings.policy_path), fingerprint=state["fingerprint"])

    async def serve(kind: Kind, request: AnyRequest) -> Response[bytes] | Stream:
        request_id = new_request_id()
        request.state.request_id = request_id
        limits = holder.current.policy.proxy
        raw = await _read_body(request, limits.max_body_bytes, limits.body_read_timeout_s)
        try:
            body = _decode(raw)
        except msgspec.DecodeError as exc:
            raise InvalidRequest(f"We could not parse the JSON body of your request: {exc}.") from None
        host = request.client.host if request.client else None
        result = await gateway.handle(
            kind, body, request_id=request_id, client=client_label(host, request.headers.get("authorization"))
        )
        headers = {REQUEST_ID_HEADER: request_id}
        if isinstance(result, JSONResult):
            return Response(
                _encode(result.body), status_code=result.status, media_type="application/json", headers=headers
            )
        return Stream(result.chunks, media_type="text/event-stream", headers={**headers, "cache-control": "no-cache"})

    @post("/v1/chat/completions", status_code=200)
    async def chat_completions(request: AnyRequest) -> Response[bytes] | Stream:
        return await serve("chat", request)

    @post("/v1/completions", status_code=200)
    async def completions(request: AnyRequest) -> Response[bytes] | Stream:
        return await serve("completion", request)

    @post("/v1/embeddings", status_code=200)
    async def embeddings(request: AnyRequest) -> Response[bytes] | Stream:
        return await serve("embedding", request)

    @post("/v1/moderations", status_code=200)
    async def moderations(request: AnyRequest) -> Response[bytes] | Stream:
        return await serve("moderation", request)

    @get("/v1/models")
    async def models() -> Response[bytes]:
        data = [
            {"id": m.name, "object": "model", "created": 0, "owned_by": "guardproxy"}
            for m in holder.current.policy.models
        ]
        return _json({"object": "list", "data": data}, 200, new_request_id())

    @get("/healthz")
    async def healthz() -> Response[bytes]:
        body = {"status": "ok", "policy": state["fingerprint"], "audit_queue": sink.stats().queued}
        return _json(body, 200, new_request_id())

    @get("/metrics")
    async def prometheus() -> Response[bytes]:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        await sink.start()
        watcher_task = None
        if settings.watch_policy:
            watcher = PolicyWatcher(
                settings.policy_path,
                apply_policy,
                current=policy,
                interval_s=settings.watch_interval_s,
                on_error=lambda _message: metrics.policy_reloads.labels("failed").inc(),
                # What the serving detectors actually loaded: a promotion during start-up is still noticed.
                loaded_models=lambda: detector_model_dirs(holder.current.detectors.values()),
            )
            watcher_task = asyncio.create_task(watcher.run())
        try:
            yield
        finally:
            if watcher_task is not None:
                watcher_task.cancel()
                with suppress(asyncio.CancelledError):
                    await watcher_task
            await holder.aclose()
            await sink.aclose()

    return Litestar(
        route_handlers=[
            chat_completions,
            completions,
            embeddings,
            moderations,
            models,
            healthz,
            prometheus,
            feedback_route(store, sink, request_id_header=REQUEST_ID_HEADER),
        ],
        exception_handlers={Exception: _render_error},
        lifespan=[lifespan],
        request_max_body_size=None,
        openapi_config=None,
        logging_config=None,
    )


async def _read_body(request: AnyRequest, limit: int, timeout_s: float) -> bytes:
    """The body, or 413 beyond `limit` bytes, or 408 when it takes longer than `timeout_s` in all: a client
    trickling one byte a second would otherwise hold its connection and this handler open for as long as it likes
    (uvicorn times out idle keep-alive connections, never a request body)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"The request body is larger than this proxy's limit of {limit} bytes.")
    parts: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            async for part in request.stream():
                size += len(part)
                if size > limit:
                    raise BodyTooLarge(f"The request body is larger than this proxy's limit of {limit} bytes.")
                parts.append(part)
    except TimeoutError:
        raise RequestReadTimeout(
            f"The request body did not arrive within {timeout_s:g} s (proxy.body_read_timeout_s)."
        ) from None
    return b"".join(parts)


def _json(body: JSON, status: int, request_id: str) -> Response[bytes]:
    return Response(
        _encode(body), status_code=status, media_type="application/json", headers={REQUEST_ID_HEADER: request_id}
    )


def _render_error(request: AnyRequest, exc: Exception) -> Response[bytes]:
    """The one place every failure becomes OpenAI's `{"error": {...}}` shape."""
    if isinstance(exc, GuardproxyError):
        err = exc
    elif isinstance(exc, HTTPException):
        err = GuardproxyError(str(exc.detail))
        err.status = exc.status_code
        err.type = "invalid_request_error" if exc.status_code < 500 else "server_error"
        err.code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(exc.status_code)
    else:
        log.exception("unhandled_error", error=repr(exc))
        err = GuardproxyError("The proxy failed to handle this request.")
    request_id = getattr(request.state, "request_id", None) or new_request_id()
    return _json(err.to_body(), err.status, request_id)
