"""The audit sink: the request path enqueues a record; a writer thread scrubs, batches and stores it.

Why a thread: SQLite calls block, and keeping them (and the PII scrub) off the event loop keeps
`submit` to a few microseconds. Why no lock on the request path: `flush_and_close()` must be safe to
call from a `signal.signal` handler, which runs between any two bytecodes of the main thread — a
lock held by an interrupted `submit` would deadlock it. Each counter therefore has exactly one
writing thread (`accepted`/`rejected`: the event loop; `written`/`quarantined`/...: the writer), and
the record deque, the signal queue (a reentrant `SimpleQueue`) and the waiter deque are atomic under
the GIL. `submit` must be called from one event loop.

Why records and wake-ups travel apart: waking the writer thread costs the event loop a lock hand-off
and a GIL switch (5% of the proxy's time when every record did it). `submit` only appends to a deque
and signals the writer in two cases: it is idle waiting for a first record, or a batch has filled.
Otherwise the writer collects whatever arrived when its linger delay (`max_delay_s`) ends.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Final, Literal

import structlog

from guardproxy.audit.records import AuditRecord, StepRecord
from guardproxy.audit.store import AuditStore
from guardproxy.errors import AuditUnavailable

log = structlog.get_logger(__name__)

OnFull = Literal["wait", "fail"]
Scrub = Callable[[str], str]

_STOP: Final = object()  # signal: flush what is queued, then stop (submits after it are refused)
_WAKE: Final = object()  # signal: a first record for an idle writer, or a full batch
_WITHHELD = "[guardproxy: scrub failed, text withheld]"
_ISOLATE_AFTER = 3  # consecutive failed attempts before a batch is written record by record
_MIN_BACKOFF_S = 0.1


@dataclass(frozen=True, slots=True)
class SinkStats:
    queued: int  # accepted and not yet written (includes a batch waiting for a retry)
    accepted: int
    written: int
    write_failures: int  # failed store writes (attempts, not records)
    rejected: int  # submits refused: queue full with on_full="fail", or sink closing
    quarantined: int  # records the store refused while others went through; logged in full instead
    abandoned: int  # records still unwritten when shutdown gave up; logged in full instead
    scrub_failures: int


class AuditSink:
    def __init__(
        self,
        store: AuditStore,
        *,
        queue_size: int,
        on_full: OnFull,
        scrub: Scrub | None,
        batch_size: int = 256,
        max_delay_s: float = 0.05,
        max_backoff_s: float = 5.0,
    ) -> None:
        if queue_size < 1 or batch_size < 1:
            raise ValueError("queue_size and batch_size must be >= 1")
        self._store = store
        self._queue_size = queue_size
        self._on_full = on_full
        self._scrub = scrub
        self._batch_size = batch_size
        self._max_delay_s = max_delay_s
        self._max_backoff_s = max_backoff_s
        self._records: collections.deque[AuditRecord] = collections.deque()
        self._signals: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._writer_idle = False  # the writer waits for a first record (set by it, cleared by either side)
        self._waiters: collections.deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = collections.deque()
        self._thread: threading.Thread | None = None
        self._closing = False
        self._sealed = threading.Event()  # the writer has seen _STOP and takes its last look at the queue
        self._abandon = threading.Event()  # shutdown timed out: stop retrying, log what is left
        self._backoff_s = 0.0
        self._consecutive_failures = 0
        # event-loop side
        self._accepted = 0
        self._rejected = 0
        # writer side
        self._written = 0
        self._write_failures = 0
        self._quarantined = 0
        self._abandoned = 0
        self._scrub_failures = 0

    # -- event loop side ------------------------------------------------------------------------

    async def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("AuditSink already started")
        self._thread = threading.Thread(target=self._run, name="guardproxy-audit-writer", daemon=True)
        self._thread.start()

    async def submit(self, record: AuditRecord) -> None:
        """Queue a record. Full queue: waits for room ("wait") or raises AuditUnavailable ("fail")."""
        if self._thread is None:
            raise RuntimeError("AuditSink.submit() before start()")
        while True:
            if self._closing:
                self._rejected += 1
                raise AuditUnavailable("audit log is shutting down")
            if self._has_room():
                self._accepted += 1
                records = self._records
                records.append(record)
                if self._writer_idle or len(records) == self._batch_size:
                    self._writer_idle = False
                    self._signals.put(_WAKE)
                if self._sealed.is_set():
                    # A close slipped in between the check above and the put (signal handler).
                    raise AuditUnavailable("audit log is shutting down")
                return
            if self._on_full == "fail":
                self._rejected += 1
                raise AuditUnavailable(f"audit queue is full ({self._queue_size} records waiting to be written)")
            loop = asyncio.get_running_loop()
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append((loop, waiter))
            # Re-check after registering: the writer may have made room (or the sink begun closing)
            # before it could see our waiter; otherwise its next wake-up reaches us.
            if self._has_room() or self._closing:
                waiter.cancel()  # a wake-up sent to it is passed on by _release
                continue
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake_waiters(1)  # we were given a turn we will not use: pass it on
                raise

    async def aclose(self, timeout_s: float | None = 30.0) -> int:
        """Flush everything queued and close the store. Returns how many records were not written."""
        return await asyncio.to_thread(self.flush_and_close, timeout_s)

    def stats(self) -> SinkStats:
        return SinkStats(
            queued=self._pending(),
            accepted=self._accepted,
            written=self._written,
            write_failures=self._write_failures,
            rejected=self._rejected,
            quarantined=self._quarantined,
            abandoned=self._abandoned,
            scrub_failures=self._scrub_failures,
        )

    # -- any thread (signal handler, atexit) ----------------------------------------------------

    def flush_and_close(self, timeout_s: float | None = 30.0) -> int:
        """Synchronous shutdown; idempotent; safe from a signal handler or atexit. Returns how many
        accepted records did not reach the store (when the timeout is hit, each is logged in full)."""
        if not self._closing:
            self._closing = True
            self._signals.put(_STOP)
        thread = self._thread
        if thread is None:
            self._store.close()
            return 0
        thread.join(timeout_s)
        if thread.is_alive():
            log.error("audit_sink_flush_timeout", timeout_s=timeout_s, unwritten=self._pending())
            self._abandon.set()
            thread.join(max(self._max_backoff_s, 1.0))
        return self._pending() + self._abandoned

    def _has_room(self) -> bool:
        return self._pending() < self._queue_size

    def _pending(self) -> int:
        # Racy reads across threads can only over-count (the subtracted counters only grow).
        return self._accepted - self._written - self._quarantined - self._abandoned

    # -- writer thread --------------------------------------------------------------------------

    def _run(self) -> None:
        unwritten: list[AuditRecord] = []  # scrubbed; kept across failed attempts
        stopping = False
        try:
            while not self._abandon.is_set():
                if unwritten and self._abandon.wait(self._backoff_s):
                    break
                room = self._batch_size - len(unwritten)
                if room > 0:
                    if stopping:
                        fresh = self._take(room)  # the backlog, still in batches
                    else:
                        fresh, stopping = self._collect(room, block=not unwritten)
                        if stopping:
                            # From here on submits refuse; what they queued before is in the deque.
                            self._sealed.set()
                    unwritten.extend(self._scrubbed(record) for record in fresh)
                if unwritten:
                    unwritten = self._write(unwritten)
                if stopping and not unwritten and not self._records:
                    break
        finally:
            # Also reached if this thread dies of a bug: refuse further submits rather than lose them.
            self._closing = True
            self._sealed.set()
            self._give_up(unwritten + [self._scrubbed(record) for record in self._drain()])
            self._wake_waiters()
            try:
                self._store.close()
            except Exception as exc:  # noqa: BLE001 - a failing close must not hide the flush result
                log.error("audit_store_close_failed", error=repr(exc))

    def _collect(self, limit: int, *, block: bool) -> tuple[list[AuditRecord], bool]:
        """Up to `limit` records, and whether to stop: if `block`, wait for a first record, then
        linger up to max_delay_s for the batch to fill; else take what is there now."""
        if block:
            stopping = self._await_first_record()
            deadline = time.monotonic() + self._max_delay_s
            while not stopping and len(self._records) < limit:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                stopping = self._await_signal(remaining)
        else:
            stopping = self._await_signal(0.0)
        return self._take(limit), stopping

    def _await_first_record(self) -> bool:
        """Wait until a record is queued; True if a stop came first."""
        while not self._records:
            self._writer_idle = True
            # Re-check after saying so: a submit that ran just before saw us busy and did not signal.
            if self._records:
                break
            if self._await_signal(None):
                self._writer_idle = False
                return True
        self._writer_idle = False
        return False

    def _await_signal(self, timeout_s: float | None) -> bool:
        """Sleep until a signal or the timeout; True if it was the stop. A stale wake-up is harmless."""
        try:
            signal = self._signals.get(timeout=timeout_s) if timeout_s != 0.0 else self._signals.get_nowait()
            while signal is not _STOP:  # look behind wake-ups for a stop
                signal = self._signals.get_nowait()
        except queue.Empty:
            return False
        return True

    def _take(self, limit: int) -> list[AuditRecord]:
        records = self._records
        return [records.popleft() for _ in range(min(limit, len(records)))]

    def _drain(self) -> list[AuditRecord]:
        records: list[AuditRecord] = []
        with contextlib.suppress(IndexError):
            while True:
                records.append(self._records.popleft())
        return records

    def _write(self, batch: list[AuditRecord]) -> list[AuditRecord]:
        """Write a batch; returns the records still to retry."""
        try:
            self._store.write_batch(batch)
        except Exception as exc:  # noqa: BLE001 - any store error: keep the batch, log, retry
            self._write_failures += 1
            self._consecutive_failures += 1
            self._backoff_s = min(max(self._backoff_s * 2, _MIN_BACKOFF_S), self._max_backoff_s)
            log.error(
                "audit_write_failed",
                records=len(batch),
                attempt=self._consecutive_failures,
                retry_in_s=self._backoff_s,
                error=repr(exc),
            )
            if len(batch) > 1 and self._consecutive_failures >= _ISOLATE_AFTER:
                return self._isolate(batch)
            return batch
        self._mark_done(written=len(batch))
        return []

    def _isolate(self, batch: list[AuditRecord]) -> list[AuditRecord]:
        """Write record by record. If some go through, the ones refused alone are poison (e.g. a
        duplicate id) and are quarantined to the log; if none do, the store is down: retry all."""
        refused: list[tuple[AuditRecord, Exception]] = []
        for record in batch:
            try:
                self._store.write_batch([record])
            except Exception as exc:  # noqa: BLE001 - classified below, never dropped silently
                refused.append((record, exc))
            else:
                self._mark_done(written=1)
        if len(refused) == len(batch):
            return batch
        for record, error in refused:
            log.error(
                "audit_record_quarantined", request_id=record.request_id, error=repr(error), record=record.to_json()
            )
        self._mark_done(quarantined=len(refused))
        return []

    def _give_up(self, records: list[AuditRecord]) -> None:
        for record in records:
            log.error("audit_record_unwritten", request_id=record.request_id, record=record.to_json())
        if records:
            self._abandoned += len(records)

    def _mark_done(self, *, written: int = 0, quarantined: int = 0) -> None:
        self._written += written
        self._quarantined += quarantined
        if written:
            self._backoff_s = 0.0
            self._consecutive_failures = 0
        self._wake_waiters(written + quarantined)

    def _wake_waiters(self, count: int | None = None) -> None:
        """Wake `count` waiting submitters (all if None), oldest first. Called from the writer
        thread and from the loop; deque.popleft is atomic, so the two never hand out one waiter twice."""
        woken = 0
        while count is None or woken < count:
            try:
                loop, waiter = self._waiters.popleft()
            except IndexError:
                return
            if waiter.done():
                continue  # its submitter left (cancelled or re-checked): does not use up a turn
            with contextlib.suppress(RuntimeError):  # its loop is closed: nobody is waiting any more
                loop.call_soon_threadsafe(self._release, waiter)
                woken += 1

    def _release(self, waiter: asyncio.Future[None]) -> None:
        if waiter.done():
            self._wake_waiters(1)  # cancelled after we picked it: the turn goes to the next waiter
        else:
            waiter.set_result(None)

    def _scrubbed(self, record: AuditRecord) -> AuditRecord:
        scrub = self._scrub
        if scrub is None:
            return record
        try:
            return replace(
                record,
                # The client chooses the model name: PII can be put there like anywhere else.
                model=scrub(record.model),
                input_segments=tuple(replace(s, text=scrub(s.text)) for s in record.input_segments),
                output_segments=tuple(replace(s, text=scrub(s.text)) for s in record.output_segments),
                error=None if record.error is None else scrub(record.error),
                steps=tuple(_scrubbed_step(step, scrub) for step in record.steps),
            )
        except Exception as exc:  # noqa: BLE001 - never store unscrubbed text; keep the record
            self._scrub_failures += 1
            # Only the exception type: its message could quote the text we failed to scrub.
            log.error("audit_scrub_failed", request_id=record.request_id, error_type=type(exc).__name__)
            return replace(
                record,
                model=_WITHHELD if record.model else "",
                input_segments=tuple(replace(s, text=_WITHHELD) for s in record.input_segments),
                output_segments=tuple(replace(s, text=_WITHHELD) for s in record.output_segments),
                error=None if record.error is None else _WITHHELD,
                steps=tuple(step if step.error is None else replace(step, error=_WITHHELD) for step in record.steps),
            )


def _scrubbed_step(step: StepRecord, scrub: Scrub) -> StepRecord:
    # A detector's error message may quote the text it failed on.
    return step if step.error is None else replace(step, error=scrub(step.error))
