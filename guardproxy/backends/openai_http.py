"""The `openai` backend: any OpenAI-compatible HTTP API, through one pooled aiohttp session.

Foreign errors (aiohttp, JSON) are mapped here into `guardproxy.errors`. Retries (connect errors, 429,
5xx) happen only before any byte of the answer has reached the caller, so a retry never duplicates
output the client has already seen. Why aiohttp rather than httpx: see `http_client`.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import random
import time
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import Any, get_args

import aiohttp
import msgspec
import structlog
from multidict import CIMultiDict
from yarl import URL

from guardproxy.backends.base import Endpoint
from guardproxy.backends.configs import OpenAIBackendConfig
from guardproxy.backends.http_client import (
    UpstreamSession,
    build_headers,
    describe,
    env_proxy,
    failure_kind,
    release,
)
from guardproxy.backends.sse import SSEDecoder, SSEEvent
from guardproxy.core import JSON
from guardproxy.errors import StreamBroken, UpstreamErrorFields, UpstreamStatus, UpstreamTimeout, UpstreamUnavailable

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
_DONE = b"[DONE]"
_USER_AGENT = "guardproxy"
# msgspec: a tenth of the json module's cost (~15 µs a request). Its DecodeError is a ValueError.
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode

log = structlog.get_logger(__name__)


class OpenAIBackend:
    """POSTs JSON to `{base_url}/{endpoint}`; `stream` yields the parsed SSE `data:` objects."""

    def __init__(self, name: str, config: OpenAIBackendConfig) -> None:
        self.name = name
        self._timeout_s = config.timeout_s
        self._max_retries = config.max_retries
        self._backoff_s = config.backoff_s
        base = config.base_url.rstrip("/") + "/"
        self._urls = {endpoint: URL(base + endpoint) for endpoint in get_args(Endpoint)}
        self._session = UpstreamSession(
            max_connections=config.max_connections,
            keepalive_expiry_s=KEEPALIVE_EXPIRY_S,
            connect_timeout_s=config.connect_timeout_s,
            read_timeout_s=config.timeout_s,
            pool_timeout_s=config.timeout_s,
            proxy=env_proxy(URL(base)),
        )
        # Whole header sets, built once. The configured headers replace the defaults and the api key
        # replaces a configured Authorization, whatever the case of the names.
        common = build_headers(
            {"user-agent": _USER_AGENT, "content-type": "application/json"},
            config.headers,
            {"authorization": f"Bearer {config.api_key}"} if config.api_key else {},
        )
        self._json_headers = build_headers(common, {"accept": "application/json"})
        self._sse_headers = build_headers(common, {"accept": "text/event-stream"})

    async def aclose(self) -> None:
        await self._session.aclose()

    async def complete(self, endpoint: Endpoint, body: JSON) -> JSON:
        url, content = self._urls[endpoint], _encode(_without_stream(body))
        attempt = 0
        while True:
            outcome = await self._complete_once(url, content, attempt)
            if not isinstance(outcome, _RetryDue):
                return outcome
            await self._pause(outcome, attempt)
            attempt += 1

    async def stream(self, endpoint: Endpoint, body: JSON) -> AsyncGenerator[JSON, None]:
        response = await self._open_stream(self._urls[endpoint], _encode(_with_stream(body)))
        events = self._events(response)
        try:
            async for item in events:
                yield item
        finally:
            # Runs also when the consumer stops early (aclose): the upstream connection is closed.
            await events.aclose()
            await release(response)

    async def _complete_once(self, url: URL, content: bytes, attempt: int) -> JSON | _RetryDue:
        try:
            # The read timeout is per read; the config promises a bound on the whole request.
            async with asyncio.timeout(self._timeout_s):
                sent = await self._send(url, content, self._json_headers, attempt)
                if isinstance(sent, _RetryDue):
                    return sent
                payload = await self._read_body(sent)
        except TimeoutError as exc:
            raise UpstreamTimeout(f"upstream {self.name!r} did not answer within {self._timeout_s} s") from exc
        status = sent.status
        if status < 400:
            return _decode_object(payload, status)
        delay = self._retry_delay(sent, attempt)
        if delay is None:
            raise _status_error(status, payload)
        return _RetryDue(delay, f"HTTP {status}")

    async def _send(
        self, url: URL, content: bytes, headers: CIMultiDict[str], attempt: int
    ) -> aiohttp.ClientResponse | _RetryDue:
        """The response with its head read, or the retry that is due instead."""
        try:
            return await self._session.post(url, content, headers)
        except aiohttp.ClientError as exc:
            kind = failure_kind(exc, before_head=True)
            if kind == "timeout":
                raise UpstreamTimeout(f"upstream {self.name!r} timed out: {type(exc).__name__}") from exc
            delay = self._retry_delay(None, attempt) if kind == "retryable" else None
            if delay is None:
                raise UpstreamUnavailable(f"upstream {self.name!r} unreachable: {describe(exc)}") from exc
            return _RetryDue(delay, type(exc).__name__)

    async def _read_body(self, response: aiohttp.ClientResponse) -> bytes:
        try:
            return await response.read()
        except aiohttp.ClientError as exc:
            if failure_kind(exc, before_head=False) == "timeout":
                raise UpstreamTimeout(f"upstream {self.name!r} stalled sending the body") from exc
            raise UpstreamUnavailable(f"upstream {self.name!r} broke off the response: {describe(exc)}") from exc
        finally:
            await release(response)  # also on a timeout or cancellation: never leave it half read

    async def _open_stream(self, url: URL, content: bytes) -> aiohttp.ClientResponse:
        attempt = 0
        while True:
            sent = await self._send(url, content, self._sse_headers, attempt)
            if isinstance(sent, aiohttp.ClientResponse):
                status = sent.status
                if status < 400:
                    return sent
                delay = self._retry_delay(sent, attempt)
                if delay is None:
                    raise _status_error(status, await self._read_error_body(sent))
                await release(sent)
                sent = _RetryDue(delay, f"HTTP {status}")
            await self._pause(sent, attempt)
            attempt += 1

    async def _read_error_body(self, response: aiohttp.ClientResponse) -> bytes:
        try:
            return await response.read()
        except aiohttp.ClientError:
            # The status alone is still worth passing on.
            return b""
        finally:
            await release(response)

    async def _events(self, response: aiohttp.ClientResponse) -> AsyncGenerator[JSON, None]:
        decoder = SSEDecoder()
        content = response.content
        try:
            while chunk := await content.readany():
                for event in decoder.feed(chunk):
                    if event.data == _DONE:
                        await _drain(content)
                        return
                    for item in _event_objects(event):
                        yield item
            for event in decoder.flush():
                if event.data == _DONE:
                    return
                for item in _event_objects(event):
                    yield item
        except aiohttp.ClientError as exc:
            if failure_kind(exc, before_head=False) == "timeout":
                message = f"upstream {self.name!r} sent nothing for {self._timeout_s} s mid-stream"
                raise UpstreamTimeout(message) from exc
            raise StreamBroken(f"upstream {self.name!r} stream broke: {describe(exc)}") from exc
        raise StreamBroken(f"upstream {self.name!r} stream ended without [DONE]")

    def _retry_delay(self, response: aiohttp.ClientResponse | None, attempt: int) -> float | None:
        """Seconds to wait before the next attempt, or None when no retry is due."""
        if attempt >= self._max_retries:
            return None
        if response is not None:
            status = response.status
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


async def _drain(content: aiohttp.StreamReader) -> None:
    # Anything after [DONE] is ignored; reading to the end lets the connection go back to the pool.
    # A server that lingers or breaks here costs only that connection, never the answer already given.
    with contextlib.suppress(TimeoutError, aiohttp.ClientError):
        async with asyncio.timeout(DRAIN_AFTER_DONE_S):
            while await content.readany():
                pass


def _event_objects(event: SSEEvent) -> list[JSON]:
    try:
        parsed = _decode(event.data)
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
            return [_decode(line) for line in data.split(b"\n")]
    raise StreamBroken(f"upstream stream carried invalid JSON: {data[:200]!r}")


def _stream_error(item: JSON) -> UpstreamStatus:
    error = item.get("error")
    if error is None:  # an `event: error` whose data is the error object itself
        error = item
    if not isinstance(error, dict):
        error = {"message": str(error)}
    code = error.get("code")
    status = code if isinstance(code, int) and 400 <= code <= 599 else 502
    # The upstream's own words stay in `upstream`: they are untrusted until the output chain checked them.
    return UpstreamStatus(status, UpstreamErrorFields.of(error), "upstream reported an error mid-stream")


def _status_error(status: int, content: bytes) -> UpstreamStatus:
    upstream: UpstreamErrorFields | None = None
    with contextlib.suppress(ValueError):
        parsed = _decode(content) if content else None
        upstream = UpstreamErrorFields.of(parsed.get("error")) if isinstance(parsed, dict) else None
    return UpstreamStatus(status, upstream, f"upstream answered HTTP {status}")


def _decode_object(content: bytes, status: int) -> JSON:
    try:
        parsed = _decode(content)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise UpstreamStatus(502, None, f"upstream answered HTTP {status} with a body that is not a JSON object")
    return parsed


def _retry_after_s(headers: Mapping[str, str]) -> float | None:
    """`headers` must look names up case-insensitively (aiohttp's and httpx's header maps do)."""
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
