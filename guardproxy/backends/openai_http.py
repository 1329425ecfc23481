"""The `openai` backend: any OpenAI-compatible HTTP API, through one pooled httpx client.

Foreign errors (httpx, JSON) are mapped here into `guardproxy.errors`. Retries (connect errors, 429,
5xx) happen only before any byte of the answer has reached the caller, so a retry never duplicates
output the client has already seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any, get_args

import httpx
import structlog

from guardproxy.backends.base import Endpoint
from guardproxy.backends.configs import OpenAIBackendConfig
from guardproxy.core import JSON
from guardproxy.errors import StreamBroken, UpstreamStatus, UpstreamTimeout, UpstreamUnavailable

# Below the 5 s idle timeout of common servers (uvicorn, many load balancers), so we rarely send on a
# pooled connection the server is just closing.
KEEPALIVE_EXPIRY_S = 4.0
# A Retry-After longer than this is not waited for: the 429/503 goes to the client, who can decide.
RETRY_AFTER_CAP_S = 5.0
# After `[DONE]` the body's closing bytes are read (so the connection returns to the pool) for at most this long.
DRAIN_AFTER_DONE_S = 0.5
_JITTER = 0.1
# 501/505 say "never going to work": retrying them only adds latency.
_NOT_RETRIED_5XX = frozenset({501, 505})
# Failures while sending or waiting for the response head: nothing reached the caller, so a retry is safe.
# RemoteProtocolError/ReadError here are mostly a pooled keep-alive connection closed by the server.
_RETRYABLE_BEFORE_HEAD = (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError, httpx.ReadError)
_DONE = b"[DONE]"

log = structlog.get_logger(__name__)


class OpenAIBackend:
    """Calls `{base_url}/{endpoint}` with JSON bodies; `stream` yields the parsed SSE `data:` objects."""

    def __init__(self, name: str, config: OpenAIBackendConfig) -> None:
        self.name = name
        self._timeout_s = config.timeout_s
        self._max_retries = config.max_retries
        self._backoff_s = config.backoff_s
        self._client = httpx.AsyncClient(
            base_url=config.base_url,
            headers={"content-type": "application/json", **config.headers},
            timeout=httpx.Timeout(config.timeout_s, connect=config.connect_timeout_s),
            limits=httpx.Limits(
                max_connections=config.max_connections,
                max_keepalive_connections=config.max_connections,
                keepalive_expiry=KEEPALIVE_EXPIRY_S,
            ),
            follow_redirects=False,
        )
        if config.api_key:
            self._client.headers["authorization"] = f"Bearer {config.api_key}"
        self._urls = {endpoint: self._client.base_url.join(endpoint) for endpoint in get_args(Endpoint)}
        # Whole header sets, built once (httpx.Headers is case-insensitive, so config cannot duplicate one).
        self._json_headers = httpx.Headers(self._client.headers)
        self._json_headers["accept"] = "application/json"
        self._sse_headers = httpx.Headers(self._client.headers)
        self._sse_headers["accept"] = "text/event-stream"

    async def aclose(self) -> None:
        await self._client.aclose()

    async def complete(self, endpoint: Endpoint, body: JSON) -> JSON:
        request = self._build(endpoint, _without_stream(body), self._json_headers)
        attempt = 0
        while True:
            outcome = await self._complete_once(request, attempt)
            if not isinstance(outcome, _RetryDue):
                return outcome
            await self._pause(outcome, attempt)
            attempt += 1

    async def stream(self, endpoint: Endpoint, body: JSON) -> AsyncIterator[JSON]:
        request = self._build(endpoint, _with_stream(body), self._sse_headers)
        response = await self._open_stream(request)
        events = self._events(response)
        try:
            async for item in events:
                yield item
        finally:
            # Runs also when the consumer stops early (aclose): the upstream connection is released.
            await events.aclose()
            await response.aclose()

    def _build(self, endpoint: Endpoint, body: JSON, headers: httpx.Headers) -> httpx.Request:
        # A Request built from ready parts costs a third of `client.build_request` (~20 µs vs ~60 µs), and
        # leaves out the client's cookie jar: cookies an upstream sets are never replayed across tenants.
        content = json.dumps(body, separators=(",", ":")).encode()
        return httpx.Request("POST", self._urls[endpoint], headers=headers, content=content)

    async def _complete_once(self, request: httpx.Request, attempt: int) -> JSON | _RetryDue:
        try:
            # httpx's read timeout is per read; the config promises a bound on the whole request.
            async with asyncio.timeout(self._timeout_s):
                sent = await self._send(request, attempt)
                if isinstance(sent, _RetryDue):
                    return sent
                content = await self._read_body(sent)
        except TimeoutError as exc:
            raise UpstreamTimeout(f"upstream {self.name!r} did not answer within {self._timeout_s} s") from exc
        status = sent.status_code
        if status < 400:
            return _decode_object(content, status)
        delay = self._retry_delay(sent, attempt)
        if delay is None:
            raise _status_error(status, content)
        return _RetryDue(delay, f"HTTP {status}")

    async def _send(self, request: httpx.Request, attempt: int) -> httpx.Response | _RetryDue:
        """The response with its head read, or the retry that is due instead."""
        try:
            return await self._client.send(request, stream=True)
        except _RETRYABLE_BEFORE_HEAD as exc:
            delay = self._retry_delay(None, attempt)
            if delay is None:
                raise _transport_error(self.name, exc) from exc
            return _RetryDue(delay, type(exc).__name__)
        except httpx.TransportError as exc:
            raise _transport_error(self.name, exc) from exc

    async def _read_body(self, response: httpx.Response) -> bytes:
        try:
            return await response.aread()
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(f"upstream {self.name!r} stalled sending the body") from exc
        except (httpx.TransportError, httpx.DecodingError) as exc:
            raise UpstreamUnavailable(f"upstream {self.name!r} broke off the response: {exc}") from exc

    async def _open_stream(self, request: httpx.Request) -> httpx.Response:
        attempt = 0
        while True:
            sent = await self._send(request, attempt)
            if isinstance(sent, httpx.Response):
                status = sent.status_code
                if status < 400:
                    return sent
                delay = self._retry_delay(sent, attempt)
                if delay is None:
                    raise _status_error(status, await self._read_error_body(sent))
                await sent.aclose()
                sent = _RetryDue(delay, f"HTTP {status}")
            await self._pause(sent, attempt)
            attempt += 1

    async def _read_error_body(self, response: httpx.Response) -> bytes:
        try:
            return await response.aread()
        except (httpx.TransportError, httpx.DecodingError):
            # The status alone is still worth passing on.
            return b""
        finally:
            await response.aclose()

    async def _events(self, response: httpx.Response) -> AsyncGenerator[JSON, None]:
        decoder = SSEDecoder()
        chunks = response.aiter_bytes()
        try:
            async for chunk in chunks:
                for event in decoder.feed(chunk):
                    if event.data == _DONE:
                        await _drain(chunks)
                        return
                    for item in _event_objects(event):
                        yield item
            for event in decoder.flush():
                if event.data == _DONE:
                    return
                for item in _event_objects(event):
                    yield item
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(f"upstream {self.name!r} sent nothing for {self._timeout_s} s mid-stream") from exc
        except (httpx.TransportError, httpx.DecodingError) as exc:
            raise StreamBroken(f"upstream {self.name!r} stream broke: {exc}") from exc
        raise StreamBroken(f"upstream {self.name!r} stream ended without [DONE]")

    def _retry_delay(self, response: httpx.Response | None, attempt: int) -> float | None:
        """Seconds to wait before the next attempt, or None when no retry is due."""
        if attempt >= self._max_retries:
            return None
        if response is not None:
            status = response.status_code
            if status != 429 and (status < 500 or status in _NOT_RETRIED_5XX):
                return None
            hinted = _retry_after_s(response.headers)
            if hinted is not None:
                return hinted if hinted <= RETRY_AFTER_CAP_S else None
        return self._backoff_s * 2.0**attempt * (1.0 + _JITTER * random.random())

    async def _pause(self, retry: _RetryDue, attempt: int) -> None:
        log.warning(
            "upstream_retry", backend=self.name, attempt=attempt + 1, reason=retry.reason, delay_s=round(retry.delay, 3)
        )
        await asyncio.sleep(retry.delay)


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    # Anything after [DONE] is ignored; reading to the end lets httpx keep the connection alive. A
    # server that lingers or breaks here costs only that connection, never the answer already given.
    with contextlib.suppress(TimeoutError, httpx.TransportError, httpx.DecodingError):
        async with asyncio.timeout(DRAIN_AFTER_DONE_S):
            async for _ in chunks:
                pass


def _event_objects(event: SSEEvent) -> list[JSON]:
    try:
        parsed = json.loads(event.data)
    except ValueError:
        parsed = _split_data_lines(event.data)
    items = parsed if isinstance(parsed, list) else [parsed]
    for item in items:
        if not isinstance(item, dict):
            raise StreamBroken(f"upstream stream carried a non-object event: {event.data[:200]!r}")
        if event.event == "error" or item.get("error") is not None:
            raise _stream_error(item)
    return items


def _split_data_lines(data: bytes) -> list[Any]:
    # Some servers put several JSON objects in one event, one per `data:` line (no blank line between).
    if b"\n" in data:
        with contextlib.suppress(ValueError):
            return [json.loads(line) for line in data.split(b"\n")]
    raise StreamBroken(f"upstream stream carried invalid JSON: {data[:200]!r}")


def _stream_error(item: JSON) -> UpstreamStatus:
    error = item.get("error")
    if error is None:  # an `event: error` whose data is the error object itself
        error = item
    if not isinstance(error, dict):
        error = {"message": str(error), "type": "upstream_error"}
    code = error.get("code")
    status = code if isinstance(code, int) and 400 <= code <= 599 else 502
    body = {"error": error}
    return UpstreamStatus(status, body, _error_message(body) or "upstream reported an error mid-stream")


def _status_error(status: int, content: bytes) -> UpstreamStatus:
    body: JSON | None = None
    with contextlib.suppress(ValueError):
        parsed = json.loads(content) if content else None
        body = parsed if isinstance(parsed, dict) else None
    return UpstreamStatus(status, body, _error_message(body) or f"upstream answered HTTP {status}")


def _error_message(body: JSON | None) -> str | None:
    error = body.get("error") if body else None
    message = error.get("message") if isinstance(error, dict) else None
    return message if isinstance(message, str) and message else None


def _transport_error(name: str, exc: httpx.TransportError) -> UpstreamTimeout | UpstreamUnavailable:
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamTimeout(f"upstream {name!r} timed out: {type(exc).__name__}")
    return UpstreamUnavailable(f"upstream {name!r} unreachable: {str(exc) or type(exc).__name__}")


def _decode_object(content: bytes, status: int) -> JSON:
    try:
        parsed = json.loads(content)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise UpstreamStatus(502, None, f"upstream answered HTTP {status} with a body that is not a JSON object")
    return parsed


def _retry_after_s(headers: httpx.Headers) -> float | None:
    # OpenAI sends `retry-after-ms`; the standard header is seconds or an HTTP date.
    value = headers.get("retry-after-ms")
    if value is not None:
        with contextlib.suppress(ValueError):
            return max(0.0, float(value) / 1000.0)
    value = headers.get("retry-after")
    if value is None:
        return None
    with contextlib.suppress(ValueError):
        return max(0.0, float(value))
    with contextlib.suppress(TypeError, ValueError):
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    return None


def _without_stream(body: JSON) -> JSON:
    if "stream" in body or "stream_options" in body:
        return {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
    return body


def _with_stream(body: JSON) -> JSON:
    return body if body.get("stream") is True else {**body, "stream": True}


@dataclass(frozen=True, slots=True)
class _RetryDue:
    delay: float
    reason: str


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
