"""`create_app(settings) -> Litestar`: the OpenAI-compatible routes around the gateway.

Everything the app needs is built here and captured by the handlers; nothing lives at module
level, so several apps (tests, benchmarks) can run in one process. `runtime_builder` is the seam for
test doubles: tests and benchmarks pass a builder that injects their own backends or detectors
(e.g. `functools.partial(build_runtime, backend_factory=...)` with `guardproxy.backends.fake`), and the
policy reload path uses the same builder.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import msgspec
import structlog
from litestar import Litestar, Request, Response, get, post
from litestar.background_tasks import BackgroundTask
from litestar.exceptions import HTTPException
from litestar.response import Stream
from prometheus_client import CONTENT_TYPE_LATEST

from guardproxy.audit.sink import AuditSink
from guardproxy.audit.store import open_store
from guardproxy.auth.access import Access
from guardproxy.auth.keys import Role
from guardproxy.console.routes import console_router
from guardproxy.core import JSON
from guardproxy.detectors.model_files import detector_model_dirs
from guardproxy.detectors.pii_regex import scrub_pii
from guardproxy.errors import GuardproxyError, InvalidRequest
from guardproxy.logs import ensure_logging
from guardproxy.mcp_gateway.gateway import McpGateway
from guardproxy.mcp_gateway.route import mcp_routes
from guardproxy.policies.loader import load_policy, policy_fingerprint
from guardproxy.policies.schema import Policy
from guardproxy.policies.watcher import PolicyWatcher
from guardproxy.proxy.feedback import feedback_route
from guardproxy.proxy.gateway import Api, Gateway, JSONResult, client_label, new_request_id
from guardproxy.proxy.metrics import Metrics
from guardproxy.proxy.request_body import read_body
from guardproxy.proxy.responses import handle_responses
from guardproxy.proxy.runtime import RuntimeBuilder, RuntimeHolder, build_runtime
from guardproxy.proxy.settings import Settings
from guardproxy.state import open_state
from guardproxy.state.conversation import CONVERSATION_HEADER, ConversationKey, tenant_of

log = structlog.get_logger(__name__)
AnyRequest = Request[Any, Any, Any]
REQUEST_ID_HEADER = "x-guardproxy-request-id"
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode
# Deeper bodies are refused (400) before anything walks them: a body nested 2,000 `[` deep made
# validation and the upstream encoder recurse past Python's limit (a 500; issue 10, item 7).
# OpenAI bodies need far less: a tool's JSON schema five objects deep is ~12 levels from the root.
MAX_JSON_DEPTH = 64


def create_app(settings: Settings, *, runtime_builder: RuntimeBuilder = build_runtime) -> Litestar:
    ensure_logging()
    policy = load_policy(settings.policy_path)
    holder = RuntimeHolder(runtime_builder(policy))
    store = open_store(policy.audit.store)
    sink = AuditSink(
        store,
        queue_size=policy.audit.queue_size,
        on_full=policy.audit.on_full,
        scrub=None if policy.audit.store_raw else scrub_pii,
    )
    metrics = Metrics()
    access = Access.open(lambda: holder.current.policy.auth)
    # Per-key rpm/tpm/budget (used when keys are on) and the anonymize vault: in-process, or Redis (`state.url`).
    shared = open_state(policy.state, clock=settings.clock)
    limiter = shared.limiter
    gateway = Gateway(holder, sink, metrics, shared.conversations)  # the sink scrubs and stores records
    mcp = McpGateway(gateway)  # /mcp/<server>: MCP servers of the policy's `mcp_servers:`
    state = {"fingerprint": policy_fingerprint(policy)}

    async def apply_policy(new: Policy) -> None:
        runtime = await asyncio.to_thread(runtime_builder, new)
        holder.swap(runtime)
        state["fingerprint"] = policy_fingerprint(new)
        metrics.policy_reloads.labels("applied").inc()
        log.info("policy_reloaded", path=str(settings.policy_path), fingerprint=state["fingerprint"])

    async def serve(kind: Api, request: AnyRequest) -> Response[bytes] | Stream:
        started = time.perf_counter()
        request_id = new_request_id()
        request.state.request_id = request_id
        host = request.client.host if request.client else None
        authorization = request.headers.get("authorization")
        client = client_label(host, authorization)
        charge = None
        try:
            caller = access.check(authorization, Role.CLIENT)
            if caller is not None:  # keys on: records name the key, never a hash of the header
                client = f"{host or 'unknown'} key:{caller.label}"
                request.state.ratelimit_headers = (await limiter.admit(caller.key)).headers()
                if kind != "moderation":  # answered by the policy's detectors: no upstream tokens spent
                    charge = functools.partial(limiter.charge, caller.key)
            limits = holder.current.policy.proxy
            raw = await read_body(request, limits.max_body_bytes, limits.body_read_timeout_s)
            body = _decode_body(raw)
            if kind != "moderation":  # answered by the policy's own detectors: `model` names no upstream model
                access.check_model(caller, body.get("model") if isinstance(body, dict) else None)
        except Exception as exc:
            # Refused before the gateway saw it; still a request id, so still an audit row.
            await gateway.record_rejected(request_id, kind, client, _as_guardproxy_error(exc), started=started)
            raise
        profile = caller.key.profile if caller is not None else None
        identity = caller.key.name if caller is not None else None
        tenant = tenant_of(caller.key.key_hash if caller is not None else None, authorization)
        conversation = ConversationKey(tenant, request.headers.get(CONVERSATION_HEADER))
        if kind == "responses":  # translated to chat completions and back (proxy/responses/)
            result = await handle_responses(
                gateway, body, request_id=request_id, client=client, charge=charge, profile=profile,
                identity=identity, conversation=conversation,
            )  # fmt: skip
        else:
            result = await gateway.handle(
                kind, body, request_id=request_id, client=client, charge=charge, profile=profile,
                identity=identity, conversation=conversation,
            )  # fmt: skip
        headers = {REQUEST_ID_HEADER: request_id, **getattr(request.state, "ratelimit_headers", {})}
        if isinstance(result, JSONResult):
            return Response(
                _encode(result.body), status_code=result.status, media_type="application/json", headers=headers
            )
        return Stream(
            result.chunks,
            media_type="text/event-stream",
            headers={**headers, "cache-control": "no-cache"},
            # When the client hangs up while we wait on its socket, litestar stops iterating and drops the
            # generator unclosed; its cleanup (audit record, runtime release) then waited for the garbage
            # collector, possibly past shutdown. Closing it here runs that cleanup now.
            background=BackgroundTask(result.chunks.aclose),
        )

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

    @post("/v1/responses", status_code=200)
    async def responses(request: AnyRequest) -> Response[bytes] | Stream:
        return await serve("responses", request)

    @get("/v1/models")
    async def models(request: AnyRequest) -> Response[bytes]:
        caller = access.check(request.headers.get("authorization"), Role.CLIENT)
        data = [
            {"id": m.name, "object": "model", "created": 0, "owned_by": "guardproxy"}
            for m in holder.current.policy.models
            if caller is None or caller.key.allows_model(m.name)
        ]
        return _json({"object": "list", "data": data}, 200, new_request_id())

    @get("/healthz")
    async def healthz() -> Response[bytes]:
        body = {"status": "ok", "policy": state["fingerprint"], "audit_queue": sink.stats().queued}
        return _json(body, 200, new_request_id())

    @get("/metrics")
    async def prometheus(request: AnyRequest) -> Response[bytes]:
        # With keys on, only admin keys read metrics (model names, block rates and latencies describe the
        # traffic); with `auth.mode: none` it stays open, as a scraper without credentials expects.
        access.check(request.headers.get("authorization"), Role.ADMIN)
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
            await gateway.drain()  # requests whose clients left may still be writing their records
            await mcp.aclose()
            await holder.aclose()
            await sink.aclose()
            await shared.aclose()
            access.close()

    return Litestar(
        route_handlers=[
            chat_completions,
            completions,
            embeddings,
            moderations,
            responses,
            models,
            healthz,
            prometheus,
            feedback_route(
                sink,
                access,
                request_id_header=REQUEST_ID_HEADER,
                body_read_timeout_s=lambda: holder.current.policy.proxy.body_read_timeout_s,
            ),
            console_router(  # the review console (guardproxy/console/)
                access=access,
                store=store,
                sink=sink,
                holder=holder,
                policy_path=settings.policy_path,
                store_raw=policy.audit.store_raw,
            ),
            *mcp_routes(mcp, access, limiter, request_id_header=REQUEST_ID_HEADER, decode=_decode_body),
        ],
        exception_handlers={Exception: _render_error},
        lifespan=[lifespan],
        request_max_body_size=None,
        openapi_config=None,
        logging_config=None,
    )


def _decode_body(raw: bytes) -> Any:
    try:
        body = _decode(raw)
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"We could not parse the JSON body of your request: {exc}.") from None
    except RecursionError:  # msgspec gives up near Python's recursion limit (~1,000 levels)
        raise _too_deep() from None
    if _nested_deeper_than(body, MAX_JSON_DEPTH):
        raise _too_deep()
    return body


def _too_deep() -> InvalidRequest:
    return InvalidRequest(
        f"The JSON body of your request is too deeply nested (more than {MAX_JSON_DEPTH} levels of arrays and objects)."
    )


def _nested_deeper_than(value: Any, limit: int) -> bool:
    """Iterative, so a hostile body cannot make this check itself recurse too deep."""
    stack: list[tuple[Any, int]] = [(value, 1)] if isinstance(value, (dict, list)) else []
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def _json(body: JSON, status: int, request_id: str) -> Response[bytes]:
    return Response(
        _encode(body), status_code=status, media_type="application/json", headers={REQUEST_ID_HEADER: request_id}
    )


def _as_guardproxy_error(exc: Exception) -> GuardproxyError:
    if isinstance(exc, GuardproxyError):
        return exc
    if isinstance(exc, HTTPException):
        err = GuardproxyError(str(exc.detail))
        err.status = exc.status_code
        err.type = "invalid_request_error" if exc.status_code < 500 else "server_error"
        err.code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(exc.status_code)
        return err
    return GuardproxyError("The proxy failed to handle this request.")


def _render_error(request: AnyRequest, exc: Exception) -> Response[bytes]:
    """The one place every failure becomes OpenAI's `{"error": {...}}` shape."""
    request_id = getattr(request.state, "request_id", None) or new_request_id()
    err = _as_guardproxy_error(exc)
    if not isinstance(exc, (GuardproxyError, HTTPException)):
        # The request itself (headers, body) stays out of the log: the traceback is printed without
        # locals (guardproxy/logs.py), and only the method and path are named here.
        log.error("unhandled_error", request_id=request_id, method=request.method, path=request.url.path, exc_info=exc)
    response = _json(err.to_body(), err.status, request_id)
    response.headers.update({**getattr(request.state, "ratelimit_headers", {}), **err.response_headers()})
    return response
