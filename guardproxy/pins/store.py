"""Where pinned tool hashes live: a small protocol, an in-process store and the SQLite default.

A networked store (Redis, for replicas that must agree on the pins) implements the same protocol.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol


class PinStore(Protocol):
    async def compare_and_pin(self, key: str, tools: Mapping[str, str]) -> tuple[str, ...]:
        """The names in `tools` whose hash differs from the one pinned for `key`; names not pinned yet are
        pinned now (first use is trusted). A changed tool keeps its first pin: it is reported every time."""
        ...

    def close(self) -> None: ...


class MemoryPinStore:
    """Pins in this process only (`tool_pinning.path: ":memory:"`): lost at a restart, not shared by replicas."""

    def __init__(self) -> None:
        self._pins: dict[str, dict[str, str]] = {}

    async def compare_and_pin(self, key: str, tools: Mapping[str, str]) -> tuple[str, ...]:
        pinned = self._pins.setdefault(key, {})
        changed = tuple(name for name, digest in tools.items() if pinned.get(name, digest) != digest)
        for name, digest in tools.items():
            pinned.setdefault(name, digest)
        return changed

    def close(self) -> None:
        self._pins.clear()


class SqlitePinStore:
    """Pins in a SQLite file, kept across restarts. Queries run in a worker thread, one at a time."""

    def __init__(self, path: str | Path) -> None:
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS tool_pins (key TEXT NOT NULL, tool TEXT NOT NULL, hash TEXT NOT NULL, "
                "pinned_at REAL NOT NULL, PRIMARY KEY (key, tool))"
            )

    async def compare_and_pin(self, key: str, tools: Mapping[str, str]) -> tuple[str, ...]:
        return await asyncio.to_thread(self._compare_and_pin, key, dict(tools))

    def _compare_and_pin(self, key: str, tools: dict[str, str]) -> tuple[str, ...]:
        with self._lock:
            pinned = dict(self._db.execute("SELECT tool, hash FROM tool_pins WHERE key = ?", (key,)).fetchall())
            new = [(key, name, digest, time.time()) for name, digest in tools.items() if name not in pinned]
            if new:
                self._db.executemany("INSERT OR IGNORE INTO tool_pins VALUES (?, ?, ?, ?)", new)
        return tuple(name for name, digest in tools.items() if pinned.get(name, digest) != digest)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def open_pin_store(path: str) -> PinStore:
    return MemoryPinStore() if path == ":memory:" else SqlitePinStore(path)
