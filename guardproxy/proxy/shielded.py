"""Work that must finish even when the request that started it is cancelled.

When a client hangs up mid-stream, litestar cancels the response's task group, and anyio keeps
re-cancelling every `await` inside that scope: a relay's `finally` that closes the upstream,
settles the stream and submits the audit record died at its first suspension. The slow-reader
attack (tiny receive buffer, never read, close) lost 4 of 6 audit rows that way, and the runtime
the stream held was never released, so a reload leaked the old one (issue 10, item 6).
`ShieldedTasks.run` moves such work into a task of its own, outside the cancelled scope; the app
waits for the stragglers at shutdown, before the audit sink flushes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from functools import partial
from typing import Any

import structlog

log = structlog.get_logger(__name__)


class ShieldedTasks:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self, work: Coroutine[Any, Any, None], *, what: str) -> None:
        """Run `work` to its end even if the caller is cancelled meanwhile. A caller still waiting gets
        its result (errors included); once the caller is cancelled, a failure is logged instead."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled() or not task.done():
                task.add_done_callback(partial(_log_failure, what=what))
            raise

    async def drain(self) -> None:
        """Wait until every task started so far (and any they start) has finished."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))


def _log_failure(task: asyncio.Task[None], *, what: str) -> None:
    if task.cancelled():
        log.error("shielded_task_cancelled", task=what)
    elif (exc := task.exception()) is not None:
        log.error("shielded_task_failed", task=what, error_type=type(exc).__name__, exc_info=exc)
