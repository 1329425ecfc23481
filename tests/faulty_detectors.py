"""Detectors that misbehave on purpose, loaded through the `custom` detector type."""

from __future__ import annotations

import asyncio
from typing import Literal

from guardproxy.core import Context, Detection


class Crashing:
    scope: Literal["text", "request"] = "text"

    def __init__(self, name: str, trigger: str = "") -> None:
        self.name = name
        self.trigger = trigger

    async def detect(self, text: str, ctx: Context) -> Detection:
        if self.trigger in text:
            raise RuntimeError("model exploded")
        return Detection(score=0.0)

    async def aclose(self) -> None:
        return None


class Slow:
    scope: Literal["text", "request"] = "text"

    def __init__(self, name: str, delay_s: float = 5.0, trigger: str = "") -> None:
        self.name = name
        self.delay_s = delay_s
        self.trigger = trigger

    async def detect(self, text: str, ctx: Context) -> Detection:
        if self.trigger in text:
            await asyncio.sleep(self.delay_s)
        return Detection(score=0.0)

    async def aclose(self) -> None:
        return None
