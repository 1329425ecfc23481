"""The shape every in-process model backend shares: request checks, answers and streams, token counts.

A subclass loads its model instances into a `WorkerPool` and implements two hooks:
- `_request(chat, params, body)`: what its model needs from a checked request (a prompt, messages, options);
- `_generate(instance, cancelled, emit, chat, params, request)`: runs on a worker thread and emits `Piece`s —
  text as it is generated, one piece with the finish reason, then one with the usage — and returns early once
  `cancelled` is set (`emit` also raises `GenerationCancelled` then).
`complete` collects the pieces into one answer; `stream` turns them into chunks as they come.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from guardproxy.backends.base import Endpoint
from guardproxy.backends.local_request import Defaults, GenerationParams, parse_params
from guardproxy.backends.local_shapes import Shaper, usage
from guardproxy.backends.worker_pool import Emit, WorkerPool, prepend
from guardproxy.core import JSON
from guardproxy.errors import InvalidRequest

M = TypeVar("M")
# Completion requests' fields no local model here honours.
_UNSUPPORTED_COMPLETION = ("suffix", "echo")


@dataclass(slots=True)
class Piece:
    """One step of a generation as the worker reports it."""

    text: str
    finish: str | None = None
    logprobs: JSON | None = None
    usage: JSON | None = None


class LocalBackend(Generic[M]):
    """A `Backend` whose model runs in this process, on the worker threads of `self._pool`."""

    unsupported_chat: Sequence[str] = ()
    """Chat request fields this model cannot honour: refused with a 400 naming the field."""

    _pool: WorkerPool[M]

    def __init__(self, name: str, path: Path, defaults: Defaults) -> None:
        self.name = name
        self._path = path
        self._defaults = defaults
        self._tokens_lock = threading.Lock()
        self.tokens_generated = 0
        """Completion tokens produced since start, cancelled runs included (for tests and benchmarks)."""

    def _request(self, chat: bool, params: GenerationParams, body: JSON) -> Any:
        raise NotImplementedError

    def _generate(
        self,
        instance: M,
        cancelled: threading.Event,
        emit: Emit[Piece],
        chat: bool,
        params: GenerationParams,
        request: Any,
    ) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        await self._pool.aclose()

    async def complete(self, endpoint: Endpoint, body: JSON) -> JSON:
        chat, params, request = self._prepare(endpoint, body)
        shaper = Shaper(self._model_name(body), chat=chat)

        def generate_all(instance: M, cancelled: threading.Event) -> list[Piece]:
            pieces: list[Piece] = []
            self._generate(instance, cancelled, pieces.append, chat, params, request)
            return pieces

        pieces = await self._pool.run(generate_all)
        finish = next((p.finish for p in reversed(pieces) if p.finish), "length")
        token_usage = next((p.usage for p in pieces if p.usage), usage(0, 0))
        logprobs = _merge_logprobs([p.logprobs for p in pieces])
        return shaper.response("".join(p.text for p in pieces), finish, token_usage, logprobs)

    async def stream(self, endpoint: Endpoint, body: JSON) -> AsyncGenerator[JSON, None]:
        chat, params, request = self._prepare(endpoint, body)
        shaper = Shaper(self._model_name(body), chat=chat, include_usage=params.include_usage)

        def generate(instance: M, cancelled: threading.Event, emit: Emit[Piece]) -> None:
            self._generate(instance, cancelled, emit, chat, params, request)

        pieces = self._pool.stream(generate)
        try:
            # The role chunk waits for the first token, so a failure to start (a prompt too long for the
            # context) is still an HTTP error with a status rather than an error event mid-stream.
            first = await anext(pieces, None)
            if chat:
                yield shaper.chunk(None)
            async for piece in prepend(first, pieces):
                if piece.usage is not None:
                    if params.include_usage:
                        yield shaper.usage_chunk(piece.usage)
                elif piece.text or piece.finish:
                    yield shaper.chunk(piece.text, piece.finish, piece.logprobs)
        finally:
            await pieces.aclose()  # tells the worker to stop at its next token

    def _prepare(self, endpoint: Endpoint, body: JSON) -> tuple[bool, GenerationParams, Any]:
        if endpoint not in ("chat/completions", "completions"):
            raise InvalidRequest(f"The local model of backend {self.name!r} does not serve /v1/{endpoint}.")
        chat = endpoint == "chat/completions"
        unsupported = self.unsupported_chat if chat else _UNSUPPORTED_COMPLETION
        params = parse_params(body, self._defaults, unsupported=unsupported)
        return chat, params, self._request(chat, params, body)

    def _model_name(self, body: JSON) -> str:
        return str(body.get("model") or self._path.name)

    def _count_tokens(self, generated: int) -> None:
        with self._tokens_lock:
            self.tokens_generated += generated


def _merge_logprobs(parts: list[JSON | None]) -> JSON | None:
    present = [p for p in parts if p]
    if not present:
        return None
    return {"content": [entry for p in present for entry in (p.get("content") or [])]}
