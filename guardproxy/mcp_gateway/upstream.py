"""Talking to one upstream MCP server over streamable HTTP (aiohttp, the proxy's upstream client).

A POST is answered with `application/json` (one message) or `text/event-stream` (server
notifications and requests, then the reply). Only the reply to the client's request is kept:
notifications and server-initiated requests are not relayed, since they would reach the client
unchecked. Whatever goes wrong (unreachable, a hang, an HTTP error, invalid JSON-RPC, an answer too
large) becomes an `McpError`; the server's own error text is not passed on unchecked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp
import msgspec
from yarl import URL

from guardproxy.backends.http_client import UpstreamSession, build_headers, describe, env_proxy, release
from guardproxy.backends.sse import SSEDecoder
from guardproxy.core import JSON
from guardproxy.mcp_gateway.jsonrpc import UPSTREAM_INVALID, UPSTREAM_UNAVAILABLE, McpError, RequestId
from guardproxy.policies.schema import McpServer

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode
# The most a server may send for one reply: enough for large tool results, bounded so a runaway
# server cannot fill the proxy's memory.
MAX_REPLY_BYTES = 8 * 1024 * 1024
# Headers of the MCP transport passed between client and server in both directions.
SESSION_HEADER = "mcp-session-id"
# Passed from the client to the server: routing headers that repeat the body's method and tool name (the
# 2026-07-28 transport checks them). `Mcp-Param-*` headers mirror argument values, which would pass
# unchecked: they are not forwarded, so a tool that needs them fails with the server's own error.
CLIENT_HEADERS = (SESSION_HEADER, "mcp-protocol-version", "mcp-method", "mcp-name")


@dataclass(frozen=True, slots=True)
class UpstreamReply:
    status: int
    message: JSON | None  # the reply to the request; None for an accepted notification (202)
    session_id: str | None


class McpUpstreams:
    """One keep-alive pool per server URL, made on first use and closed with the app."""

    def __init__(self) -> None:
        self._sessions: dict[str, UpstreamSession] = {}

    async def aclose(self) -> None:
        sessions, self._sessions = self._sessions, {}
        for session in sessions.values():
            await session.aclose()

    async def send(
        self, name: str, server: McpServer, message: JSON, transport_headers: Mapping[str, str]
    ) -> UpstreamReply:
        try:
            async with asyncio.timeout(server.timeout_s):
                return await self._send(name, server, message, transport_headers)
        except TimeoutError:
            raise _unavailable(name, f"did not answer within {server.timeout_s} s") from None
        except aiohttp.ClientError as exc:
            raise _unavailable(name, f"could not be reached ({describe(exc)})") from None

    async def _send(
        self, name: str, server: McpServer, message: JSON, transport_headers: Mapping[str, str]
    ) -> UpstreamReply:
        url = URL(server.url)
        session = self._session(server.url, server.timeout_s, url)
        headers = build_headers(
            {"content-type": "application/json", "accept": "application/json, text/event-stream"},
            server.headers,
            transport_headers,
        )
        response = await session.post(url, _encode(message), headers)
        try:
            session_id = response.headers.get(SESSION_HEADER)
            if response.status == 202:
                return UpstreamReply(202, None, session_id)
            if response.status >= 400:
                raise _unavailable(name, f"answered HTTP {response.status}", status=response.status)
            wanted = message.get("id")
            if response.content_type == "text/event-stream":
                return UpstreamReply(response.status, await _reply_from_events(name, response, wanted), session_id)
            return UpstreamReply(response.status, _reply(name, await _read_limited(name, response), wanted), session_id)
        finally:
            await release(response)

    def _session(self, key: str, timeout_s: float, url: URL) -> UpstreamSession:
        session = self._sessions.get(key)
        if session is None:
            session = UpstreamSession(
                max_connections=32,
                keepalive_expiry_s=30.0,
                connect_timeout_s=min(timeout_s, 5.0),
                read_timeout_s=timeout_s,
                pool_timeout_s=timeout_s,
                proxy=env_proxy(url),
            )
            self._sessions[key] = session
        return session


async def _read_limited(name: str, response: aiohttp.ClientResponse) -> bytes:
    parts: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > MAX_REPLY_BYTES:
            raise _invalid(name, f"sent more than {MAX_REPLY_BYTES} bytes")
        parts.append(chunk)
    return b"".join(parts)


async def _reply_from_events(name: str, response: aiohttp.ClientResponse, wanted: RequestId) -> JSON:
    decoder = SSEDecoder()
    size = 0
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > MAX_REPLY_BYTES:
            raise _invalid(name, f"sent more than {MAX_REPLY_BYTES} bytes")
        for event in decoder.feed(chunk):
            if event.event not in ("", "message") or not event.data.strip():
                continue
            found = _reply(name, event.data, wanted, skip_others=True)
            if found is not None:
                return found
    for event in decoder.flush():
        found = _reply(name, event.data, wanted, skip_others=True)
        if found is not None:
            return found
    raise _invalid(name, "ended its event stream without a reply")


def _reply(name: str, raw: bytes, wanted: RequestId, *, skip_others: bool = False) -> JSON | None:
    """The JSON-RPC reply to request `wanted`; server notifications and requests are skipped in a stream."""
    try:
        message = _decode(raw)
    except msgspec.DecodeError:
        raise _invalid(name, "sent a body that is not JSON") from None
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        raise _invalid(name, "sent something that is not a JSON-RPC 2.0 message")
    if "method" in message and skip_others:
        return None  # a notification (progress, log) or a server request: not relayed
    if message.get("id") != wanted or ("result" in message) == ("error" in message):
        raise _invalid(name, "sent a reply that does not answer the request")
    if "result" in message and not isinstance(message["result"], dict):
        raise _invalid(name, "sent a result that is not an object")
    return message


def _unavailable(name: str, what: str, *, status: int | None = None) -> McpError:
    data: JSON = {"code": "upstream_unavailable", "server": name}
    if status is not None:
        data["upstream_status"] = status
    return McpError(UPSTREAM_UNAVAILABLE, f"The MCP server {name!r} {what}.", data=data)


def _invalid(name: str, what: str) -> McpError:
    return McpError(
        UPSTREAM_INVALID, f"The MCP server {name!r} {what}.", data={"code": "upstream_invalid", "server": name}
    )
