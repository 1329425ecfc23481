"""Incremental `text/event-stream` decoding (the wire format of OpenAI's streamed answers)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class SSEEvent:
    event: str
    data: bytes


@dataclass(slots=True)
class SSEDecoder:
    """Incremental `text/event-stream` parser: bytes in, one `SSEEvent` per dispatched event out.

    Splits only on CR/LF (`str.splitlines` would also split on U+2028 and friends, which JSON may carry
    raw), skips comments (`: keep-alive`) and the fields we do not use (`id:`, `retry:`), and joins
    multi-line `data:` with `\\n` as the SSE specification says.
    """

    _buffer: bytes = b""
    _data: list[bytes] = field(default_factory=list)
    _event: str = ""

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Events completed by `chunk`. A partial line waits in the buffer for its end."""
        if b"\r" in chunk or self._buffer.endswith(b"\r"):
            chunk = self._normalise_cr(chunk)
        buffer = self._buffer + chunk if self._buffer else chunk
        *lines, self._buffer = buffer.split(b"\n")
        events: list[SSEEvent] = []
        for line in lines:
            if not line:
                if self._data:
                    events.append(self._dispatch())
                self._event = ""
            elif line.startswith(b"data:"):
                value = line[5:]
                self._data.append(value[1:] if value.startswith(b" ") else value)
            elif line.startswith(b"event:"):
                self._event = line[6:].strip().decode("utf-8", "replace")
        return events

    def flush(self) -> list[SSEEvent]:
        """The events still open at the end of the body (a last event sent without its blank line)."""
        return self.feed(b"\n\n")

    def _dispatch(self) -> SSEEvent:
        data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
        event = SSEEvent(self._event, data)
        self._data = []
        return event

    def _normalise_cr(self, chunk: bytes) -> bytes:
        # CRLF and lone CR both end a line. A CR at the very end may be the first half of a CRLF split
        # across reads, so it stays pending (at the end of the buffer) until the next chunk.
        if self._buffer.endswith(b"\r"):
            self._buffer = self._buffer[:-1]
            chunk = b"\r" + chunk
        pending_cr = chunk.endswith(b"\r")
        if pending_cr:
            chunk = chunk[:-1]
        chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        return chunk + b"\r" if pending_cr else chunk
