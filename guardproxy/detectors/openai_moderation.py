"""An OpenAI-compatible `/v1/moderations` endpoint of a policy backend as a detector.

Category scores map to the detector's score so that a step's default `threshold: 0.5` means something:
a category with its own entry in `thresholds` is rescaled so that its threshold lands on 0.5 (the
convention of the local classifiers), a category the server flags counts as at least 0.5 when
`use_flags` is on, and otherwise the raw score is used. The detector's score is the highest category
score; its labels are the categories at or above 0.5, highest first (or the top category when none is,
so that a step with a lower threshold still says why it fired).
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from pydantic import Field, field_validator

from guardproxy.config_base import StrictModel
from guardproxy.core import JSON, Context, Detection
from guardproxy.detectors.base import DetectorDeps
from guardproxy.detectors.calibration import calibrate_score
from guardproxy.errors import DetectorFailed, GuardproxyError

_SHOWN_CATEGORIES = 3


class OpenAIModerationConfig(StrictModel):
    """Any OpenAI-compatible moderation endpoint (OpenAI's omni-moderation, llama-stack, your own)."""

    type: Literal["openai_moderation"]
    backend: str = Field(description="A key of `backends:` whose API has `/moderations`.")
    model: str | None = Field(
        None, description="Model sent upstream, e.g. `omni-moderation-latest`; null sends none (server default)."
    )
    categories: list[str] | None = Field(
        None, description="Only these categories count, e.g. `[violence, self-harm/intent]`; null = all."
    )
    thresholds: dict[str, float] = Field(
        default_factory=dict,
        description="Per-category operating points: a category scoring at least its threshold is flagged, "
        "and its score is rescaled so that the threshold maps to 0.5.",
    )
    use_flags: bool = Field(
        True, description="Categories the server flags score at least 0.5 (unless `thresholds` has them)."
    )
    timeout_s: float = Field(10.0, gt=0, description="The detector gives up (a detector error) after this long.")

    @field_validator("thresholds")
    @classmethod
    def _inside_unit_interval(cls, value: dict[str, float]) -> dict[str, float]:
        wrong = sorted(k for k, v in value.items() if not 0.0 < v < 1.0)
        if wrong:
            raise ValueError(f"thresholds must be between 0 and 1 (exclusive); wrong for {wrong}")
        return value


class OpenAIModerationDetector:
    scope: Literal["text", "request"] = "text"

    def __init__(self, name: str, config: OpenAIModerationConfig, deps: DetectorDeps) -> None:
        self.name = name
        self._backend = deps.backend(name, config.backend)
        self._model = config.model
        self._categories = frozenset(config.categories) if config.categories is not None else None
        self._thresholds = dict(config.thresholds)
        self._use_flags = config.use_flags
        self._timeout_s = config.timeout_s

    async def detect(self, text: str, ctx: Context) -> Detection:
        body: JSON = {"input": text}
        if self._model is not None:
            body["model"] = self._model
        try:
            async with asyncio.timeout(self._timeout_s):
                answer = await self._backend.complete("moderations", body)
        except TimeoutError as exc:
            raise DetectorFailed(f"openai_moderation {self.name!r}: no answer within {self._timeout_s} s") from exc
        except GuardproxyError as exc:
            raise DetectorFailed(f"openai_moderation {self.name!r}: backend failed: {exc.message}") from exc
        raw, flags = self._read(answer)
        return self._report(raw, flags)

    def _read(self, answer: JSON) -> tuple[dict[str, float], dict[str, bool]]:
        results = answer.get("results")
        result = results[0] if isinstance(results, list) and results else None
        scores = result.get("category_scores") if isinstance(result, dict) else None
        if not isinstance(result, dict) or not isinstance(scores, dict):
            raise DetectorFailed(f"openai_moderation {self.name!r}: the answer has no results[0].category_scores")
        flags = result.get("categories")
        flags = flags if isinstance(flags, dict) else {}
        raw: dict[str, float] = {}
        for category, value in scores.items():
            if self._categories is not None and category not in self._categories:
                continue
            if not _is_number(value) or not 0.0 <= value <= 1.0:
                raise DetectorFailed(f"openai_moderation {self.name!r}: score of {category!r} is {value!r}")
            raw[category] = float(value)
        return raw, {k: v is True for k, v in flags.items()}

    def _category_score(self, category: str, raw: float, flagged: bool) -> float:
        threshold = self._thresholds.get(category)
        if threshold is not None:
            return calibrate_score(raw, threshold)
        if self._use_flags and flagged:
            return max(raw, 0.5)
        return raw

    def _report(self, raw: dict[str, float], flags: dict[str, bool]) -> Detection:
        if not raw:
            return Detection(score=0.0, explanation="no category scored")
        scores = {c: self._category_score(c, r, flags.get(c, False)) for c, r in raw.items()}
        ranked = sorted(scores, key=lambda c: scores[c], reverse=True)
        labels = tuple(c for c in ranked if scores[c] >= 0.5) or (ranked[0],)
        shown = ", ".join(
            f"{c}={raw[c]:.3f}" + (" (flagged)" if flags.get(c) else "") for c in ranked[:_SHOWN_CATEGORIES]
        )
        return Detection(score=scores[ranked[0]], labels=labels, explanation=shown)

    async def aclose(self) -> None:
        return None  # the backend belongs to the policy runtime


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
