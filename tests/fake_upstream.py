"""A real OpenAI-compatible HTTP server on 127.0.0.1 for tests, scripted per request.

    with FakeUpstream() as upstream:             # uvicorn in a background thread, free port
        upstream.enqueue(Reply(status=503), times=2)   # the next POSTs consume scripted replies in order
        upstream.enqueue(Reply(content="hi", chunks=["h", "i"]))
        ... point a client at upstream.base_url (ends in /v1) ...
        upstream.requests                        # everything that reached it: path, headers, JSON body

With nothing queued it echoes the last user message (streamed in small chunks), so anonymised text
can be checked end to end. `python -m tests.fake_upstream --port P` serves the echo for benchmarks.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import uvicorn

JSON = dict[str, Any]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

ECHO_PIECE = re.compile(r"\s*\S{1,4}|\s+")  # word-ish pieces of at most 4 visible characters, like tokens
ARGUMENT_PIECE = re.compile(r".{1,6}", re.DOTALL)
MODERATION_CATEGORIES = ("harassment", "hate", "self-harm", "sexual", "violence")
_UNFINISHED_RESPONSE_LOG = "ASGI callable returned without completing response."


@dataclass(frozen=True)
class Reply:
    """One scripted answer. Unset fields fall back to the echo behaviour."""

    content: str | None = None  # None: echo the last user message (or join `chunks`)
    chunks: Sequence[str] | None = None  # how a stream splits the content; default: small word pieces
    tool_calls: Sequence[JSON] = ()  # OpenAI shape, or shorthand {"name": ..., "arguments": str | dict}
    status: int = 200
    error_body: JSON | None = None  # for status >= 400; default: an OpenAI-shaped error
    body: JSON | None = None  # the whole non-stream JSON answer, as is (any endpoint; streams ignore it)
    raw_stream: Sequence[bytes] | None = None  # exact body pieces (200, text/event-stream), one HTTP chunk each
    headers: Mapping[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # before the response head
    # Counted in content pieces / tool-argument fragments after the opening role chunk (raw_stream: its
    # pieces). A non-stream answer with either set sends half its body first.
    stall_after_chunks: int | None = None  # pause `stall_s` there (ends early if the client leaves)
    stall_s: float = 0.0
    break_after_chunks: int | None = None  # drop the connection there: an incomplete chunked body
    n: int = 1
    finish_reason: str | None = None  # default: "tool_calls" when there are tool calls, else "stop"
    usage: JSON | None = None


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: Mapping[str, str]  # lower-cased names; repeats joined with ", "
    body: Any  # parsed JSON, or None
    raw_body: bytes
    client_port: int | None  # tells connections apart (keep-alive reuse)


def wait_until(condition: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    """Poll `condition` until true or timeout; the server runs in another thread."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


class FakeOpenAI:
    """The ASGI app. Thread-safe scripting API: the server runs on its own thread and event loop."""

    def __init__(self, *, default_reply: Reply | None = None, record: bool = True) -> None:
        self._default = default_reply or Reply()
        self._record = record
        self._lock = threading.Lock()
        self._queue: deque[Reply] = deque()
        self._records: list[RecordedRequest] = []
        self._disconnects = 0
        self._ids = iter(range(1, 1 << 62))

    def enqueue(self, *replies: Reply, times: int = 1) -> None:
        with self._lock:
            for _ in range(times):
                self._queue.extend(replies)

    def reset(self) -> None:
        with self._lock:
            self._queue.clear()
            self._records.clear()
            self._disconnects = 0

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._records)

    @property
    def pending_replies(self) -> int:
        with self._lock:
            return len(self._queue)

    @property
    def disconnects(self) -> int:
        """Clients that went away while a stream was stalled (e.g. a proxy that stopped reading)."""
        with self._lock:
            return self._disconnects

    def _next_reply(self) -> Reply:
        with self._lock:
            return self._queue.popleft() if self._queue else self._default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        raw = await _read_body(receive)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        method, path = scope["method"], scope["path"]
        if self._record:
            client = scope.get("client")
            record = RecordedRequest(method, path, _headers(scope), body, raw, client[1] if client else None)
            with self._lock:
                self._records.append(record)
        if method == "GET" and path == "/v1/models":
            await _send_json(send, 200, _models())
            return
        if method != "POST" or path not in _BUILDERS:
            await _send_json(send, 404, _error_body(404, f"no route for {method} {path}"))
            return
        await self._answer(path, body if isinstance(body, dict) else {}, self._next_reply(), receive, send)

    async def _answer(self, path: str, request: JSON, reply: Reply, receive: Receive, send: Send) -> None:
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        if reply.status >= 400:
            await _send_json(send, reply.status, reply.error_body or _error_body(reply.status), reply.headers)
            return
        if reply.raw_stream is not None:
            await self._stream(send, receive, reply, list(reply.raw_stream))
            return
        whole, events = _BUILDERS[path](request, reply, f"fake-{next(self._ids)}")
        if request.get("stream") and events:
            if (request.get("stream_options") or {}).get("include_usage"):
                events = [{**event, "usage": None} for event in events]
                events.append({**events[-1], "choices": [], "usage": whole["usage"]})
            pieces = [b"data: " + json.dumps(event).encode() + b"\n\n" for event in events]
            await self._stream(send, receive, reply, [*pieces, b"data: [DONE]\n\n"], first_piece=1)
        else:
            await self._send_whole(send, receive, reply, reply.body if reply.body is not None else whole)

    async def _stream(
        self, send: Send, receive: Receive, reply: Reply, pieces: list[bytes], first_piece: int = 0
    ) -> None:
        # `first_piece` events (the role chunk) go out before the stall/break counting starts.
        headers = {"content-type": "text/event-stream", "cache-control": "no-cache", **reply.headers}
        await _start(send, 200, headers)
        for index, piece in enumerate(pieces):
            sent = index - first_piece
            if sent == reply.stall_after_chunks and reply.stall_s and await self._client_left(receive, reply.stall_s):
                return
            if sent == reply.break_after_chunks:
                return  # leaving without the final empty chunk: uvicorn drops the connection mid-body
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _send_whole(self, send: Send, receive: Receive, reply: Reply, answer: JSON) -> None:
        payload = json.dumps(answer).encode()
        if reply.break_after_chunks is None and reply.stall_after_chunks is None:
            await _send_json_bytes(send, reply.status, payload, reply.headers)
            return
        # Misbehaving plain body: half of it, then a stall or a dropped connection.
        await _start(send, reply.status, {"content-type": "application/json", **reply.headers}, len(payload))
        half = len(payload) // 2
        await send({"type": "http.response.body", "body": payload[:half], "more_body": True})
        if reply.break_after_chunks is not None:
            return
        if reply.stall_s and await self._client_left(receive, reply.stall_s):
            return
        await send({"type": "http.response.body", "body": payload[half:], "more_body": False})

    async def _client_left(self, receive: Receive, wait_s: float) -> bool:
        """Wait up to `wait_s`; True (and counted) if the client disconnected meanwhile."""
        try:
            message = await asyncio.wait_for(receive(), wait_s)
        except TimeoutError:
            return False
        left = message["type"] == "http.disconnect"
        if left:
            with self._lock:
                self._disconnects += 1
        return left


# --- answers ---------------------------------------------------------------------------------------


def _chat(request: JSON, reply: Reply, rid: str) -> tuple[JSON, list[JSON]]:
    tool_calls = [_tool_call(i, call) for i, call in enumerate(reply.tool_calls)]
    text = _text(reply, _last_user_text(request.get("messages")), default_empty=bool(tool_calls))
    pieces = list(reply.chunks) if reply.chunks is not None else ECHO_PIECE.findall(text)
    finish = reply.finish_reason or ("tool_calls" if tool_calls else "stop")
    message: JSON = {"role": "assistant", "content": text if text or not tool_calls else None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    model, created = request.get("model", "fake-model"), int(time.time())
    choices = [{"index": i, "message": message, "logprobs": None, "finish_reason": finish} for i in range(reply.n)]
    usage = reply.usage or _usage(request.get("messages"), len(pieces))
    head = {"id": f"chatcmpl-{rid}", "object": "chat.completion", "created": created, "model": model}
    whole = {**head, "choices": choices, "usage": usage}

    deltas: list[JSON] = [{"content": piece} for piece in pieces]
    for index, call in enumerate(tool_calls):
        function = call["function"]
        opening = {"index": index, "id": call["id"], "type": "function"}
        deltas.append({"tool_calls": [{**opening, "function": {"name": function["name"], "arguments": ""}}]})
        for fragment in ARGUMENT_PIECE.findall(function["arguments"]):
            deltas.append({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})
    chunk = {**head, "object": "chat.completion.chunk"}

    def event(delta: JSON, finish_reason: str | None = None) -> JSON:
        choice = {"delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {**chunk, "choices": [{"index": i, **choice} for i in range(reply.n)]}

    events = [event({"role": "assistant", "content": ""})]
    events += [event(delta) for delta in deltas]
    events.append(event({}, finish))
    return whole, events


def _completion(request: JSON, reply: Reply, rid: str) -> tuple[JSON, list[JSON]]:
    prompt = request.get("prompt")
    text = _text(reply, prompt[0] if isinstance(prompt, list) and prompt else prompt, default_empty=False)
    pieces = list(reply.chunks) if reply.chunks is not None else ECHO_PIECE.findall(text)
    finish = reply.finish_reason or "stop"
    head = {"id": f"cmpl-{rid}", "object": "text_completion", "created": int(time.time())}
    head["model"] = request.get("model", "fake-model")

    def choices(piece: str, finish_reason: str | None) -> list[JSON]:
        return [{"text": piece, "index": i, "logprobs": None, "finish_reason": finish_reason} for i in range(reply.n)]

    usage = reply.usage or _usage(prompt, len(pieces))
    whole = {**head, "choices": choices(text, finish), "usage": usage}
    # The first event carries no text so that stall/break counting matches chat (which opens with the role).
    events = [{**head, "choices": choices("", None)}]
    events += [{**head, "choices": choices(piece, None)} for piece in pieces]
    events.append({**head, "choices": choices("", finish)})
    return whole, events


def _embeddings(request: JSON, reply: Reply, rid: str) -> tuple[JSON, list[JSON]]:
    dimensions = int(request.get("dimensions") or 8)
    inputs = _inputs(request.get("input"))
    data = [
        {"object": "embedding", "index": i, "embedding": _vector(text, dimensions)} for i, text in enumerate(inputs)
    ]
    tokens = sum(len(text.split()) for text in inputs)
    usage = reply.usage or {"prompt_tokens": tokens, "total_tokens": tokens}
    return {"object": "list", "data": data, "model": request.get("model", "fake-embedding"), "usage": usage}, []


def _moderations(request: JSON, reply: Reply, rid: str) -> tuple[JSON, list[JSON]]:
    result = {
        "flagged": False,
        "categories": dict.fromkeys(MODERATION_CATEGORIES, False),
        "category_scores": dict.fromkeys(MODERATION_CATEGORIES, 0.0),
    }
    results = [result for _ in _inputs(request.get("input"))]
    return {"id": f"modr-{rid}", "model": request.get("model", "fake-moderation"), "results": results}, []


_BUILDERS: dict[str, Callable[[JSON, Reply, str], tuple[JSON, list[JSON]]]] = {
    "/v1/chat/completions": _chat,
    "/v1/completions": _completion,
    "/v1/embeddings": _embeddings,
    "/v1/moderations": _moderations,
}


def _text(reply: Reply, echo: Any, *, default_empty: bool) -> str:
    if reply.content is not None:
        return reply.content
    if reply.chunks is not None:
        return "".join(reply.chunks)
    if default_empty:
        return ""
    return echo if isinstance(echo, str) else ""


def _last_user_text(messages: Any) -> str:
    for message in reversed(messages if isinstance(messages, list) else []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return "".join(part.get("text", "") for part in content if isinstance(part, dict))
            return content if isinstance(content, str) else ""
    return ""


def _tool_call(index: int, call: JSON) -> JSON:
    function = call.get("function", call)
    arguments = function.get("arguments", "")
    return {
        "id": call.get("id", f"call_{index}"),
        "type": "function",
        "function": {
            "name": function["name"],
            "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments),
        },
    }


def _usage(prompt: Any, completion_tokens: int) -> JSON:
    prompt_tokens = len(json.dumps(prompt)) // 4 if prompt is not None else 0
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _inputs(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [item if isinstance(item, str) else json.dumps(item) for item in value]
    return []


def _vector(text: str, dimensions: int) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [round(digest[i % len(digest)] / 255.0 - 0.5, 4) for i in range(dimensions)]


def _models() -> JSON:
    names = ("fake-model", "fake-embedding", "fake-moderation")
    return {"object": "list", "data": [{"id": n, "object": "model", "created": 0, "owned_by": "fake"} for n in names]}


def _error_body(status: int, message: str | None = None) -> JSON:
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return {"error": {"message": message or f"fake upstream error {status}", "type": kind, "param": None, "code": None}}


# --- ASGI plumbing ---------------------------------------------------------------------------------


def _headers(scope: Scope) -> dict[str, str]:
    # Repeated headers are joined as HTTP says, so a test sees a duplicate instead of the last one.
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


async def _read_body(receive: Receive) -> bytes:
    parts = []
    while True:
        message = await receive()
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(parts)


async def _start(send: Send, status: int, headers: Mapping[str, str], length: int | None = None) -> None:
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    if length is not None:
        raw.append((b"content-length", str(length).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})


async def _send_json(send: Send, status: int, body: JSON, headers: Mapping[str, str] | None = None) -> None:
    await _send_json_bytes(send, status, json.dumps(body).encode(), headers or {})


async def _send_json_bytes(send: Send, status: int, payload: bytes, headers: Mapping[str, str]) -> None:
    await _start(send, status, {"content-type": "application/json", **headers}, len(payload))
    await send({"type": "http.response.body", "body": payload, "more_body": False})


class _QuietDeliberateBreaks(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != _UNFINISHED_RESPONSE_LOG


# --- server ----------------------------------------------------------------------------------------


class FakeUpstream:
    """`FakeOpenAI` served by uvicorn on a background thread; a context manager."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, default_reply: Reply | None = None) -> None:
        self.app = FakeOpenAI(default_reply=default_reply)
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host, self.port = self._socket.getsockname()[:2]
        self._server = uvicorn.Server(_config(self.app, self.host, self.port))
        self._thread = threading.Thread(target=self._server.run, args=([self._socket],), daemon=True)
        self._log_filter = _QuietDeliberateBreaks()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def start(self) -> FakeUpstream:
        logging.getLogger("uvicorn.error").addFilter(self._log_filter)
        self._thread.start()
        if (
            not wait_until(lambda: self._server.started or not self._thread.is_alive(), 10.0)
            or not self._server.started
        ):
            self.stop()
            raise RuntimeError("fake upstream did not start")
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(10.0)
        self._socket.close()
        logging.getLogger("uvicorn.error").removeFilter(self._log_filter)

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # The scripting API of the app, for brevity in tests.
    def enqueue(self, *replies: Reply, times: int = 1) -> None:
        self.app.enqueue(*replies, times=times)

    def reset(self) -> None:
        self.app.reset()

    @property
    def requests(self) -> list[RecordedRequest]:
        return self.app.requests

    @property
    def disconnects(self) -> int:
        return self.app.disconnects

    @property
    def pending_replies(self) -> int:
        return self.app.pending_replies

    def bodies(self, path: str = "/v1/chat/completions") -> Iterator[Any]:
        return (r.body for r in self.requests if r.path == path)


def _config(app: FakeOpenAI, host: str, port: int) -> uvicorn.Config:
    # log_config=None: uvicorn must not reconfigure the test process's logging.
    # Keep-alive well above the backend's pool expiry, so tests never race an idle-connection close.
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="off",
        ws="none",
        timeout_graceful_shutdown=1,
        timeout_keep_alive=30,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the fake OpenAI-compatible upstream.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--reply", default=None, help="fixed answer text (default: echo the last user message)")
    args = parser.parse_args()
    app = FakeOpenAI(default_reply=Reply(content=args.reply), record=False)
    uvicorn.Server(_config(app, args.host, args.port)).run()


if __name__ == "__main__":
    main()
