"""Hot reload: poll policy.yaml and hand each valid, changed policy to a callback.

Polling `stat` needs no dependency and catches every way editors save: in-place writes (mtime,
size) and write-then-rename (inode). An invalid edit is logged and ignored: the last good policy
stays in force until the file is fixed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import structlog

from guardproxy.errors import PolicyInvalid
from guardproxy.policies.loader import parse_policy
from guardproxy.policies.schema import Policy

log = structlog.get_logger(__name__)

# A file modified this recently may be rewritten within the same mtime tick with the same size
# (coarse filesystem clocks), so its content is re-hashed on every poll until it ages ("racy git").
_RACY_NS = 2_000_000_000


@dataclass(frozen=True, slots=True)
class _FileState:
    mtime_ns: int
    size: int
    inode: int


class PolicyWatcher:
    """Watches one policy file. `run()` until `stop()` or cancellation; `current` is the last good policy.

    Pass `current` (the policy the app loaded) so an edit made before the watcher starts is not
    missed; without it, the first valid read becomes the baseline without a callback.
    `on_error` receives the message of every rejected change (e.g. to count failed reloads).
    """

    def __init__(
        self,
        path: str | Path,
        on_change: Callable[[Policy], Awaitable[None]],
        *,
        current: Policy | None = None,
        interval_s: float = 1.0,
        settle_s: float = 0.05,
        env: Mapping[str, str] | None = None,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.current = current
        self._on_change = on_change
        self._on_error = on_error
        self._interval_s = interval_s
        self._settle_s = settle_s
        self._env = env
        self._stopped = asyncio.Event()
        self._state: _FileState | None = None
        self._digest: bytes | None = None
        self._seen = False
        self._adopt_first = current is None

    def stop(self) -> None:
        self._stopped.set()

    async def run(self) -> None:
        # The first check runs at once: it catches an edit made between start-up's load and now.
        while not self._stopped.is_set():
            await self.check()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), self._interval_s)

    async def check(self) -> None:
        """One poll: reload if the file's content changed since the last poll."""
        state = self._stat()
        if self._seen and state == self._state and not _is_racy(state):
            return
        # A writer mid-save changes the file again within moments: wait until it holds still.
        await asyncio.sleep(self._settle_s)
        if self._stat() != state:
            return  # still being written; the next poll sees it again
        self._seen, self._state = True, state
        try:
            content = self.path.read_bytes()
        except OSError as exc:
            self._digest = None
            self._reject(f"{self.path}: cannot read the policy file: {exc.strerror}")
            return
        digest = hashlib.sha256(content).digest()
        if digest == self._digest:
            return
        self._digest = digest
        await self._reload(content)

    async def _reload(self, content: bytes) -> None:
        adopt, self._adopt_first = self._adopt_first, False
        try:
            policy = parse_policy(content.decode("utf-8-sig"), source=str(self.path), env=self._env)
        except UnicodeDecodeError as exc:
            self._reject(f"{self.path}: not UTF-8 text ({exc.reason} at byte {exc.start})")
            return
        except PolicyInvalid as exc:
            self._reject(exc.message)
            return
        if adopt or policy == self.current:
            reason = "first read is the baseline" if adopt else "no change in effect"
            log.debug("policy_reload_skipped", path=str(self.path), reason=reason)
            self.current = policy
            return
        try:
            await self._on_change(policy)
        except Exception as exc:
            # The app could not apply a valid policy (e.g. a detector failed to build): the old one
            # stays in force and watching goes on; the next edit retries.
            log.exception("policy_reload_failed", path=str(self.path), error=f"applying the policy failed: {exc}")
            if self._on_error is not None:
                self._on_error(f"applying the policy failed: {exc}")
            return
        self.current = policy

    def _reject(self, message: str) -> None:
        log.error("policy_reload_failed", path=str(self.path), error=message)
        if self._on_error is not None:
            self._on_error(message)

    def _stat(self) -> _FileState | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return _FileState(st.st_mtime_ns, st.st_size, st.st_ino)


def _is_racy(state: _FileState | None) -> bool:
    return state is not None and time.time_ns() - state.mtime_ns < _RACY_NS
