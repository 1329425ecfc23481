"""The backend seam: anything that answers OpenAI-shaped requests with OpenAI-shaped JSON.

Bodies are plain OpenAI JSON dicts so unknown fields pass through untouched. `stream` yields the
parsed `data:` objects of the SSE stream (without the final `[DONE]`).
Backends raise only `guardproxy.errors` types (UpstreamUnavailable, UpstreamTimeout,
UpstreamStatus, StreamBroken).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Literal, Protocol

from guardproxy.core import JSON

Endpoint = Literal["chat/completions", "completions", "embeddings", "moderations"]


class Backend(Protocol):
    name: str

    async def complete(self, endpoint: Endpoint, body: JSON) -> JSON: ...

    def stream(self, endpoint: Endpoint, body: JSON) -> AsyncIterator[JSON]: ...

    async def aclose(self) -> None: ...
