"""`/mcp/{server}`: the litestar routes of the MCP gateway (streamable HTTP, JSON answers).

Every answer is JSON-RPC, errors included (never OpenAI's error shape: MCP clients read JSON-RPC).
Server-to-client streams (GET) and session termination (DELETE) are answered 405, which the
streamable-HTTP transport allows: the gateway relays only what it can check, request by request.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgspec
from litestar import Request, Response, delete, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath

from guardproxy.auth.access import Access
from guardproxy.auth.keys import Role
from guardproxy.auth.limits import RateLimiter
from guardproxy.errors import GuardproxyError, InvalidRequest
from guardproxy.mcp_gateway.gateway import McpGateway
from guardproxy.mcp_gateway.jsonrpc import PARSE_ERROR, REFUSED, McpError, refused
from guardproxy.mcp_gateway.upstream import CLIENT_HEADERS, SESSION_HEADER
from guardproxy.proxy.gateway import client_label, new_request_id
from guardproxy.proxy.request_body import read_body

AnyRequest = Request[Any, Any, Any]
_encode = msgspec.json.Encoder().encode


def mcp_routes(
    mcp: McpGateway,
    access: Access,
    limiter: RateLimiter,
    *,
    request_id_header: str,
    decode: Callable[[bytes], Any],
) -> list[HTTPRouteHandler]:
    """`decode`: the app's JSON body decoder (its depth limit included). Each message counts against the key's
    `--rpm` like any request (tokens are not charged: no model ran)."""

    def answer(status: int, body: Any, request_id: str, session_id: str | None = None) -> Response[bytes]:
        headers = {request_id_header: request_id}
        if session_id is not None:
            headers[SESSION_HEADER] = session_id
        content = b"" if body is None else _encode(body)
        return Response(content, status_code=status, media_type="application/json", headers=headers)

    @post("/mcp/{server:str}", status_code=200)
    async def mcp_post(server: FromPath[str], request: AnyRequest) -> Response[bytes]:
        started = time.perf_counter()
        request_id = new_request_id()
        host = request.client.host if request.client else None
        authorization = request.headers.get("authorization")
        client = client_label(host, authorization)
        try:
            caller = access.check(authorization, Role.CLIENT)
            if caller is not None:
                client = f"{host or 'unknown'} key:{caller.label}"
                await limiter.admit(caller.key)
            limits = mcp.gateway.holder.current.policy.proxy
            raw = await read_body(request, limits.max_body_bytes, limits.body_read_timeout_s)
            value = _decode(decode, raw)
        except (GuardproxyError, McpError) as exc:
            err = exc if isinstance(exc, McpError) else refused(exc)
            await mcp.record_refused(request_id, server, client, err, started=started)
            return answer(err.http_status, err.body(None), request_id)
        transport = {k: v for k in CLIENT_HEADERS if (v := request.headers.get(k)) is not None}
        reply = await mcp.handle(
            server,
            value,
            request_id=request_id,
            client=client,
            profile=caller.key.profile if caller is not None else None,
            transport_headers=transport,
        )
        return answer(reply.status, reply.body, request_id, reply.session_id)

    @get("/mcp/{server:str}")
    async def mcp_get(server: FromPath[str]) -> Response[bytes]:
        return _not_allowed("Server-to-client event streams are not relayed by guardproxy's MCP gateway.")

    @delete("/mcp/{server:str}", status_code=405)
    async def mcp_delete(server: FromPath[str]) -> Response[bytes]:
        return _not_allowed("Session termination is not relayed by guardproxy's MCP gateway.")

    return [mcp_post, mcp_get, mcp_delete]


def _decode(decode: Callable[[bytes], Any], raw: bytes) -> Any:
    try:
        return decode(raw)
    except InvalidRequest as exc:
        raise McpError(PARSE_ERROR, exc.message, http_status=400) from None


def _not_allowed(message: str) -> Response[bytes]:
    body = McpError(REFUSED, message, http_status=405).body(None)
    return Response(_encode(body), status_code=405, media_type="application/json", headers={"allow": "POST"})
