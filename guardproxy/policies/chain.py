"""The chain runner: detectors report, the policy's steps turn reports into one verdict per text.

All steps of a chain see the same original text and run concurrently (detectors never edit
text, so they are independent); their reports are then folded in YAML order. The first firing
`block` step blocks; `redact`/`anonymize` spans are applied together; `flag` only records.

A step with `escalate:` is a cascade: when its own detector's score is in the escalation band, a second
detector runs on the same text and its report decides the step (`_escalate`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import structlog

from guardproxy.core import Context, Detection, Span, Stage
from guardproxy.detectors.base import Detector, StreamHoldback, is_inline
from guardproxy.detectors.unscanned import UnscannedParts
from guardproxy.errors import PolicyInvalid
from guardproxy.policies.schema import Action, EditAction, Escalation, Step

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class CompiledEscalation:
    """A step's `escalate:`: the detector that decides the texts its own detector scores in [low, high)."""

    detector_name: str
    detector: Detector
    low: float
    high: float
    threshold: float
    timeout_s: float

    def covers(self, score: float) -> bool:
        return in_band(score, self.low, self.high)


def in_band(score: float, low: float, high: float) -> bool:
    """The band rule of `escalate:`, the one place it is written (the cascade bench reads it too)."""
    return low <= score < high


@dataclass(frozen=True, slots=True)
class CompiledStep:
    name: str
    stage: Stage
    detector_name: str
    detector: Detector
    action: Action
    threshold: float
    timeout_s: float
    on_error: Literal["block", "allow"]
    roles: frozenset[str] | None = None
    labels: frozenset[str] | None = None  # only these of the detector's labels count (null: all)
    # `conversation`: the step reads windows of several messages (policies/conversation.py), not single texts.
    scope: Literal["message", "conversation"] = "message"
    window_turns: int = 4
    window_chars: int = 4000
    escalation: CompiledEscalation | None = None
    # The detector (and the escalation's, if any) declares `InlineDetector`: run in the caller's task, without a
    # task or timeout (read once here).
    inline: bool = field(init=False)

    def __post_init__(self) -> None:
        inline = is_inline(self.detector) and (self.escalation is None or is_inline(self.escalation.detector))
        object.__setattr__(self, "inline", inline)  # frozen: set once, at construction


@dataclass(frozen=True, slots=True)
class Escalated:
    """What the escalation detector of a cascade step said about one text (`StepResult.escalation`)."""

    detector_name: str
    ran: bool
    score: float | None
    latency_ms: float
    error: str | None = None


@dataclass(frozen=True, slots=True)
class StepResult:
    step: CompiledStep
    ran: bool
    fired: bool
    score: float | None
    labels: tuple[str, ...]
    spans: tuple[Span, ...]
    latency_ms: float
    error: str | None = None
    label_scores: Mapping[str, float] = field(default_factory=dict)
    # Findings at the threshold whose label the step leaves alone (`labels:`), or that the escalation overruled:
    # never edited in the answer, always redacted in the audit log's copy of the text.
    unacted: tuple[Span, ...] = ()
    # Set when the step's score was in its escalation band: then `score` and `label_scores` are still the step's
    # own detector's, and `fired`, `labels`, `spans` the escalation detector's decision (`ran`: False if it failed).
    escalation: Escalated | None = None

    @property
    def blocks(self) -> bool:
        if not self.ran:
            # A flag step is shadow mode: even failing, it must never change what traffic sees.
            return self.step.on_error == "block" and self.step.action != "flag"
        # `revise` blocks unless the gateway rescues the answer by rewriting it (non-streamed chat only).
        return self.fired and self.step.action in ("block", "revise")


@dataclass(frozen=True, slots=True)
class Edit:
    """A span of the checked text to replace: `redact` -> `[LABEL]`, `anonymize` -> a placeholder,
    `strip` -> nothing, `escape` -> its control characters spelt out (`\\x1b`)."""

    start: int
    end: int
    label: str
    action: EditAction


@dataclass(frozen=True, slots=True)
class Verdict:
    results: tuple[StepResult, ...]
    blocked_by: StepResult | None
    edits: tuple[Edit, ...]
    # Every span of every fired step, whatever its action: what the audit log must not keep.
    sensitive: tuple[Edit, ...] = ()

    @property
    def flagged(self) -> bool:
        return any(r.fired for r in self.results)


_EDIT_ACTIONS: Mapping[str, EditAction] = {
    "redact": "redact",
    "anonymize": "anonymize",
    "strip": "strip",
    "escape": "escape",
}

ALLOW = Verdict(results=(), blocked_by=None, edits=(), sensitive=())


def compile_steps(stage: Stage, steps: Sequence[Step], detectors: dict[str, Detector]) -> tuple[CompiledStep, ...]:
    return tuple(
        CompiledStep(
            name=s.name or f"{stage}.{i}.{s.detector}",
            stage=stage,
            detector_name=s.detector,
            detector=detectors[s.detector],
            action=s.action,
            threshold=s.threshold,
            timeout_s=s.timeout_ms / 1000.0,
            on_error=s.on_error,
            roles=None if s.roles is None else frozenset(s.roles),
            labels=None if s.labels is None else frozenset(s.labels),
            scope=s.scope,
            window_turns=s.window_turns,
            window_chars=s.window_chars,
            escalation=None if s.escalate is None else compile_escalation(s.escalate, detectors),
        )
        for i, s in enumerate(steps)
    )


def compile_escalation(e: Escalation, detectors: Mapping[str, Detector]) -> CompiledEscalation:
    low, high = e.band
    return CompiledEscalation(e.detector, detectors[e.detector], low, high, e.threshold, e.timeout_ms / 1000.0)


def compile_unscanned(stage: Stage, mode: Literal["allow", "flag", "block"]) -> CompiledStep:
    """The step that records parts no detector can read; `proxy.unscanned` decides its action."""
    return compile_builtin(f"{stage}.unscanned", stage, UnscannedParts(), mode)


def compile_builtin(
    name: str, stage: Stage, detector: Detector, mode: Literal["allow", "flag", "block"]
) -> CompiledStep:
    """A check the proxy runs itself, whose action one `proxy:` setting decides (`unscanned`, `response_schema`).

    `allow` still records the step (its score) but never fires it: its threshold is out of reach.
    """
    return CompiledStep(
        name=name,
        stage=stage,
        detector_name=detector.name,
        detector=detector,
        action="block" if mode == "block" else "flag",
        threshold=2.0 if mode == "allow" else 0.5,
        timeout_s=1.0,
        on_error="block",
    )


async def run_step(step: CompiledStep, text: str, ctx: Context) -> StepResult:
    """The step's detector (and, for a score in its escalation band, the escalation's) as a task, with timeouts."""
    return await _run(step, text, ctx, timed=True)


async def run_inline(step: CompiledStep, text: str, ctx: Context) -> StepResult:
    """The same for an inline step: in the caller's task, no timeout (its detectors never await)."""
    return await _run(step, text, ctx, timed=False)


async def _run(step: CompiledStep, text: str, ctx: Context, *, timed: bool) -> StepResult:
    started = time.perf_counter()
    try:
        detection = await _detect(step.detector, text, ctx, step.timeout_s if timed else None)
    except Exception as exc:  # noqa: BLE001 - any detector crash is mapped to the step's on_error policy
        return _not_run(step, started, _failure(step.name, step.detector_name, exc, step.timeout_s))
    result = _judge(step, detection, started)
    escalation = step.escalation
    if escalation is None or result.score is None or not escalation.covers(result.score):
        return result
    return await _escalate(step, escalation, result, text, ctx, started, timed=timed)


async def _detect(detector: Detector, text: str, ctx: Context, timeout_s: float | None) -> Detection:
    if timeout_s is None:
        return await detector.detect(text, ctx)
    async with asyncio.timeout(timeout_s):
        return await detector.detect(text, ctx)


def _failure(step: str, detector: str, exc: Exception, timeout_s: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"timeout after {timeout_s * 1000:.0f} ms"
    log.warning("detector_failed", step=step, detector=detector, error=repr(exc))
    return f"{type(exc).__name__}: {exc}"


async def _escalate(
    step: CompiledStep,
    escalation: CompiledEscalation,
    own: StepResult,
    text: str,
    ctx: Context,
    started: float,
    *,
    timed: bool,
) -> StepResult:
    """The escalation detector decides: its score against `escalation.threshold` fires the step (or its spans at
    that threshold do), its labels and spans are reported; its failure is the step's error (`on_error`)."""
    asked = time.perf_counter()
    try:
        detection = await _detect(escalation.detector, text, ctx, escalation.timeout_s if timed else None)
    except Exception as exc:  # noqa: BLE001 - a failed judge is mapped to the step's on_error policy
        error = _failure(step.name, escalation.detector_name, exc, escalation.timeout_s)
        said = Escalated(escalation.detector_name, False, None, (time.perf_counter() - asked) * 1000.0, error)
        latency = (time.perf_counter() - started) * 1000.0
        return StepResult(
            step,
            ran=False,
            fired=False,
            score=own.score,
            labels=(),
            spans=(),
            latency_ms=latency,
            error=f"escalation to {escalation.detector_name!r} failed: {error}",
            unacted=own.spans + own.unacted,
            escalation=said,
        )
    decision = _decide(escalation.threshold, detection)
    finished = time.perf_counter()
    said = Escalated(escalation.detector_name, True, detection.score, (finished - asked) * 1000.0)
    return StepResult(
        step,
        True,
        decision.fired,
        own.score,
        decision.labels,
        decision.spans,
        (finished - started) * 1000.0,
        label_scores=own.label_scores,
        # What the step's own detector found stays out of the audit log even when the escalation overrules it.
        unacted=own.spans + own.unacted,
        escalation=said,
    )


def _not_run(step: CompiledStep, started: float, error: str) -> StepResult:
    latency = (time.perf_counter() - started) * 1000.0
    return StepResult(step, ran=False, fired=False, score=None, labels=(), spans=(), latency_ms=latency, error=error)


@dataclass(frozen=True, slots=True)
class _Decision:
    fired: bool
    labels: tuple[str, ...]
    spans: tuple[Span, ...]


def _decide(threshold: float, d: Detection) -> _Decision:
    # The overall score decides (several weak signals may add up); spans at or above the
    # threshold are what redact/anonymize act on, and any of them fires the step too.
    found = tuple(s for s in d.spans if s.score >= threshold)
    fired = d.score >= threshold or bool(found)
    # A category the detector scores fires at the step's threshold, not the detector's default one.
    labels = tuple(x for x in d.labels if d.label_scores.get(x, 1.0) >= threshold) if fired else ()
    return _Decision(fired, labels, found)


def _judge(step: CompiledStep, d: Detection, started: float) -> StepResult:
    latency = (time.perf_counter() - started) * 1000.0
    if step.labels is not None:
        found = tuple(s for s in d.spans if s.score >= step.threshold)
        return _judge_labels(step, d, found, latency)
    decision = _decide(step.threshold, d)
    return StepResult(
        step, True, decision.fired, d.score, decision.labels, decision.spans, latency, label_scores=d.label_scores
    )


def _judge_labels(step: CompiledStep, d: Detection, found: tuple[Span, ...], latency: float) -> StepResult:
    """A step with `labels:` judges only those: its spans, and its categories at their own scores (else at their
    best span's, else at the detector's score). The overall score no longer decides on its own."""
    assert step.labels is not None
    spans = tuple(s for s in found if s.label in step.labels)

    def score_of(label: str) -> float:
        if label in d.label_scores:
            return d.label_scores[label]
        return max((s.score for s in d.spans if s.label == label), default=d.score)

    scores = {x: score_of(x) for x in d.labels if x in step.labels}
    score = max([*scores.values(), *(s.score for s in spans)], default=0.0)
    labels = tuple(x for x, v in scores.items() if v >= step.threshold)
    fired = bool(spans) or bool(labels)
    unacted = tuple(s for s in found if s.label not in step.labels)
    return StepResult(step, True, fired, score, labels, spans, latency, label_scores=d.label_scores, unacted=unacted)


def fold(results: Sequence[StepResult]) -> Verdict:
    blocked_by = next((r for r in results if r.blocks), None)
    # Edits are kept even when blocked: the audit log still needs the redacted view of the text.
    edits: list[Edit] = []
    for r in results:
        action = _EDIT_ACTIONS.get(r.step.action)
        if r.fired and action is not None:
            edits.extend(Edit(s.start, s.end, s.label, action) for s in r.spans)
    sensitive = [Edit(s.start, s.end, s.label, "redact") for r in results if r.fired for s in r.spans]
    sensitive += [Edit(s.start, s.end, s.label, "redact") for r in results for s in r.unacted]
    return Verdict(tuple(results), blocked_by, _non_overlapping(edits), _non_overlapping(sensitive))


def _non_overlapping(edits: list[Edit]) -> tuple[Edit, ...]:
    # Earliest start wins, then the longest; a later overlapping edit is dropped because the
    # text it points at is already replaced.
    kept: list[Edit] = []
    for e in sorted(edits, key=lambda e: (e.start, -e.end)):
        if kept and e.start < kept[-1].end:
            if e.end > kept[-1].end:
                last = kept[-1]
                kept[-1] = Edit(last.start, e.end, last.label, last.action)
            continue
        kept.append(e)
    return tuple(kept)


@dataclass(frozen=True, slots=True)
class Chain:
    """The steps of one stage. `text_steps` run per text; `request_steps` once per request.

    `inline_only`: no text step ever awaits, so checking texts one after another costs less than tasks would.
    """

    stage: Stage
    text_steps: tuple[CompiledStep, ...]
    request_steps: tuple[CompiledStep, ...]
    inline_only: bool
    # Steps of `scope: conversation`: run over windows of messages by `policies/conversation.py`.
    conversation_steps: tuple[CompiledStep, ...] = ()
    # Detectors of text steps that declare `StreamHoldback` (read once, here): streams hold unfinished matches.
    holdbacks: tuple[StreamHoldback, ...] = ()

    @classmethod
    def build(cls, stage: Stage, steps: tuple[CompiledStep, ...]) -> Chain:
        for s in steps:
            if s.scope == "conversation" and s.detector.scope != "text":
                raise PolicyInvalid(f"{s.name}: detector {s.detector_name!r} checks whole requests, not conversations")
            if s.escalation is not None and "request" in (s.detector.scope, s.escalation.detector.scope):
                raise PolicyInvalid(
                    f"{s.name}: a cascade needs two detectors that check texts; {s.detector_name!r} escalating to "
                    f"{s.escalation.detector_name!r} includes one that checks whole requests"
                )
        text_steps = tuple(s for s in steps if s.detector.scope == "text" and s.scope == "message")
        detectors = {id(s.detector): s.detector for s in text_steps}.values()
        return cls(
            stage,
            text_steps,
            tuple(s for s in steps if s.detector.scope == "request"),
            inline_only=all(s.inline for s in text_steps),
            conversation_steps=tuple(s for s in steps if s.scope == "conversation"),
            holdbacks=tuple(d for d in detectors if isinstance(d, StreamHoldback)),
        )

    def unfinished_from(self, text: str) -> int:
        """Where the earliest match some detector cannot judge yet begins (len(text): none)."""
        starts = [found for h in self.holdbacks if (found := h.unfinished_from(text)) is not None]
        return min(starts, default=len(text))

    @property
    def anonymizes(self) -> bool:
        """Whether a step may anonymize (then the request's placeholders belong to its conversation's vault)."""
        return any(s.action == "anonymize" for s in self.text_steps)

    async def check(self, text: str, ctx: Context) -> Verdict:
        if not self.text_steps or not text:
            return ALLOW
        return fold(await _run_all([s for s in self.text_steps if s.roles is None or ctx.role in s.roles], text, ctx))

    async def check_request(self, ctx: Context) -> Verdict:
        if not self.request_steps:
            return ALLOW
        return fold(await _run_all(list(self.request_steps), "", ctx))


async def _run_all(steps: list[CompiledStep], text: str, ctx: Context) -> list[StepResult]:
    """Results in step order: inline steps run in place, the others concurrently as tasks."""
    results: list[StepResult | None] = [await run_inline(s, text, ctx) if s.inline else None for s in steps]
    waiting = [i for i, r in enumerate(results) if r is None]
    if len(waiting) == 1:
        results[waiting[0]] = await run_step(steps[waiting[0]], text, ctx)
    elif waiting:
        for i, r in zip(waiting, await asyncio.gather(*(run_step(steps[i], text, ctx) for i in waiting)), strict=True):
            results[i] = r
    return [r for r in results if r is not None]
