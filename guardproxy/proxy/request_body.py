"""Reading a request body with a size limit and a deadline, for every route that takes one."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Request

from guardproxy.errors import BodyTooLarge, RequestReadTimeout

AnyRequest = Request[Any, Any, Any]


async def read_body(request: AnyRequest, limit: int, timeout_s: float, *, what: str = "The request body") -> bytes:
    """The body, or 413 beyond `limit` bytes, or 408 when it takes longer than `timeout_s` in all: a client
    trickling one byte a second would otherwise hold its connection and this handler open for as long as it likes
    (uvicorn times out idle keep-alive connections, never a request body)."""
    too_large = f"{what} is larger than this proxy's limit of {limit} bytes."
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(too_large)
    parts: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            async for part in request.stream():
                size += len(part)
                if size > limit:
                    raise BodyTooLarge(too_large)
                parts.append(part)
    except TimeoutError:
        raise RequestReadTimeout(f"{what} did not arrive within {timeout_s:g} s (proxy.body_read_timeout_s).") from None
    return b"".join(parts)
