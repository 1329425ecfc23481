"""Heavy objects that the detectors of one runtime share (a loaded model serving several detectors)."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")


class SharedResources:
    """Reference-counted objects by key: the first `acquire` builds, the last `release` closes.

    One instance per runtime (never module-level), so a policy reload builds fresh models and the old ones
    close when the old runtime's detectors do.
    """

    def __init__(self) -> None:
        self._items: dict[Hashable, list[Any]] = {}  # key -> [object, users]

    def acquire(self, key: Hashable, factory: Callable[[], T]) -> T:
        entry = self._items.get(key)
        if entry is None:
            entry = self._items[key] = [factory(), 0]
        entry[1] += 1
        obj: T = entry[0]
        return obj

    def release(self, key: Hashable, close: Callable[[Any], None]) -> None:
        entry = self._items.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] <= 0:
            del self._items[key]
            close(entry[0])

    def __len__(self) -> int:
        return len(self._items)
