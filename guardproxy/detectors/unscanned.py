"""The built-in check for content no detector can read (images, audio, files, unknown part types).

The gateway hands it the kinds of the unreadable parts, one per line; it reports them as labels
with score 1. `proxy.unscanned` in the policy decides what that means (allow, flag or block), so
such content is never forwarded or delivered without a trace.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from guardproxy.core import Context, Detection


class UnscannedParts:
    name = "unscanned"
    scope: Literal["text", "request"] = "text"
    inline: ClassVar[bool] = True  # InlineDetector

    async def detect(self, text: str, ctx: Context) -> Detection:
        kinds = tuple(sorted({k for k in text.splitlines() if k}))
        return Detection(score=1.0 if kinds else 0.0, labels=kinds, explanation="content the chain cannot read")

    async def aclose(self) -> None:
        return None
