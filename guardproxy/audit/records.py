"""Audit record types: one `AuditRecord` per proxied request, one `StepRecord` per policy step.

Records carry text that has already been redacted by the policy chain; the audit sink scrubs it
again as a safety net. Raw text is only present when a policy explicitly asks for it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from guardproxy.core import JSON, Stage, TextRole


class Outcome(StrEnum):
    """How a request ended, as the audit log, the metrics and the trainer read it. Stored as its value."""

    ALLOWED = "allowed"
    FLAGGED = "flagged"  # allowed, and a `flag` step fired
    REVISED = "revised"  # the answer was released after a `revise` step rewrote it
    BLOCKED_INPUT = "blocked_input"
    BLOCKED_OUTPUT = "blocked_output"
    ERROR = "error"  # upstream or proxy failure, a refused request, or a client that hung up mid-stream


BLOCKED_OUTCOMES: frozenset[Outcome] = frozenset({Outcome.BLOCKED_INPUT, Outcome.BLOCKED_OUTPUT})


@dataclass(frozen=True, slots=True)
class Segment:
    """One text the chain checked, as stored: its role (a `TextRole` value), where it sat, and the text.

    `index` is the message of a chat request, the item of a list prompt or input, or the choice of an
    answer; texts outside any list (tool definitions, metadata, a single prompt) have 0. Kept apart so
    that a text containing a newline and "assistant: " is never mistaken for two messages.
    """

    role: str
    index: int
    text: str

    def to_dict(self) -> JSON:
        return {"role": self.role, "index": self.index, "text": self.text}

    @classmethod
    def from_dict(cls, data: JSON) -> Segment:
        return cls(str(data["role"]), int(data["index"]), str(data["text"]))


def segments_to_json(segments: Iterable[Segment]) -> list[JSON]:
    return [s.to_dict() for s in segments]


def segments_from_json(items: Iterable[JSON] | tuple[Segment, ...]) -> tuple[Segment, ...]:
    """Segments from parsed JSON; a tuple of `Segment` (what the SQLite store decodes to) passes as it is."""
    return tuple(item if isinstance(item, Segment) else Segment.from_dict(item) for item in items)


def search_text(segments: Iterable[Segment], *, with_roles: bool) -> str:
    """The segments as one plain text, for full-text search and for readers that want one string.

    Input is written as "role: text" lines and output as the texts alone, the format records had before
    segments existed. Lossy: do not parse it back, read the segments.
    """
    if with_roles:
        return "\n".join(f"{s.role}: {s.text}" for s in segments)
    return "\n".join(s.text for s in segments)


# Records written before segments existed: the input was "role: text" lines (moderation input: plain
# lines), the output one text. `function` was stored as a role before roles were mapped to TextRole.
_LEGACY_ROLE_LINE = re.compile(rf"^({'|'.join(r.value for r in TextRole)}|function): ", re.MULTILINE)


def legacy_input_segments(text: str, endpoint: str) -> tuple[Segment, ...]:
    """Segments of an old record's `input_text`, split on role lines; read once, by the migration.

    Ambiguous by nature (why segments replaced it): a message that itself contains a newline followed
    by a role and ": " is split there. Segments are numbered in order.
    """
    starts = [] if endpoint.endswith("moderations") else list(_LEGACY_ROLE_LINE.finditer(text))
    if not starts or starts[0].start() != 0:
        return (Segment(TextRole.USER.value, 0, text),) if text else ()
    segments = []
    for i, match in enumerate(starts):
        end = starts[i + 1].start() - 1 if i + 1 < len(starts) else len(text)  # -1: the joining newline
        segments.append(Segment(match.group(1), i, text[match.end() : max(end, match.end())]))
    return tuple(segments)


def legacy_output_segments(text: str) -> tuple[Segment, ...]:
    return (Segment(TextRole.ASSISTANT.value, 0, text),) if text else ()


@dataclass(frozen=True, slots=True, kw_only=True)
class EscalationRecord:
    """A cascade step whose score was in its escalation band: the detector that then decided, its score (None
    when it failed: `error`) and its share of the step's latency. The step's own `score` stays its detector's."""

    detector: str
    ran: bool
    latency_ms: float
    score: float | None = None
    error: str | None = None

    def to_dict(self) -> JSON:
        return {
            "detector": self.detector,
            "ran": self.ran,
            "score": self.score,
            "latency_ms": self.latency_ms,
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: JSON) -> EscalationRecord:
        return cls(
            detector=str(data["detector"]),
            ran=bool(data["ran"]),
            latency_ms=float(data["latency_ms"]),
            score=_opt_float(data.get("score")),
            error=data.get("error"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class StepRecord:
    """What one policy step did for one request. `escalation`: set when a cascade step escalated (then `fired`,
    `labels` and `error` are the escalation detector's decision)."""

    name: str
    stage: Stage
    detector: str
    action: str
    ran: bool
    fired: bool
    latency_ms: float
    score: float | None = None
    labels: tuple[str, ...] = ()
    error: str | None = None
    escalation: EscalationRecord | None = None

    def to_dict(self) -> JSON:
        # By hand: dataclasses.asdict deep-copies recursively and was most of the writer's cost.
        data: JSON = {
            "name": self.name,
            "stage": self.stage,
            "detector": self.detector,
            "action": self.action,
            "ran": self.ran,
            "fired": self.fired,
            "score": self.score,
            "labels": list(self.labels),
            "latency_ms": self.latency_ms,
            "error": self.error,
        }
        if self.escalation is not None:  # absent otherwise: records of steps without a cascade are unchanged
            data["escalation"] = self.escalation.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: JSON) -> StepRecord:
        return cls(
            name=str(data["name"]),
            stage=_stage(data["stage"]),
            detector=str(data["detector"]),
            action=str(data["action"]),
            ran=bool(data["ran"]),
            fired=bool(data["fired"]),
            latency_ms=float(data["latency_ms"]),
            score=None if data.get("score") is None else float(data["score"]),
            labels=tuple(str(label) for label in data.get("labels", ())),
            error=data.get("error"),
            escalation=None if data.get("escalation") is None else EscalationRecord.from_dict(data["escalation"]),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditRecord:
    """Everything the audit log keeps about one request. `ts` is a unix timestamp (seconds)."""

    request_id: str
    ts: float
    client: str
    endpoint: str
    model: str
    backend: str
    stream: bool
    outcome: Outcome
    status: int
    latency_ms: float
    steps: tuple[StepRecord, ...] = ()
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    input_segments: tuple[Segment, ...] = ()
    output_segments: tuple[Segment, ...] = ()
    error: str | None = None
    upstream_latency_ms: float | None = None
    meta: JSON = field(default_factory=dict)

    @property
    def blocked(self) -> bool:
        return self.outcome in BLOCKED_OUTCOMES

    @property
    def input_text(self) -> str:
        """The input as "role: text" lines: for search and export, never to be split back."""
        return search_text(self.input_segments, with_roles=True)

    @property
    def output_text(self) -> str:
        return search_text(self.output_segments, with_roles=False)

    def to_dict(self) -> JSON:
        return {
            "request_id": self.request_id,
            "ts": self.ts,
            "client": self.client,
            "endpoint": self.endpoint,
            "model": self.model,
            "backend": self.backend,
            "stream": self.stream,
            "outcome": self.outcome.value,
            "status": self.status,
            "latency_ms": self.latency_ms,
            "upstream_latency_ms": self.upstream_latency_ms,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "steps": [step.to_dict() for step in self.steps],
            "input_segments": segments_to_json(self.input_segments),
            "output_segments": segments_to_json(self.output_segments),
            # Derived, for readers of exports that search text; `from_dict` reads the segments.
            "input_text": self.input_text,
            "output_text": self.output_text,
            "error": self.error,
            "meta": self.meta,
        }

    def to_json(self) -> str:
        # default=str: an odd value in `meta` must never make a record unwritable.
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"), default=str)

    @classmethod
    def from_dict(cls, data: JSON) -> AuditRecord:
        return cls(
            request_id=str(data["request_id"]),
            ts=float(data["ts"]),
            client=str(data["client"]),
            endpoint=str(data["endpoint"]),
            model=str(data["model"]),
            backend=str(data["backend"]),
            stream=bool(data["stream"]),
            outcome=Outcome(data["outcome"]),
            status=int(data["status"]),
            latency_ms=float(data["latency_ms"]),
            upstream_latency_ms=_opt_float(data.get("upstream_latency_ms")),
            prompt_tokens=_opt_int(data.get("prompt_tokens")),
            completion_tokens=_opt_int(data.get("completion_tokens")),
            steps=tuple(StepRecord.from_dict(step) for step in data.get("steps", ())),
            input_segments=(
                segments_from_json(data["input_segments"])
                if "input_segments" in data
                else legacy_input_segments(str(data.get("input_text", "")), str(data["endpoint"]))
            ),
            output_segments=(
                segments_from_json(data["output_segments"])
                if "output_segments" in data
                else legacy_output_segments(str(data.get("output_text", "")))
            ),
            error=data.get("error"),
            meta=dict(data.get("meta") or {}),
        )

    @classmethod
    def from_json(cls, text: str) -> AuditRecord:
        return cls.from_dict(json.loads(text))


def _stage(value: Any) -> Stage:
    if value == "input":
        return "input"
    if value == "output":
        return "output"
    raise ValueError(f"step stage must be 'input' or 'output', got {value!r}")


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


# -- errors of the audit log (here, beside the types, so stores and the protocol import one module) --


class UnknownRequest(LookupError):
    """Feedback for a request id that is not in the audit log (never logged, or not written yet)."""

    def __init__(self, request_id: str) -> None:
        super().__init__(f"no audit record with request id {request_id!r}")
        self.request_id = request_id
