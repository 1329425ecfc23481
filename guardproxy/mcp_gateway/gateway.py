"""One JSON-RPC message from an MCP client: checked, forwarded, its reply checked, audited.

Framework-free (`route.py` adapts it to litestar). Texts are found by the one walker
(`proxy/walker.py`, MCP section) and checked by the caller's profile chains through the gateway's
own `check_slots`, so MCP traffic runs the same steps, roles and actions as chat:

- `tools/call` arguments: input chain, role `tool_call`; anonymised values reach the server as
  placeholders and are restored in the result the client gets.
- `tools/call` results (and a server's error text): input chain, role `tool` — what a client will
  feed its model, as it would a chat tool result; redact and anonymize both become `[LABEL]`.
- `tools/list`: each tool checked as role `tool_definition`; a tool a step blocks is left out of
  the list; tools outside the allow/deny lists are left out and cannot be called.
- `initialize`: the server's instructions and info as `tool_definition`; its capabilities are
  rebuilt to what the gateway relays (tools). Methods the gateway does not check
  (resources, prompts, completion...) are refused with "method not found".
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from guardproxy.audit.records import Outcome
from guardproxy.core import JSON, TextRole
from guardproxy.errors import BodyTooLarge, GuardproxyError
from guardproxy.mcp_gateway.jsonrpc import (
    BLOCKED,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    TOO_MANY_TOOLS,
    TOOL_NOT_ALLOWED,
    UPSTREAM_INVALID,
    McpError,
    client_message,
    refused,
    request_id_of,
    result_body,
)
from guardproxy.mcp_gateway.upstream import McpUpstreams, UpstreamReply
from guardproxy.policies.chain import CompiledStep, StepResult, Verdict
from guardproxy.policies.operators import MemoryScope, redact_all, restore
from guardproxy.policies.schema import McpServer, ToolAccess
from guardproxy.proxy.admission import admit
from guardproxy.proxy.exchange import Exchange, segment
from guardproxy.proxy.gateway import Gateway
from guardproxy.proxy.walker import (
    CheckedText,
    JoinedSlot,
    Walk,
    checked_texts,
    identifiers_only,
    walk_mcp_arguments,
    walk_mcp_result,
    walk_mcp_server_info,
    walk_mcp_tool,
)
from guardproxy.state.vault import OpenConversation

# Client notifications relayed to the server (they carry no reply).
_NOTIFICATIONS = frozenset({"notifications/initialized", "notifications/cancelled"})
# `server/discover` is the 2026-07-28 protocol's stateless `initialize`.
_DISCOVERY = frozenset({"initialize", "server/discover"})
_METHODS = frozenset({"ping", "tools/list", "tools/call"}) | _DISCOVERY | _NOTIFICATIONS


@dataclass(frozen=True, slots=True)
class McpReply:
    status: int
    body: JSON | None  # None: 202 Accepted, no body
    session_id: str | None = None


class McpGateway:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.upstreams = McpUpstreams()

    async def aclose(self) -> None:
        await self.upstreams.aclose()

    async def handle(
        self,
        server_name: str,
        value: object,
        *,
        request_id: str,
        client: str,
        profile: str | None,
        transport_headers: Mapping[str, str],
    ) -> McpReply:
        gw = self.gateway
        rt = gw.holder.acquire()
        message: JSON = value if isinstance(value, dict) else {}
        ex: Exchange | None = None
        try:
            chains = rt.chains(profile)
            server = rt.policy.mcp_servers.get(server_name)
            # The exchange's `kind`/`endpoint` name the chat flow it shares the chains with; `api` is what
            # its audit record and metrics say (only policy server names, so labels stay bounded).
            ex = Exchange(
                request_id, "chat", "chat/completions", client, message, rt,
                OpenConversation(MemoryScope(), None), gw.metrics, chains, api=f"mcp/{server_name}" if server is not None else "mcp/unknown",
            )  # fmt: skip
            ex.backend = server_name if server is not None else ""
            if server is None:
                names = sorted(rt.policy.mcp_servers)
                raise McpError(
                    INVALID_REQUEST, f"No MCP server {server_name!r} here; defined: {names}.", http_status=404
                )
            message = client_message(value)
            ex.model = str(message["method"])
            return await self._relay(ex, server_name, server, message, transport_headers)
        except (McpError, GuardproxyError) as exc:
            err = exc if isinstance(exc, McpError) else refused(exc)
            if ex is None:  # refused before it became an exchange (a profile the policy lacks)
                await self.record_refused(request_id, server_name, client, err)
            else:
                if ex.outcome == Outcome.ALLOWED:
                    ex.outcome = Outcome.ERROR
                ex.status = err.http_status
                ex.error = f"McpError {err.code}: {err.message}"
            return McpReply(err.http_status, err.body(request_id_of(value)))
        finally:
            if ex is not None:
                await gw.cleanups.run(self._finish(ex), what="mcp_finish")
            else:
                gw.holder.release(rt)

    async def record_refused(
        self, request_id: str, server: str, client: str, err: McpError, *, started: float | None = None
    ) -> None:
        """The audit row of a message refused before it was read (a bad key, a body too large, not JSON...).

        Keeps the error code, never its message or the body."""
        known = server in self.gateway.holder.current.policy.mcp_servers
        endpoint = f"mcp/{server}" if known else "mcp/unknown"  # metric labels stay bounded
        await self.gateway.record_refusal(
            request_id, endpoint, client, err.http_status, f"McpError {err.code}",
            backend=server if known else "", started=started,
        )  # fmt: skip

    async def _finish(self, ex: Exchange) -> None:
        gw = self.gateway
        gw.holder.release(ex.rt)
        gw.metrics.requests.labels(ex.served_as, "unknown", ex.outcome).inc()
        gw.metrics.request_latency.labels(ex.served_as).observe(time.perf_counter() - ex.started)
        await gw.sink.submit(ex.record(store_raw=ex.rt.policy.audit.store_raw))

    async def _relay(
        self, ex: Exchange, name: str, server: McpServer, message: JSON, transport_headers: Mapping[str, str]
    ) -> McpReply:
        method = str(message["method"])
        if method not in _METHODS:
            raise McpError(METHOD_NOT_FOUND, f"Method {method!r} is not relayed by guardproxy's MCP gateway.")
        admit(message, ex.rt.policy.proxy)  # the size limits of any request, before any detector runs
        params: JSON = message.get("params") or {}
        access = self._access(ex, name, server)
        if method == "tools/call":
            tool = params.get("name")
            if not isinstance(tool, str):
                raise McpError(INVALID_REQUEST, "tools/call needs params.name (a string).")
            ex.model = f"tools/call:{tool}"
            if not all(_allows(a, tool) for a in access):
                raise McpError(TOOL_NOT_ALLOWED, f"Tool {tool!r} is not allowed for this key.", data={"tool": tool})
            await self._check_request(ex, walk_mcp_arguments(params), "The tool call")
        elif params:
            walk = Walk()
            walk.any(params, TextRole.METADATA, ".params")
            await self._check_request(ex, walk, f"The {method} request")
        reply = await self.upstreams.send(name, server, message, transport_headers)
        try:  # an answer is checked like a request: its size bounds the detectors' work
            admit(reply.message, ex.rt.policy.proxy)
        except BodyTooLarge as exc:
            raise McpError(
                UPSTREAM_INVALID, f"The MCP server's answer is too large to check. {exc.message}", data={"server": name}
            ) from None
        if reply.message is None or method in _NOTIFICATIONS:
            return McpReply(202, None, reply.session_id)
        return McpReply(200, await self._checked_reply(ex, method, server, access, reply), reply.session_id)

    def _access(self, ex: Exchange, name: str, server: McpServer) -> list[ToolAccess]:
        """The server's own lists, then the caller's profile's lists for this server (both must allow)."""
        profile = ex.rt.policy.profiles.get(ex.chains.profile)
        extra = profile.mcp_tools.get(name) if profile is not None else None
        return [server] if extra is None else [server, extra]

    async def _checked_reply(
        self, ex: Exchange, method: str, server: McpServer, access: list[ToolAccess], reply: UpstreamReply
    ) -> JSON:
        message = reply.message or {}
        rid = message.get("id")
        if "error" in message:
            return {"jsonrpc": "2.0", "id": rid, "error": await self._checked_error(ex, message["error"])}
        result: JSON = message["result"]
        if method == "tools/call":
            return result_body(rid, await self._checked_result(ex, result))
        if method == "tools/list":
            return result_body(rid, await self._checked_tools(ex, server, access, result))
        if method in _DISCOVERY:
            return result_body(rid, await self._checked_server_info(ex, result))
        return result_body(rid, {})  # ping: an empty result

    async def _check_request(self, ex: Exchange, walk: Walk, what: str) -> None:
        """What the client sends the server passes the input chain first; a block answers with an error."""
        texts = checked_texts(walk.slots)
        verdicts = await self._check(ex, texts, walk, ex.chains.unscanned_input)
        ex.input_segments += tuple(
            segment(t.role, t.path, redact_all(t.text, v.sensitive)) for t, v in zip(texts, verdicts, strict=True)
        )
        if ex.rt.policy.audit.store_raw:
            ex.raw_input_segments += tuple(segment(t.role, t.path, t.text) for t in texts)
        _raise_if_blocked(ex, verdicts, Outcome.BLOCKED_INPUT, what)
        for t, v in zip(texts, verdicts, strict=True):
            t.apply(v.edits, ex.scope)  # anonymised values reach the server as placeholders

    async def _check_reply_texts(self, ex: Exchange, walk: Walk, what: str) -> None:
        """What the server sends back passes the input chain (as a chat tool result would) before the client."""
        texts = checked_texts(walk.slots)
        verdicts = await self._check(ex, texts, walk, ex.chains.unscanned_output)
        self._record_output(ex, texts, verdicts)
        _raise_if_blocked(ex, verdicts, Outcome.BLOCKED_OUTPUT, what)
        _apply_for_client(ex, texts, verdicts)

    @staticmethod
    def _record_output(ex: Exchange, texts: Sequence[CheckedText], verdicts: Sequence[Verdict]) -> None:
        """The audit segments of what the server sent: as checked, what steps found redacted (raw if the policy says)."""
        ex.output_segments += tuple(
            segment(t.role, t.path, redact_all(t.text, v.sensitive)) for t, v in zip(texts, verdicts, strict=True)
        )
        if ex.rt.policy.audit.store_raw:
            ex.raw_output_segments += tuple(segment(t.role, t.path, t.text) for t in texts)

    async def _check(
        self, ex: Exchange, texts: Sequence[CheckedText], walk: Walk, unscanned_step: CompiledStep
    ) -> list[Verdict]:
        """One verdict per text; raises at once when `proxy.unscanned` blocks parts no detector reads (images...)."""
        verdicts = await self.gateway.check_slots(ex, ex.chains.input, texts)
        unscanned = await self.gateway.check_unscanned(ex, unscanned_step, walk.unscanned)
        ex.add([*unscanned, *verdicts])
        blocking = [u for u in unscanned if u.blocked_by]
        if blocking:
            _raise_if_blocked(
                ex,
                blocking,
                Outcome.BLOCKED_INPUT if unscanned_step is ex.chains.unscanned_input else Outcome.BLOCKED_OUTPUT,
                "Content no detector can read",
            )
        return verdicts

    async def _checked_result(self, ex: Exchange, result: JSON) -> JSON:
        await self._check_reply_texts(ex, walk_mcp_result(result), "The tool result")
        return result

    async def _checked_error(self, ex: Exchange, error: object) -> JSON:
        error = error if isinstance(error, dict) else {}
        code = error.get("code")
        checked: JSON = {"code": code if isinstance(code, int) and not isinstance(code, bool) else -32603}
        checked["message"] = str(error.get("message") or "")
        if error.get("data") is not None:
            checked["data"] = error["data"]
        await self._check_reply_texts(ex, _walk_fields(checked, ("message", "data")), "The server's error")
        return checked

    async def _checked_server_info(self, ex: Exchange, result: JSON) -> JSON:
        capabilities = result.get("capabilities")
        tools = capabilities.get("tools") if isinstance(capabilities, dict) else None
        await self._check_reply_texts(ex, walk_mcp_server_info(result), "The server's instructions")
        # Only what the gateway relays is announced: tools, and no list-changed notifications.
        result["capabilities"] = {"tools": {"listChanged": False}} if tools is not None else {}
        return result

    async def _checked_tools(self, ex: Exchange, server: McpServer, access: list[ToolAccess], result: JSON) -> JSON:
        tools = result.get("tools")
        if not isinstance(tools, list):
            raise McpError(BLOCKED, "The MCP server's tools/list answer has no tools list.")
        if len(tools) > server.max_tools:
            raise McpError(
                TOO_MANY_TOOLS,
                f"The MCP server listed {len(tools)} tools, more than this gateway's limit of {server.max_tools} "
                "(mcp_servers.<name>.max_tools).",
                data={"tools": len(tools), "max_tools": server.max_tools},
            )
        listed = [
            t
            for t in tools
            if isinstance(t, dict) and isinstance(t.get("name"), str) and all(_allows(a, t["name"]) for a in access)
        ]
        walks = [walk_mcp_tool(t, f".tools[{i}]") for i, t in enumerate(listed)]
        texts: list[CheckedText] = [JoinedSlot(w.slots[0].role, f".tools[{i}]", w.slots) for i, w in enumerate(walks)]
        verdicts = await self.gateway.check_slots(ex, ex.chains.input, texts) if texts else []
        ex.add(verdicts)
        self._record_output(ex, texts, verdicts)
        kept: list[JSON] = []
        for tool, text, verdict in zip(listed, texts, verdicts, strict=True):
            if verdict.blocked_by is not None:
                ex.outcome = Outcome.BLOCKED_OUTPUT  # a poisoned description: that tool is left out
                continue
            text.apply(verdict.edits, None)
            kept.append(tool)
        checked: JSON = {**identifiers_only(result), "tools": kept}  # resultType, ttlMs... stay
        cursor = result.get("nextCursor")
        if isinstance(cursor, str):
            checked["nextCursor"] = cursor  # opaque, and only ever sent back to this server
        return checked


def _walk_fields(holder: JSON, keys: tuple[str, ...]) -> Walk:
    walk = Walk()
    for key in keys:
        if key in holder:
            walk.text(holder, key, TextRole.TOOL, f".error.{key}")
    return walk


def _allows(access: ToolAccess, tool: str) -> bool:
    if any(fnmatch.fnmatchcase(tool, pattern) for pattern in access.deny):
        return False
    return access.allow is None or any(fnmatch.fnmatchcase(tool, pattern) for pattern in access.allow)


def _apply_for_client(ex: Exchange, texts: Sequence[CheckedText], verdicts: Sequence[Verdict]) -> None:
    """Edits as `[LABEL]` (a placeholder would mean nothing to the client), then our own placeholders restored."""
    for t, v in zip(texts, verdicts, strict=True):
        t.apply(v.edits, None)
        if isinstance(t, JoinedSlot):
            for part in t.parts:
                part.set(restore(part.text, ex.scope))
        else:
            t.set(restore(t.text, ex.scope))


def _raise_if_blocked(ex: Exchange, verdicts: Sequence[Verdict], outcome: Outcome, what: str) -> None:
    blocked: StepResult | None = next((v.blocked_by for v in verdicts if v.blocked_by), None)
    if blocked is None:
        return
    ex.outcome = outcome
    step = blocked.step
    why = f"fired {list(blocked.labels)}" if blocked.ran else "could not run and fails closed"
    labels = list(blocked.labels) if blocked.ran else ["detector_error"]
    raise McpError(
        BLOCKED,
        f"{what} was blocked by policy: step '{step.name}' ({step.detector_name}) {why}.",
        data={
            "code": "content_filter",
            "guardproxy": {"step": step.name, "detector": step.detector_name, "labels": labels},
        },
    )
