"""`WorkerPool`: N model instances, each owned by one worker thread that takes jobs from one shared FIFO queue.

A model instance is never used by two threads at once (llama.cpp contexts are not thread-safe), the event loop
never runs model code, and a job sees a `threading.Event` that is set when its caller goes away, so generation
stops within a token of a client disconnect.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any, Generic, TypeVar

import structlog

from guardproxy.errors import GuardproxyError, UpstreamStatus

log = structlog.get_logger(__name__)
M = TypeVar("M")
T = TypeVar("T")
Work = Callable[[M, threading.Event], T]
Emit = Callable[[T], None]
# Runs on a worker thread: produce items by calling `emit(item)`; return early once `cancelled` is set.
StreamWork = Callable[[M, threading.Event, Emit[T]], None]
# How often a producer waiting for its consumer re-checks for cancellation (a release also wakes it).
_ROOM_POLL_S = 0.5


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
