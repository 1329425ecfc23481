"""A deliberately fast OpenAI-compatible upstream for the gateway benchmark.

Plain asyncio protocol, standard library only: it answers every ``POST .../chat/completions`` with one fixed,
small completion (as one server-sent-event stream of word chunks when the request asks ``"stream": true``)
and ``GET /healthz`` with ``ok``. Being far cheaper per request than any gateway
under test, it keeps the measured differences about the gateways rather than about the upstream. It lives in
``bench/`` (not ``tests/``) so the benchmark depends on no test code.

Run: ``python bench/upstream.py --port 8901``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time

_COMPLETION = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Sure: the meeting is moved to Thursday at 10:00."},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 72, "completion_tokens": 14, "total_tokens": 86},
        "system_fingerprint": "fp_bench",
    },
    separators=(",", ":"),
).encode()

_MAX_HEADER_BYTES = 64 * 1024


def _stream_body() -> bytes:
    """The same completion as a chat.completion.chunk stream: a role chunk, word pieces, a finish chunk, [DONE]."""
    content = json.loads(_COMPLETION)["choices"][0]["message"]["content"]
    words = content.split(" ")
    pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]

    def chunk(delta: dict[str, str], finish: str | None) -> bytes:
        event = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }
        return b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n"

    events = [chunk({"role": "assistant", "content": ""}, None)]
    events += [chunk({"content": piece}, None) for piece in pieces]
    events += [chunk({}, "stop"), b"data: [DONE]\n\n"]
    return b"".join(events)


def _response(status: str, body: bytes, content_type: str = "application/json") -> bytes:
    head = f"HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {len(body)}\r\n"
    return head.encode() + b"connection: keep-alive\r\n\r\n" + body


_COMPLETION_RESPONSE = _response("200 OK", _COMPLETION)
_STREAM_RESPONSE = _response("200 OK", _stream_body(), "text/event-stream")
_HEALTH_RESPONSE = _response("200 OK", b"ok", "text/plain")
_NOT_FOUND_RESPONSE = _response("404 Not Found", b'{"error":{"message":"not found","type":"invalid_request_error"}}')
_BAD_REQUEST_RESPONSE = _response(
    "400 Bad Request", b'{"error":{"message":"bad request","type":"invalid_request_error"}}'
)


class _ChunkedBodyIncomplete(Exception):
    """The chunked request body has not fully arrived yet."""


def _chunked_body_end(buffer: bytes, start: int) -> int:
    """Index just past a complete chunked body that starts at ``start``; raises while it is incomplete."""
    position = start
    while True:
        line_end = buffer.find(b"\r\n", position)
        if line_end < 0:
            raise _ChunkedBodyIncomplete
        size = int(buffer[position:line_end].split(b";", 1)[0], 16)
        position = line_end + 2
        if size == 0:
            # Trailers (none expected) end with an empty line.
            trailer_end = buffer.find(b"\r\n\r\n", position - 2)
            if trailer_end < 0:
                raise _ChunkedBodyIncomplete
            return trailer_end + 4
        position += size + 2
        if position > len(buffer):
            raise _ChunkedBodyIncomplete


class _UpstreamProtocol(asyncio.Protocol):
    """HTTP/1.1 keep-alive, one request at a time per connection (clients here do not pipeline)."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while self._answer_one_request():
            pass

    def _answer_one_request(self) -> bool:
        """Answer the first complete request in the buffer; False when none is complete yet."""
        assert self._transport is not None
        header_end = self._buffer.find(b"\r\n\r\n")
        if header_end < 0:
            if len(self._buffer) > _MAX_HEADER_BYTES:
                self._transport.write(_BAD_REQUEST_RESPONSE)
                self._transport.close()
            return False
        head = self._buffer[:header_end].decode("latin-1")
        request_line, *header_lines = head.split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body_start = header_end + 4
        try:
            if headers.get("transfer-encoding", "").lower() == "chunked":
                request_end = _chunked_body_end(self._buffer, body_start)
            else:
                request_end = body_start + int(headers.get("content-length", "0"))
        except _ChunkedBodyIncomplete:
            return False
        except ValueError:
            self._transport.write(_BAD_REQUEST_RESPONSE)
            self._transport.close()
            return False
        if len(self._buffer) < request_end:
            return False
        body = self._buffer[body_start:request_end]
        self._buffer = self._buffer[request_end:]
        method, _, rest = request_line.partition(" ")
        path = rest.partition(" ")[0].partition("?")[0]
        self._transport.write(self._route(method, path, body))
        return True

    @staticmethod
    def _route(method: str, path: str, body: bytes) -> bytes:
        if method == "POST" and path.endswith("/chat/completions"):
            # A byte test, not a JSON parse: this server must stay far cheaper than what it serves.
            streamed = b'"stream":true' in body.replace(b" ", b"")
            return _STREAM_RESPONSE if streamed else _COMPLETION_RESPONSE
        if method == "GET" and path == "/healthz":
            return _HEALTH_RESPONSE
        return _NOT_FOUND_RESPONSE


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_UpstreamProtocol, host, port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a person stops it
        asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
