"""Fetching a remote image to read it: only from allow-listed hosts, never from a private address.

Server-side request forgery is the risk: a client names a URL and the proxy fetches it from inside the
network. So a fetch happens only when the policy lists the host (`proxy.images.fetch_hosts`), the address the
name resolves to is checked by the connector's own resolver (the address checked is the address connected to:
no window for a DNS rebinding), private, loopback, link-local and reserved addresses are refused unless the
policy says `fetch_private`, redirects are refused, and size and time are limited.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import ResolveResult
from aiohttp.resolver import ThreadedResolver

from guardproxy.errors import BodyTooLarge


class FetchRefused(Exception):
    """The image was not fetched (host not allowed, private address, redirect, HTTP error): it stays unscanned."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind  # image_url (not allowed) | image_fetch_refused (private address) | image_fetch_failed


@dataclass(frozen=True, slots=True)
class FetchRules:
    hosts: tuple[str, ...]
    allow_private: bool
    timeout_s: float
    max_bytes: int

    def allows_host(self, host: str) -> bool:
        host = host.lower().strip(".")
        return any(host == h or host.endswith("." + h) for h in self.hosts)


def public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class _CheckedResolver(ThreadedResolver):
    """Resolves like the default and drops the addresses the rules refuse; none left is a refusal."""

    def __init__(self, allow_private: bool) -> None:
        super().__init__()
        self._allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await super().resolve(host, port, family)
        kept = [r for r in found if self._allow_private or public_address(r["host"])]
        if not kept:
            raise FetchRefused("image_fetch_refused", f"{host} resolves only to private or reserved addresses")
        return kept


async def fetch_image(url: str, rules: FetchRules, param: str) -> tuple[bytes, str]:
    """The image bytes and their content type. Raises FetchRefused, or 413 for an image over `max_bytes`."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host or not rules.allows_host(host):
        raise FetchRefused("image_url", "host not in proxy.images.fetch_hosts")  # not read, as without OCR
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None and not rules.allow_private and not public_address(host):
        raise FetchRefused("image_fetch_refused", f"{host} is a private or reserved address")
    connector = aiohttp.TCPConnector(resolver=_CheckedResolver(rules.allow_private), use_dns_cache=False)
    timeout = aiohttp.ClientTimeout(total=rules.timeout_s)
    try:
        async with (
            aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
            session.get(url, allow_redirects=False) as response,
        ):
            if response.status != 200:
                raise FetchRefused("image_fetch_failed", f"HTTP {response.status}")
            if (response.content_length or 0) > rules.max_bytes:
                raise _too_large(param, rules.max_bytes)
            data = bytearray()
            async for chunk in response.content.iter_chunked(65536):
                data += chunk
                if len(data) > rules.max_bytes:
                    raise _too_large(param, rules.max_bytes)
            return bytes(data), response.headers.get("content-type", "application/octet-stream")
    except FetchRefused:
        raise
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.__cause__, FetchRefused):
            raise exc.__cause__ from None
        raise FetchRefused("image_fetch_failed", f"{type(exc).__name__}: {exc}") from None
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise FetchRefused("image_fetch_failed", f"{type(exc).__name__}: {exc}") from None


def _too_large(param: str, max_bytes: int) -> BodyTooLarge:
    return BodyTooLarge(
        f"The image at '{param}' is larger than {max_bytes} bytes (proxy.images.max_bytes).", param=param
    )
