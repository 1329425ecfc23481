"""Core value types shared by every component: small, frozen, typed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

JSON = dict[str, Any]
Stage = Literal["input", "output"]


class TextRole(StrEnum):
    """The role a text is checked as; a step's `roles:` list selects among these."""

    SYSTEM = "system"
    DEVELOPER = "developer"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"  # a tool's result (also the legacy `function` role)
    TOOL_CALL = "tool_call"  # a call the model made: function name and arguments
    TOOL_DEFINITION = "tool_definition"  # what the request declares: tools, functions, response_format schemas
    METADATA = "metadata"  # forwarded fields the model may not read but the upstream receives: user, metadata...
    IMAGE_TEXT = "image_text"  # text read from an image of the request by OCR (`proxy.images.ocr`)


@dataclass(frozen=True, slots=True)
class Span:
    """A character range [start, end) of the checked text that a detector points at."""

    start: int
    end: int
    label: str
    score: float = 1.0


@dataclass(frozen=True, slots=True)
class Detection:
    """What a detector reports. It never edits text and never decides the action."""

    score: float
    labels: tuple[str, ...] = ()
    spans: tuple[Span, ...] = ()
    explanation: str = ""
    # Per-category scores on the detector's own scale (0.5 = its operating point), for detectors with several
    # categories (moderation): /v1/moderations reports them and a step fires a category at its threshold.
    label_scores: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Context:
    """Where the checked text comes from, for detectors that care (template, canary, judges)."""

    request_id: str
    stage: Stage
    role: str = "user"
    model: str = ""
    # The whole OpenAI request body, read-only, for request-level detectors (template).
    request: JSON = field(default_factory=dict)
    # Who sent it (the gateway's `client_label`: address and key hash), so shared model workers can take turns
    # between clients; empty outside the proxy.
    client: str = ""
