"""Detectors that misbehave on purpose, loaded through the `custom` detector type (built as `Class(name, config, deps)`)."""

from __future__ import annotations

import asyncio
from typing import Literal

from guardproxy.core import Context, Detection
from guardproxy.detectors.base import DetectorDeps
from guardproxy.detectors.configs import CustomDetectorConfig


class Crashing:
    scope: Literal["text", "request"] = "text"

    def __init__(self, name: str, config: CustomDetectorConfig, deps: DetectorDeps) -> None:
        self.name = name
        self.trigger = str(config.options.get("trigger", ""))

    async def detect(self, text: str, ctx: Context) -> Detection:
        if self.trigger in text:
            raise RuntimeError("model exploded")
        return Detection(score=0.0)

    async def aclose(self) -> None:
        return None


class Slow:
    scope: Literal["text", "request"] = "text"

    def __init__(self, name: str, config: CustomDetectorConfig, deps: DetectorDeps) -> None:
        self.name = name
        self.delay_s = float(config.options.get("delay_s", 5.0))
        self.trigger = str(config.options.get("trigger", ""))

    async def detect(self, text: str, ctx: Context) -> Detection:
        if self.trigger in text:
            await asyncio.sleep(self.delay_s)
        return Detection(score=0.0)

    async def aclose(self) -> None:
        return None
