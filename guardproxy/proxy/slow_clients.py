"""A deadline for request headers, which uvicorn does not have.

uvicorn (0.55) times out a connection only while it is idle between requests (`timeout_keep_alive`), and any
byte received cancels that timer: a client sending its headers one byte a second holds a connection (and a
file descriptor) for as long as it likes. h11 and httptools cap the header *size* (uvicorn's
`h11_max_incomplete_event_size`, 16 KiB by default; httptools a similar internal limit), never the time.

`http_protocol(header_timeout_s)` returns uvicorn's HTTP protocol (httptools when installed, as uvicorn's `auto`
picks, else h11) with one addition: from the moment a connection opens, and again after every response, the
client has `header_timeout_s` seconds to complete the next request's headers; otherwise it gets a 408
`request_timeout` error in OpenAI's shape and the connection is closed. The body has its own deadline
(`proxy.body_read_timeout_s`, in `app.py`), since by then the request is the app's.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from guardproxy.errors import RequestReadTimeout


def _timeout_response(header_timeout_s: float) -> bytes:
    body = json.dumps(
        RequestReadTimeout(f"The request headers did not arrive within {header_timeout_s:g} s.").to_body()
    ).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


def http_protocol(header_timeout_s: float) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol class with a header deadline (pass it as `uvicorn.Config(http=...)`)."""
    base: type[Any]
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        base = HttpToolsProtocol
    except ImportError:  # httptools is optional; uvicorn falls back to h11 the same way
        base = H11Protocol
    response = _timeout_response(header_timeout_s)

    class HeaderDeadlineProtocol(base):  # type: ignore[misc]
        _header_timer: asyncio.TimerHandle | None = None

        def _arm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
            self._header_timer = self.loop.call_later(header_timeout_s, self._headers_too_slow)

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            cycle = self.cycle
            if cycle is not None and not cycle.response_complete:
                return  # a request is in flight: its headers arrived, the body has the app's own deadline
            if not self.transport.is_closing():
                self.transport.write(response)
                self.transport.close()

        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(transport)
            self._arm()

        def on_response_complete(self) -> None:
            self._arm()  # first: the base class may start on pipelined data at once
            super().on_response_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None
            super().connection_lost(exc)

    return HeaderDeadlineProtocol
