"""Audit record types: one `AuditRecord` per proxied request, one `StepRecord` per policy step.

Records carry text that has already been redacted by the policy chain; the audit sink scrubs it
again as a safety net. Raw text is only present when a policy explicitly asks for it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from guardproxy.core import JSON, Stage

# Outcomes the proxy writes. `outcome` stays a plain string so new outcomes need no schema change.
ALLOWED = "allowed"
FLAGGED = "flagged"
BLOCKED_INPUT = "blocked_input"
BLOCKED_OUTPUT = "blocked_output"
ERROR = "error"
BLOCKED_OUTCOMES: frozenset[str] = frozenset({BLOCKED_INPUT, BLOCKED_OUTPUT})


@dataclass(frozen=True, slots=True, kw_only=True)
class StepRecord:
    """What one policy step did for one request."""

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

    def to_dict(self) -> JSON:
        # By hand: dataclasses.asdict deep-copies recursively and was most of the writer's cost.
        return {
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
    outcome: str
    status: int
    latency_ms: float
    steps: tuple[StepRecord, ...] = ()
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    input_text: str = ""
    output_text: str = ""
    error: str | None = None
    upstream_latency_ms: float | None = None
    meta: JSON = field(default_factory=dict)

    @property
    def blocked(self) -> bool:
        return self.outcome in BLOCKED_OUTCOMES

    def to_dict(self) -> JSON:
        return {
            "request_id": self.request_id,
            "ts": self.ts,
            "client": self.client,
            "endpoint": self.endpoint,
            "model": self.model,
            "backend": self.backend,
            "stream": self.stream,
            "outcome": self.outcome,
            "status": self.status,
            "latency_ms": self.latency_ms,
            "upstream_latency_ms": self.upstream_latency_ms,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "steps": [step.to_dict() for step in self.steps],
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
            outcome=str(data["outcome"]),
            status=int(data["status"]),
            latency_ms=float(data["latency_ms"]),
            upstream_latency_ms=_opt_float(data.get("upstream_latency_ms")),
            prompt_tokens=_opt_int(data.get("prompt_tokens")),
            completion_tokens=_opt_int(data.get("completion_tokens")),
            steps=tuple(StepRecord.from_dict(step) for step in data.get("steps", ())),
            input_text=str(data.get("input_text", "")),
            output_text=str(data.get("output_text", "")),
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
