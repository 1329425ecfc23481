"""The pooled upstream HTTP client of the HTTP backends: one aiohttp session per backend.

Why aiohttp and not httpx: through the whole proxy, httpx with its default transport cost
1.6 ms of CPU per request against 1.0 ms with aiohttp, and httpx over an aiohttp transport
still 1.3 ms — httpx's own Request/Response/Headers objects, cookie extraction and logging cost
about 0.3 ms per proxied request. At concurrency 32 httpcore's pool scan alone took a quarter
of all time. (bench/compare_variants.py measures the three; see bench/README.md.)

This module owns what aiohttp needs to be used safely here: the session is made on first use,
on the loop that uses it; a proxy named by the environment is used as httpx did (`env_proxy`);
cookies are never kept (an upstream's cookies must not be replayed for another tenant);
responses go back to the pool only when read to the end and are closed otherwise, so an
abandoned stream tells the upstream to stop; and aiohttp's errors are sorted into the few kinds
the backends act on.
"""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Mapping
from typing import Literal

import aiohttp
from multidict import CIMultiDict
from yarl import URL

# Response head lines up to this long are accepted (aiohttp's default, 8190, is below h11's).
_MAX_HEAD_LINE = 16_384

FailureKind = Literal["retryable", "timeout", "unavailable"]


def env_proxy(target: URL) -> URL | None:
    """The proxy HTTP_PROXY / HTTPS_PROXY / ALL_PROXY name for `target`, unless NO_PROXY exempts its
    host — what httpx honoured by default. Read once, when a backend is built, not per request.
    Credentials in the proxy URL become its Proxy-Authorization (aiohttp does that)."""
    proxies = urllib.request.getproxies_environment()  # lower-cased schemes; NO_PROXY is "no"
    if not proxies or _bypassed(target.host or "", proxies.get("no", "")):
        return None
    named = proxies.get(target.scheme) or proxies.get("all")
    if not named:
        return None
    return URL(named if "://" in named else f"http://{named}")


def _bypassed(host: str, no_proxy: str) -> bool:
    """NO_PROXY as curl and httpx read it: `*`, or names matching the host or a parent domain."""
    host = host.lower()
    for entry in no_proxy.lower().split(","):
        name = entry.strip().lstrip(".")
        if name == "*" or (name and (host == name or host.endswith("." + name))):
            return True
    return False


class UpstreamSession:
    """A keep-alive connection pool to one or more hosts, with one timeout policy.

    `connect_timeout_s` bounds opening a socket; `read_timeout_s` bounds each wait for data (the
    response head included); `pool_timeout_s` bounds the wait for a free pooled connection.
    """

    def __init__(
        self,
        *,
        max_connections: int,
        keepalive_expiry_s: float,
        connect_timeout_s: float,
        read_timeout_s: float,
        pool_timeout_s: float,
        proxy: URL | None = None,
    ) -> None:
        self._max_connections = max_connections
        self._proxy = proxy
        self._keepalive_expiry_s = keepalive_expiry_s
        # aiohttp's `connect` covers both the wait for a pooled connection and the socket connect.
        self._timeout = aiohttp.ClientTimeout(
            total=None,
            connect=pool_timeout_s + connect_timeout_s,
            sock_connect=connect_timeout_s,
            sock_read=read_timeout_s,
        )
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    async def post(self, url: URL, body: bytes, headers: CIMultiDict[str]) -> aiohttp.ClientResponse:
        """Send; return once the response head is read. The caller must `release` the response."""
        session = self._session or self._open()
        return await session.post(
            url, data=body, headers=headers, timeout=self._timeout, allow_redirects=False, proxy=self._proxy
        )

    async def aclose(self) -> None:
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _open(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("UpstreamSession is closed")
        connector = aiohttp.TCPConnector(
            limit=self._max_connections, limit_per_host=0, keepalive_timeout=self._keepalive_expiry_s
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
            max_line_size=_MAX_HEAD_LINE,
            max_field_size=_MAX_HEAD_LINE,
        )
        return self._session


async def release(response: aiohttp.ClientResponse) -> None:
    """Give the connection back to the pool if the body was read to its end; otherwise close it."""
    if response.content.at_eof():
        response.release()
        return
    # Unread bytes may still come, so the connection cannot be reused; closing it also tells the
    # upstream to stop generating. asyncio closes the socket on the loop's next turn: yield once so
    # it is closed when we return.
    response.close()
    await asyncio.sleep(0)


def build_headers(*layers: Mapping[str, str]) -> CIMultiDict[str]:
    """One header set from layers applied in order; a later layer replaces a name whatever its case."""
    headers: CIMultiDict[str] = CIMultiDict()
    for layer in layers:
        for name, value in layer.items():
            headers[name] = value
    return headers


def failure_kind(exc: aiohttp.ClientError, *, before_head: bool) -> FailureKind:
    """How a backend should treat an aiohttp error.

    `retryable`: nothing reached the caller and the request may not have reached the upstream's
    model — connect failures, and (before the head) a pooled keep-alive connection the server was
    closing or a malformed answer. `timeout`: the upstream stalled; it may be working on it, so it
    is not sent again. `unavailable`: anything else.
    """
    if isinstance(exc, aiohttp.ConnectionTimeoutError | aiohttp.ClientConnectorError):
        return "retryable"
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return "timeout"
    retryable_before_head = (
        aiohttp.ServerDisconnectedError,
        aiohttp.ClientOSError,
        aiohttp.ClientResponseError,
        aiohttp.ClientPayloadError,
    )
    if before_head and isinstance(exc, retryable_before_head):
        return "retryable"
    return "unavailable"


def describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
