"""JSON-RPC 2.0 messages of MCP, and the one error type the gateway answers with."""

from __future__ import annotations

from typing import Any

from guardproxy.core import JSON
from guardproxy.errors import GuardproxyError

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INTERNAL_ERROR = -32603
# Server-defined codes (JSON-RPC reserves -32000..-32099 for them).
REFUSED = -32000  # refused before any check: a bad key, a body too large or too slow (`data.status` says which)
BLOCKED = -32001  # a policy step blocked the arguments, the result or a tool list
UPSTREAM_UNAVAILABLE = -32002  # the server is unreachable, timed out or answered an HTTP error
UPSTREAM_INVALID = -32003  # the server's answer is not the JSON-RPC message MCP requires
TOOL_NOT_ALLOWED = -32004  # the allow/deny lists of the server or the key's profile exclude the tool
TOO_MANY_TOOLS = -32005  # a tools/list answer longer than `max_tools`

RequestId = str | int | None


class McpError(Exception):
    """A JSON-RPC error for the client; `http_status` is 200 when it answers a request the client could send."""

    def __init__(self, code: int, message: str, *, data: JSON | None = None, http_status: int = 200) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data
        self.http_status = http_status

    def body(self, request_id: RequestId) -> JSON:
        error: JSON = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return {"jsonrpc": "2.0", "id": request_id, "error": error}


def request_id_of(message: Any) -> RequestId:
    """The id a reply must carry; None for anything without a usable one."""
    if isinstance(message, dict):
        rid = message.get("id")
        if isinstance(rid, str | int) and not isinstance(rid, bool):
            return rid
    return None


def client_message(value: Any) -> JSON:
    """A request or notification from the client; batches and replies to server requests are refused."""
    if isinstance(value, list):
        raise McpError(
            INVALID_REQUEST, "JSON-RPC batches are not supported by guardproxy's MCP gateway.", http_status=400
        )
    if not isinstance(value, dict) or value.get("jsonrpc") != "2.0" or not isinstance(value.get("method"), str):
        raise McpError(
            INVALID_REQUEST,
            "Expected a JSON-RPC 2.0 request or notification (an object with a method).",
            http_status=400,
        )
    if "params" in value and not isinstance(value["params"], dict):
        raise McpError(INVALID_REQUEST, "JSON-RPC params must be an object.", http_status=400)
    return value


def result_body(request_id: RequestId, result: JSON) -> JSON:
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def refused(exc: GuardproxyError) -> McpError:
    """One of the proxy's own errors (a bad key, a rate limit, a body too large) as a JSON-RPC error, same HTTP status."""
    return McpError(REFUSED, exc.message, data={"status": exc.status, "code": exc.code}, http_status=exc.status)
