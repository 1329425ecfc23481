"""Stop sequences over streamed text, holding back only what could start a stop."""

from __future__ import annotations

from collections.abc import Sequence


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
