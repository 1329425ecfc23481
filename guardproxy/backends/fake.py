"""An in-memory backend for tests and benchmarks: a handler decides each answer, no socket involved.

Like `httpx.MockTransport`, the caller passes a function; here it maps (endpoint, body) to a `FakeReply`
(or raises a `guardproxy.errors` type, as a real backend would):

    backend = FakeBackend("main", lambda endpoint, body: FakeReply("Hello. World.", chunks=["Hel", "lo. W", "orld."]))
    app = create_app(settings, runtime_builder=partial(build_runtime, backend_factory=FakeBackends({"main": backend})))
    ...
    backend.calls[-1].body   # what the proxy sent upstream (after the input chain)

Without a handler it echoes the last user message (or the prompt), streamed in pieces of four characters.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from guardproxy.backends.base import Backend, Endpoint
from guardproxy.backends.configs import BackendConfig
from guardproxy.core import JSON
from guardproxy.errors import GuardproxyError, StreamBroken


@dataclass(frozen=True, slots=True)
class FakeReply:
    """One answer. `chunks` splits a stream (default: pieces of `piece_chars`); their join is the content."""

    content: str = ""
    chunks: Sequence[str] | None = None
    finish_reason: str = "stop"
    piece_chars: int = 4
    # Raised by a stream after this many content chunks (StreamBroken: the upstream hung up mid-answer).
    break_after_chunks: int | None = None
    # Returned as is by `complete` (any endpoint) instead of an answer built from `content`.
    body: JSON | None = None

    def pieces(self) -> list[str]:
        if self.chunks is not None:
            return [c for c in self.chunks if c]
        step = max(self.piece_chars, 1)
        return [self.content[i : i + step] for i in range(0, len(self.content), step)]


@dataclass(frozen=True, slots=True)
class FakeCall:
    endpoint: Endpoint
    body: JSON  # a deep copy, as sent
    stream: bool


Handler = Callable[[Endpoint, JSON], FakeReply]


def echo(endpoint: Endpoint, body: JSON) -> FakeReply:
    """The last user message of a chat request, or the prompt of a completion."""
    if endpoint == "completions":
        prompt = body.get("prompt")
        return FakeReply(prompt if isinstance(prompt, str) else "")
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user" and isinstance(message.get("content"), str):
            return FakeReply(message["content"])
    return FakeReply("")


@dataclass(eq=False)
class FakeBackend:
    """Implements `Backend` in process. `calls` records every request; `closed` is set by `aclose`."""

    name: str = "fake"
    handler: Handler = echo
    calls: list[FakeCall] = field(default_factory=list)
    closed: bool = False

    async def complete(self, endpoint: Endpoint, body: JSON) -> JSON:
        reply = self._reply(endpoint, body, stream=False)
        if reply.body is not None:
            return copy.deepcopy(reply.body)
        model = str(body.get("model") or "")
        if endpoint == "embeddings":
            inputs = body.get("input")
            count = len(inputs) if isinstance(inputs, list) else 1
            data = [{"object": "embedding", "index": i, "embedding": [0.0, 1.0]} for i in range(count)]
            return {"object": "list", "model": model, "data": data, "usage": {"prompt_tokens": 1, "total_tokens": 1}}
        if endpoint == "completions":
            choice: JSON = {"index": 0, "text": reply.content, "finish_reason": reply.finish_reason, "logprobs": None}
            return {"id": "cmpl-fake", "object": "text_completion", "created": 0, "model": model, "choices": [choice]}
        message = {"role": "assistant", "content": reply.content}
        choice = {"index": 0, "message": message, "finish_reason": reply.finish_reason, "logprobs": None}
        usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [choice],
            "usage": usage,
        }

    async def stream(self, endpoint: Endpoint, body: JSON) -> AsyncIterator[JSON]:
        reply = self._reply(endpoint, body, stream=True)
        model = str(body.get("model") or "")
        chat = endpoint == "chat/completions"
        envelope: JSON = {
            "id": "chatcmpl-fake" if chat else "cmpl-fake",
            "object": "chat.completion.chunk" if chat else "text_completion",
            "created": 0,
            "model": model,
        }

        def chunk(text: str | None, finish: str | None, *, role: bool = False) -> JSON:
            if chat:
                delta: JSON = {"role": "assistant", "content": ""} if role else {}
                if text is not None:
                    delta["content"] = text
                return {**envelope, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            return {**envelope, "choices": [{"index": 0, "text": text or "", "finish_reason": finish}]}

        if chat:
            yield chunk(None, None, role=True)
        for sent, piece in enumerate(reply.pieces()):
            if reply.break_after_chunks is not None and sent >= reply.break_after_chunks:
                raise StreamBroken("The fake upstream broke the stream.")
            yield chunk(piece, None)
        yield chunk(None, reply.finish_reason)

    async def aclose(self) -> None:
        self.closed = True

    def _reply(self, endpoint: Endpoint, body: JSON, *, stream: bool) -> FakeReply:
        self.calls.append(FakeCall(endpoint, copy.deepcopy(body), stream))
        return self.handler(endpoint, body)


class FakeBackends:
    """A `BackendFactory` (`build_runtime(policy, backend_factory=...)`) that hands out given fakes by name.

    Names the mapping lacks get a new echoing `FakeBackend` each time, so a policy's real upstreams are
    never contacted. `built` lists every name asked for, in order (a reload asks again).
    """

    def __init__(self, backends: Mapping[str, FakeBackend] | None = None) -> None:
        self.backends = dict(backends or {})
        self.built: list[str] = []

    def __call__(self, name: str, config: BackendConfig) -> Backend:
        self.built.append(name)
        return self.backends.get(name) or FakeBackend(name)


def failing(error: GuardproxyError) -> Handler:
    """A handler that raises `error` on every call (an upstream that is down, slow, or refusing)."""

    def handler(endpoint: Endpoint, body: JSON) -> FakeReply:
        raise error

    return handler
