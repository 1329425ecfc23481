"""`guardproxy serve` with the upstream HTTP client swapped, to compare clients through the whole proxy.

The variant's backends are injected with `create_app(..., runtime_builder=...)` (no class is patched).

    python bench/serve_variant.py --variant httpx --policy policy.yaml --port 8081

Variants (see bench/README.md, "Comparing upstream clients"):

- ``aiohttp``: the shipped `openai` backend (aiohttp directly, `guardproxy/backends/http_client.py`).
- ``httpx``: the backend's non-streamed path as it was before, on `httpx.AsyncClient` with its default
  transport (httpcore): build an `httpx.Request`, `client.send(stream=True)`, `aread()`.
- ``httpx-over-aiohttp``: the same httpx path, with an `httpx.AsyncBaseTransport` backed by aiohttp
  (keeps httpx as the API; ``AiohttpTransport`` below).

The two httpx variants replace only ``complete`` (what the benchmark exercises), without retries: the
benchmark's upstream never fails.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import get_args

import aiohttp
import httpx
import uvicorn

from guardproxy.backends import openai_http
from guardproxy.backends.base import Backend, Endpoint
from guardproxy.backends.configs import BackendConfig, OpenAIBackendConfig
from guardproxy.backends.registry import build_backend
from guardproxy.core import JSON
from guardproxy.proxy.app import create_app
from guardproxy.proxy.runtime import BackendFactory, build_runtime
from guardproxy.proxy.settings import Settings

VARIANTS = ("aiohttp", "httpx", "httpx-over-aiohttp")


class AiohttpTransport(httpx.AsyncBaseTransport):
    """httpx requests sent by a pooled aiohttp session; bodies stream; errors are not mapped (bench only)."""

    def __init__(self, max_connections: int) -> None:
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._max_connections, keepalive_timeout=4.0)
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,  # httpx decodes
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
            )
        timeout = request.extensions.get("timeout") or {}
        response = await self._session.request(
            request.method,
            str(request.url),
            headers=request.headers.multi_items(),
            data=request.content,
            timeout=aiohttp.ClientTimeout(sock_connect=timeout.get("connect"), sock_read=timeout.get("read")),
            allow_redirects=False,
        )
        return httpx.Response(response.status, headers=response.raw_headers, stream=_Body(response))

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


class _Body(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while chunk := await self._response.content.readany():
            yield chunk

    async def aclose(self) -> None:
        self._response.release()


class HttpxBackend(openai_http.OpenAIBackend):
    """The former httpx request path for non-streamed answers, on a chosen httpx transport."""

    def __init__(self, name: str, config: OpenAIBackendConfig, transport: httpx.AsyncBaseTransport) -> None:
        super().__init__(name, config)
        self._client = httpx.AsyncClient(
            base_url=config.base_url,
            headers={"content-type": "application/json", **config.headers},
            timeout=httpx.Timeout(config.timeout_s, connect=config.connect_timeout_s),
            transport=transport,
            follow_redirects=False,
        )
        self._httpx_urls = {e: self._client.base_url.join(e) for e in get_args(Endpoint)}
        self._httpx_headers = httpx.Headers(self._client.headers)
        self._httpx_headers["accept"] = "application/json"

    async def complete(self, endpoint: Endpoint, body: JSON) -> JSON:
        content = json.dumps(openai_http._without_stream(body), separators=(",", ":")).encode()
        request = httpx.Request("POST", self._httpx_urls[endpoint], headers=self._httpx_headers, content=content)
        response = await self._client.send(request, stream=True)
        payload = await response.aread()
        status = response.status_code
        if status < 400:
            return openai_http._decode_object(payload, status)
        raise openai_http._status_error(status, payload)

    async def aclose(self) -> None:
        await self._client.aclose()
        await super().aclose()


def backend_factory(variant: str) -> BackendFactory:
    """Builds the policy's `openai` backends on the chosen client; other types as the registry does."""
    if variant == "aiohttp":
        return build_backend
    if variant == "httpx":
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=256, keepalive_expiry=4.0)

        def transport(config: OpenAIBackendConfig) -> httpx.AsyncBaseTransport:
            return httpx.AsyncHTTPTransport(limits=limits)

    elif variant == "httpx-over-aiohttp":

        def transport(config: OpenAIBackendConfig) -> httpx.AsyncBaseTransport:
            return AiohttpTransport(config.max_connections)

    else:
        raise SystemExit(f"unknown variant {variant!r}; known: {VARIANTS}")

    def build(name: str, config: BackendConfig) -> Backend:
        if isinstance(config, OpenAIBackendConfig):
            return HttpxBackend(name, config, transport(config))
        return build_backend(name, config)

    return build


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=VARIANTS, required=True)
    parser.add_argument("--policy", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    builder = partial(build_runtime, backend_factory=backend_factory(args.variant))
    app = create_app(Settings(policy_path=args.policy, watch_policy=False), runtime_builder=builder)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
