"""The detector seam: a detector reports (score, spans, labels, explanation); the policy acts."""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

from guardproxy.core import Context, Detection


@runtime_checkable
class Detector(Protocol):
    name: str
    # "text": called once per text of the request/response. "request": once per request,
    # with `ctx.request` holding the whole body (e.g. template validation); `text` is "".
    scope: Literal["text", "request"]

    async def detect(self, text: str, ctx: Context) -> Detection: ...

    async def aclose(self) -> None: ...
