"""One request in flight: what it carries, what the chain decided, and its audit record."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from guardproxy.audit.records import AuditRecord, EscalationRecord, Outcome, Segment, StepRecord
from guardproxy.backends.base import Endpoint
from guardproxy.core import JSON
from guardproxy.policies.chain import Escalated, StepResult, Verdict
from guardproxy.policies.operators import VaultScope
from guardproxy.proxy.metrics import Metrics
from guardproxy.proxy.runtime import Chains, Runtime
from guardproxy.proxy.texts import Kind
from guardproxy.state.vault import OpenConversation

TokenCharge = Callable[[int], Awaitable[None]]


@dataclass(slots=True)
class Exchange:
    request_id: str
    kind: Kind
    endpoint: Endpoint
    client: str
    body: JSON
    rt: Runtime
    conversation: OpenConversation  # the request's placeholders and, when shared, the conversation they belong to
    metrics: Metrics
    chains: Chains  # the caller's profile: every chain this request runs is read from here, never from `rt`
    started: float = field(default_factory=time.perf_counter)
    ts: float = field(default_factory=time.time)
    model: str = ""
    backend: str = ""
    stream: bool = False
    outcome: Outcome = Outcome.ALLOWED
    status: int = 200
    error: str | None = None
    input_segments: tuple[Segment, ...] = ()  # as checked, with what `sensitive` steps found redacted
    output_segments: tuple[Segment, ...] = ()
    raw_input_segments: tuple[Segment, ...] = ()  # kept only when the policy sets `audit.store_raw`
    raw_output_segments: tuple[Segment, ...] = ()
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    upstream_latency_ms: float | None = None
    steps: list[StepResult] = field(default_factory=list)
    # Who the caller is for state kept across requests (tool pins): the key's name, else `client`.
    identity: str = ""
    charge: TokenCharge | None = None  # the caller's key pays for what the request spent (auth/limits.py)
    # The API the client called when it is not `endpoint` (`responses`, translated to chat completions).
    api: str | None = None

    @property
    def served_as(self) -> str:
        """The endpoint the audit record and the request metrics name: the one the client called."""
        return self.api or self.endpoint

    # Choice 0's text as the client received it: with the history, what the next turn will send back.
    answer_parts: list[str] = field(default_factory=list)

    @property
    def scope(self) -> VaultScope:
        return self.conversation.scope

    def add(self, verdicts: Iterable[Verdict]) -> None:
        for v in verdicts:
            for r in v.results:
                self.steps.append(r)
                s = r.step
                self.metrics.step_latency.labels(s.stage, s.name, s.detector_name).observe(r.latency_ms / 1000.0)
                if r.blocks:
                    self.metrics.blocks.labels(s.stage, s.name, s.detector_name).inc()
                if r.escalation is not None:
                    decision = "fired" if r.fired else "passed" if r.ran else "error"
                    self.metrics.escalations.labels(s.stage, s.name, r.escalation.detector_name, decision).inc()

    def add_results(self, results: Iterable[StepResult]) -> None:
        self.add([Verdict(tuple(results), None, ())])

    def take_usage(self, response: JSON) -> None:
        usage = response.get("usage")
        if isinstance(usage, dict):
            self.prompt_tokens = usage.get("prompt_tokens", self.prompt_tokens)
            self.completion_tokens = usage.get("completion_tokens", self.completion_tokens)

    def tokens_spent(self) -> int:
        """Prompt + completion tokens from the upstream's `usage`; without it (a stream without
        `include_usage`, an upstream that sends none) ~4 characters per token of the texts checked."""
        if self.prompt_tokens is not None or self.completion_tokens is not None:
            return _count(self.prompt_tokens) + _count(self.completion_tokens)
        chars = sum(len(s.text) for s in (*self.input_segments, *self.output_segments))
        return math.ceil(chars / 4)

    @property
    def flagged(self) -> bool:
        return any(r.fired and r.step.action == "flag" for r in self.steps)

    def record(self, *, store_raw: bool) -> AuditRecord:
        outcome = self.outcome
        if outcome == Outcome.ALLOWED and self.flagged:
            outcome = Outcome.FLAGGED
        return AuditRecord(
            request_id=self.request_id,
            ts=self.ts,
            client=self.client,
            endpoint=self.served_as,
            model=self.model,
            backend=self.backend,
            stream=self.stream,
            outcome=outcome,
            status=self.status,
            latency_ms=(time.perf_counter() - self.started) * 1000.0,
            steps=tuple(_step_record(r) for r in self.steps),
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            input_segments=self.raw_input_segments if store_raw else self.input_segments,
            output_segments=self.raw_output_segments if store_raw else self.output_segments,
            error=self.error,
            upstream_latency_ms=self.upstream_latency_ms,
            # In `meta`, not a column: both stores keep it without a migration; `audit export` shows it.
            meta={"profile": self.chains.profile},
        )


# The first list index in a walker path: `.messages[2].content[0].text` is message 2, `.choices[1]...` choice 1.
_FIRST_INDEX = re.compile(r"\[(\d+)\]")


def segment(role: str, path: str, text: str) -> Segment:
    """The audit segment of a text the walker found at `path` (see `Segment.index`)."""
    found = _FIRST_INDEX.search(path)
    return Segment(str(role), int(found.group(1)) if found else 0, text)


def _count(tokens: object) -> int:
    return tokens if isinstance(tokens, int) and tokens > 0 else 0


def _step_record(r: StepResult) -> StepRecord:
    return StepRecord(
        name=r.step.name,
        stage=r.step.stage,
        detector=r.step.detector_name,
        action=r.step.action,
        ran=r.ran,
        fired=r.fired,
        latency_ms=r.latency_ms,
        score=r.score,
        labels=r.labels,
        error=r.error,
        escalation=None if r.escalation is None else _escalation_record(r.escalation),
    )


def _escalation_record(e: Escalated) -> EscalationRecord:
    return EscalationRecord(detector=e.detector_name, ran=e.ran, latency_ms=e.latency_ms, score=e.score, error=e.error)
