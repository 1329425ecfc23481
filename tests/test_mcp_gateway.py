"""The MCP gateway (issue 15, item 6): `/mcp/<server>` in front of a real MCP server, driven by the official SDK.

The upstream is an `MCPServer` of the `mcp` SDK over streamable HTTP on a free port; the client is
the SDK's `Client` pointed at the proxy. Misbehaving upstreams (a hang, invalid JSON-RPC, 500
tools) are raw ASGI apps or the SDK server with many tools.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client

from guardproxy.auth.keys import NewKey, SQLiteKeyStore
from guardproxy.mcp_gateway.jsonrpc import (
    BLOCKED,
    REFUSED,
    TOO_MANY_TOOLS,
    TOOL_NOT_ALLOWED,
    UPSTREAM_INVALID,
    UPSTREAM_UNAVAILABLE,
)
from tests.fake_upstream import FakeUpstream
from tests.mcp_servers import ATTACK, EMAIL, ServerThread, ToolServer, fixed_answer_app, hanging_app
from tests.policies import write_policy
from tests.proxy_harness import ProxyServer


def _policy(directory: Path, upstream: FakeUpstream, servers: dict[str, str], extra: str = "") -> Path:
    lines = ["mcp_servers:"]
    for name, spec in servers.items():
        lines.append(f"  {name}: {spec}")
    path = write_policy(directory, upstream.base_url, extra="\n".join(lines) + "\n" + extra)
    text = path.read_text().replace(
        "roles: [user, assistant, tool, tool_call]", "roles: [user, assistant, tool, tool_call, tool_definition]"
    )
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, Any]]:
    """Every upstream MCP server of the module: the SDK tool server, a hanging one, a broken one, a huge list."""
    release = threading.Event()
    tools, many = ToolServer(), ToolServer(extra_tools=500)
    with contextlib.ExitStack() as stack:
        urls = {
            "tools": stack.enter_context(ServerThread(tools.app)).url,
            "many": stack.enter_context(ServerThread(many.app)).url,
            "hangs": stack.enter_context(ServerThread(hanging_app(release))).url,
            "broken": stack.enter_context(ServerThread(fixed_answer_app(b'{"not": "json-rpc"}'))).url,
            "garbage": stack.enter_context(ServerThread(fixed_answer_app(b"<html>oops"))).url,
        }
        yield {"urls": urls, "tools": tools}
        release.set()


@pytest.fixture(scope="module")
def proxy(
    upstreams: dict[str, Any], upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyServer]:
    urls = upstreams["urls"]
    servers = {
        "tools": f"{{url: {urls['tools']}, deny: ['delete_*']}}",
        "many": f"{{url: {urls['many']}}}",
        "hangs": f"{{url: {urls['hangs']}, timeout_s: 0.5}}",
        "broken": f"{{url: {urls['broken']}}}",
        "garbage": f"{{url: {urls['garbage']}}}",
    }
    with ProxyServer(_policy(tmp_path_factory.mktemp("mcp"), upstream_server, servers)) as server:
        yield server


@contextlib.asynccontextmanager
async def connect(
    proxy: ProxyServer, server: str, key: str | None = None, *, legacy: bool = False
) -> AsyncIterator[Client]:
    """The SDK's client through the proxy; `legacy`: the initialize handshake with a session id (pre-2026 servers)."""
    headers = {"authorization": f"Bearer {key}"} if key else {}
    url = f"{proxy.url}/mcp/{server}"
    async with (
        httpx2.AsyncClient(headers=headers, timeout=10) as http,
        Client(streamable_http_client(url, http_client=http), mode="legacy" if legacy else "auto") as client,
    ):
        yield client


def _text(result: Any) -> str:
    return "".join(part.text for part in result.content if part.type == "text")


def _audit_rows(db: Path, endpoint: str) -> list[tuple[str, str, str, str]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return conn.execute(
            "SELECT outcome, model, input_text, output_text FROM audit_records WHERE endpoint = ? ORDER BY ts",
            (endpoint,),
        ).fetchall()


# ---------------------------------------------------------------- tools/list


async def test_tool_list_drops_poisoned_and_denied_tools(proxy: ProxyServer) -> None:
    async with connect(proxy, "tools") as client:
        listed = await client.list_tools()
    names = {tool.name for tool in listed.tools}
    assert {"echo", "contact", "fetch_page", "admin_reset", "chart"} <= names
    assert "poisoned" not in names  # its description carries an injection (role tool_definition)
    assert "delete_everything" not in names  # the server's deny list
    assert ATTACK not in json.dumps([t.model_dump(mode="json") for t in listed.tools])


# ---------------------------------------------------------------- tools/call


async def test_arguments_are_anonymised_for_the_server_and_restored_for_the_client(
    proxy: ProxyServer, upstreams: dict[str, Any]
) -> None:
    tools: ToolServer = upstreams["tools"]
    tools.received.clear()
    async with connect(proxy, "tools") as client:
        result = await client.call_tool("echo", {"text": f"mail {EMAIL}"})
    assert tools.received and EMAIL not in tools.received[0] and "[EMAIL_ADDRESS_" in tools.received[0]
    assert _text(result) == f"echo: mail {EMAIL}"


async def test_pii_in_a_result_is_redacted(proxy: ProxyServer) -> None:
    async with connect(proxy, "tools") as client:
        result = await client.call_tool("contact", {})
    assert _text(result) == "Write to [EMAIL_ADDRESS] for help."
    assert EMAIL not in json.dumps(result.model_dump(mode="json"))


async def test_an_injection_in_a_result_is_a_json_rpc_error(proxy: ProxyServer) -> None:
    async with connect(proxy, "tools") as client:
        with pytest.raises(MCPError) as info:
            await client.call_tool("fetch_page", {"url": "https://example.com"})
    assert info.value.code == BLOCKED
    assert "blocked by policy" in info.value.error.message and ATTACK not in info.value.error.message


async def test_an_injection_in_the_arguments_never_reaches_the_server(
    proxy: ProxyServer, upstreams: dict[str, Any]
) -> None:
    tools: ToolServer = upstreams["tools"]
    tools.received.clear()
    async with connect(proxy, "tools") as client:
        with pytest.raises(MCPError) as info:
            await client.call_tool("echo", {"text": ATTACK})
    assert info.value.code == BLOCKED
    assert tools.received == []


async def test_a_denied_tool_cannot_be_called(proxy: ProxyServer) -> None:
    async with connect(proxy, "tools") as client:
        with pytest.raises(MCPError) as info:
            await client.call_tool("delete_everything", {})
    assert info.value.code == TOOL_NOT_ALLOWED


async def test_an_image_result_is_unscanned_and_blocked_by_default(proxy: ProxyServer) -> None:
    async with connect(proxy, "tools") as client:
        with pytest.raises(MCPError) as info:
            await client.call_tool("chart", {})
    assert info.value.code == BLOCKED


async def test_each_message_is_audited_without_personal_data(proxy: ProxyServer) -> None:
    async with connect(proxy, "tools") as client:
        await client.call_tool("echo", {"text": f"audit {EMAIL}"})
    db = proxy.policy_path.parent / "audit.db"
    rows: list[tuple[str, str, str, str]] = []
    deadline = time.monotonic() + 5
    while not any(model == "tools/call:echo" and "audit" in inp for _, model, inp, _ in rows):
        assert time.monotonic() < deadline, rows
        time.sleep(0.05)
        rows = _audit_rows(db, "mcp/tools")
    [(outcome, _, input_text, output_text)] = [r for r in rows if r[1] == "tools/call:echo" and "audit" in r[2]]
    assert outcome == "allowed"
    assert EMAIL not in input_text and EMAIL not in output_text


async def test_the_legacy_handshake_keeps_its_session_and_event_stream_answers(
    proxy: ProxyServer, upstreams: dict[str, Any]
) -> None:
    """initialize + `mcp-session-id` + answers as text/event-stream: the transport of pre-2026 servers."""
    tools: ToolServer = upstreams["tools"]
    tools.received.clear()
    async with connect(proxy, "tools", legacy=True) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        result = await client.call_tool("echo", {"text": f"legacy {EMAIL}"})
        with pytest.raises(MCPError) as info:
            await client.call_tool("fetch_page", {"url": "https://example.com"})
    assert "echo" in names and "poisoned" not in names
    assert _text(result) == f"echo: legacy {EMAIL}"
    assert EMAIL not in tools.received[0]
    assert info.value.code == BLOCKED


# ---------------------------------------------------------------- per key / profile


async def test_keys_profiles_and_rate_limits_apply(
    upstreams: dict[str, Any], upstream_server: FakeUpstream, tmp_path: Path
) -> None:
    keys_db = tmp_path / "keys.db"
    extra = (
        f"auth: {{mode: keys, keys_path: {keys_db}, cache_ttl_s: 0}}\n"
        "profiles:\n  limited:\n    mcp_tools:\n      tools: {allow: [echo, contact]}\n"
    )
    policy = _policy(tmp_path, upstream_server, {"tools": f"{{url: {upstreams['urls']['tools']}}}"}, extra)
    store = SQLiteKeyStore(keys_db)
    try:
        limited = store.create(NewKey("tenant", profile="limited"), now=time.time())[0]
        full = store.create(NewKey("ops"), now=time.time())[0]
        one_a_minute = store.create(NewKey("slow", rpm=1), now=time.time())[0]
        ghost = store.create(NewKey("ghost", profile="no-such-profile"), now=time.time())[0]
    finally:
        store.close()
    with ProxyServer(policy) as server:
        async with connect(server, "tools", limited) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            with pytest.raises(MCPError) as info:
                await client.call_tool("admin_reset", {})
        async with connect(server, "tools", full) as client:
            full_names = {t.name for t in (await client.list_tools()).tools}
            assert _text(await client.call_tool("admin_reset", {})) == "reset"
        refused = httpx.post(f"{server.url}/mcp/tools", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
        auth = {"authorization": f"Bearer {one_a_minute}"}
        first, second = (httpx.post(f"{server.url}/mcp/tools", json=ping, headers=auth) for _ in range(2))
        unknown_profile = httpx.post(f"{server.url}/mcp/tools", json=ping, headers={"authorization": f"Bearer {ghost}"})
    assert names == {"echo", "contact"}
    assert info.value.code == TOOL_NOT_ALLOWED
    assert "admin_reset" in full_names
    assert refused.status_code == 401 and refused.json()["error"]["data"]["code"] == "invalid_api_key"
    assert first.status_code == 200, first.text  # relayed (the server may answer an error of its own)
    assert second.status_code == 429 and second.json()["error"]["data"]["code"] == "rate_limit_exceeded"
    assert unknown_profile.status_code == 403  # fails closed, never the default profile's lists
    assert unknown_profile.json()["error"]["data"]["code"] == "profile_not_found"


# ---------------------------------------------------------------- bad input


async def _connect_error(proxy: ProxyServer, server: str) -> MCPError:
    """The error the SDK raises while connecting (it comes wrapped in its task group's ExceptionGroup)."""
    try:
        async with connect(proxy, server) as client:
            await client.list_tools()
    except MCPError as exc:
        return exc
    except BaseExceptionGroup as group:
        found = _first_mcp_error(group)
        assert found is not None, group
        return found
    raise AssertionError(f"connecting to {server} succeeded")


def _first_mcp_error(error: BaseException) -> MCPError | None:
    if isinstance(error, MCPError):
        return error
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            if (found := _first_mcp_error(inner)) is not None:
                return found
    return None


async def test_a_server_that_hangs_is_a_json_rpc_error(proxy: ProxyServer) -> None:
    error = await _connect_error(proxy, "hangs")
    assert error.code == UPSTREAM_UNAVAILABLE
    assert "did not answer within 0.5 s" in error.error.message


@pytest.mark.parametrize("server", ["broken", "garbage"])
async def test_a_server_that_sends_invalid_json_rpc_is_a_json_rpc_error(proxy: ProxyServer, server: str) -> None:
    error = await _connect_error(proxy, server)
    assert error.code == UPSTREAM_INVALID
    assert "oops" not in error.error.message and 'json-rpc"' not in json.dumps(error.error.data)


async def test_a_list_of_500_tools_is_refused(proxy: ProxyServer) -> None:
    async with connect(proxy, "many") as client:
        with pytest.raises(MCPError) as info:
            await client.list_tools()
    assert info.value.code == TOO_MANY_TOOLS
    assert "508 tools" in info.value.error.message


async def test_texts_too_large_to_check_are_refused_both_ways(proxy: ProxyServer, upstreams: dict[str, Any]) -> None:
    tools: ToolServer = upstreams["tools"]
    tools.received.clear()
    async with connect(proxy, "tools") as client:
        with pytest.raises(MCPError) as answer:
            await client.call_tool("report", {})
        with pytest.raises(MCPError) as request:
            await client.call_tool("echo", {"text": "x" * 40_000})
    assert answer.value.code == UPSTREAM_INVALID and "too large to check" in answer.value.error.message
    assert request.value.code == REFUSED and request.value.error.data == {"status": 413, "code": "request_too_large"}
    assert tools.received == []


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, -32700),
        (b'[{"jsonrpc": "2.0", "id": 1, "method": "ping"}]', 400, -32600),
        (b'{"jsonrpc": "2.0", "id": 7, "method": "resources/list"}', 200, -32601),
        (b'{"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": {"arguments": {}}}', 200, -32600),
    ],
    ids=["not_json", "batch", "unrelayed_method", "call_without_name"],
)
def test_bad_client_messages_get_json_rpc_errors(proxy: ProxyServer, body: bytes, status: int, code: int) -> None:
    answer = proxy.post_raw("/mcp/tools", body)
    assert answer.status_code == status
    assert answer.json()["jsonrpc"] == "2.0" and answer.json()["error"]["code"] == code


def test_an_unknown_server_is_a_json_rpc_error(proxy: ProxyServer) -> None:
    answer = proxy.post_raw("/mcp/nowhere", b'{"jsonrpc": "2.0", "id": 1, "method": "ping"}')
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == -32600 and answer.json()["id"] == 1
