"""A deterministic scoring detector for cascade tests, loaded through the `custom` detector type.

`options: {scores: {word: score}, label: NAME, request: bool}`: the score of a text is the highest score of the
words it contains (case-insensitive), 0 without any; the label is reported when the score is above 0. Two of
them make a cascade whose every decision a test can predict: a "fast" one scoring a word in the escalation
band, and a "judge" with its own opinion of other words.
"""

from __future__ import annotations

from typing import Literal

from guardproxy.core import Context, Detection
from guardproxy.detectors.base import DetectorDeps
from guardproxy.detectors.configs import CustomDetectorConfig


class WordScores:
    scope: Literal["text", "request"] = "text"

    def __init__(self, name: str, config: CustomDetectorConfig, deps: DetectorDeps) -> None:
        self.name = name
        self.scores = {str(word).lower(): float(score) for word, score in dict(config.options["scores"]).items()}
        self.label = str(config.options.get("label", name))

    async def detect(self, text: str, ctx: Context) -> Detection:
        lowered = text.lower()
        score = max((s for word, s in self.scores.items() if word in lowered), default=0.0)
        return Detection(score=score, labels=(self.label,) if score > 0 else ())

    async def aclose(self) -> None:
        return None


class RequestWordScores(WordScores):
    """The same, declared as a request-level check: a cascade must refuse it."""

    scope: Literal["text", "request"] = "request"
