"""The event page: a record's texts with the spans its steps found marked, and each step's figures.

The store keeps text with every span a step found replaced by `[LABEL]` (the audit view of `redact_all`), so
the marks *are* the spans: each is highlighted and named after the fired steps that reported its label.
With `audit.store_raw: true` the text is raw and carries no marks; the page says so.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from guardproxy.audit.feedback import Feedback
from guardproxy.audit.records import AuditRecord, Segment, StepRecord
from guardproxy.proxy.runtime import Runtime

# `[EMAIL_ADDRESS]`, `[instruction_override]`; only those whose label a step of the record reported are spans.
_MARK = re.compile(r"\[([A-Za-z][\w:.-]*)\]")
_PLACEHOLDER_NUMBER = re.compile(r"_\d+$")  # an anonymize placeholder, `[PERSON_2]`, should one reach the store


@dataclass(frozen=True, slots=True)
class Piece:
    text: str
    steps: tuple[str, ...] = ()  # non-empty: a span, found by these steps

    @property
    def marked(self) -> bool:
        return bool(self.steps)


@dataclass(frozen=True, slots=True)
class ShownSegment:
    role: str
    index: int
    pieces: tuple[Piece, ...]


@dataclass(frozen=True, slots=True)
class ShownStep:
    step: StepRecord
    threshold: float | None  # from the running policy; None when it no longer has this step


@dataclass(frozen=True, slots=True)
class Detail:
    record: AuditRecord
    input: tuple[ShownSegment, ...]
    output: tuple[ShownSegment, ...]
    steps: tuple[ShownStep, ...]
    history: tuple[Feedback, ...]


def build_detail(record: AuditRecord, history: tuple[Feedback, ...], thresholds: Mapping[str, float]) -> Detail:
    owners: dict[str, list[str]] = {}
    for step in record.steps:  # only fired steps' spans are redacted into marks (`Verdict.sensitive`)
        if not step.fired:
            continue
        for label in step.labels:
            owners.setdefault(label, []).append(step.name)
    return Detail(
        record,
        tuple(_shown(s, owners) for s in record.input_segments),
        tuple(_shown(s, owners) for s in record.output_segments),
        tuple(ShownStep(step, thresholds.get(step.name)) for step in record.steps),
        history,
    )


def split_marks(text: str, owners: Mapping[str, list[str]]) -> tuple[Piece, ...]:
    """The text as plain pieces and marks; a mark is a span when a step of the record reported its label."""
    pieces: list[Piece] = []
    pos = 0
    for match in _MARK.finditer(text):
        steps = owners.get(match.group(1)) or owners.get(_PLACEHOLDER_NUMBER.sub("", match.group(1)))
        if not steps:
            continue
        if match.start() > pos:
            pieces.append(Piece(text[pos : match.start()]))
        pieces.append(Piece(match.group(0), tuple(steps)))
        pos = match.end()
    if pos < len(text) or not pieces:
        pieces.append(Piece(text[pos:]))
    return tuple(pieces)


def _shown(segment: Segment, owners: Mapping[str, list[str]]) -> ShownSegment:
    return ShownSegment(segment.role, segment.index, split_marks(segment.text, owners))


def step_thresholds(runtime: Runtime) -> dict[str, float]:
    """Each step name of the running policy (every profile) and its threshold."""
    found: dict[str, float] = {}
    for chains in (runtime.default, *runtime.profiles.values()):
        for chain in (chains.input, chains.output):
            for step in (*chain.request_steps, *chain.text_steps):
                found.setdefault(step.name, step.threshold)
    return found
