"""Audit records and feedback -> labelled examples for one target detector.

The detector's own decision is the weakest label (it is what we want to correct); a reviewer's feedback
overrides it. Output-feedback examples are only *candidates*: an answer was blocked, but the prompt that
led to it may still be innocent, so they are kept apart until a config or a reviewer says otherwise.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from guardproxy.audit.feedback import Feedback
from guardproxy.audit.records import AuditRecord, Outcome, StepRecord
from guardproxy.trainer.dataset.config import NEGATIVE, POSITIVE, DatasetBuildConfig

CANDIDATE = "candidate"

# Signal names written to data.jsonl (`signal`).
SIGNAL_BLOCK = "block"
SIGNAL_FLAG = "flag"
SIGNAL_FEEDBACK = "feedback"
SIGNAL_OUTPUT_FEEDBACK = "output_feedback"
SIGNAL_ALLOWED = "allowed"
SIGNAL_DATASET = "dataset"

# Which copy wins when two examples share a text: reviewers over the detector, the detector over traffic.
RANK: dict[str, int] = {
    SIGNAL_FEEDBACK: 3,
    SIGNAL_BLOCK: 2,
    SIGNAL_FLAG: 2,
    SIGNAL_OUTPUT_FEEDBACK: 1,
    SIGNAL_ALLOWED: 1,
    SIGNAL_DATASET: 0,
}


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    label: str  # the positive label, the negative label, or CANDIDATE
    source: str  # audit:<request_id> or a base dataset's name
    signal: str

    @property
    def rank(self) -> int:
        return RANK[self.signal]

    def as_json(self) -> dict[str, str]:
        return {"text": self.text, "label": self.label, "source": self.source, "signal": self.signal}


def _about_target(step: StepRecord, cfg: DatasetBuildConfig) -> bool:
    return step.stage == cfg.stage and (step.name in cfg.detectors or step.detector in cfg.detectors)


def relevant_feedback(
    items: Iterable[Feedback], cfg: DatasetBuildConfig, records: Iterable[AuditRecord] = ()
) -> dict[str, Feedback]:
    """The latest feedback per request that can concern the target: whole-decision or naming a target step.

    A named step is a target step when `detectors` lists it or, in the labelled request's `records`, it is a
    step of a listed detector: reviewers name steps (`input.0.injection`), configs usually list detectors.
    """
    target_steps: dict[str, set[str]] = {}
    for record in records:
        target_steps[record.request_id] = {s.name for s in record.steps if _about_target(s, cfg)}
    latest: dict[str, Feedback] = {}
    for fb in items:  # oldest first: a later label replaces an earlier one
        if fb.stage not in (None, cfg.stage):
            continue
        if fb.step is not None and fb.step not in cfg.detectors and fb.step not in target_steps.get(fb.request_id, ()):
            continue
        latest[fb.request_id] = fb
    return latest


def label_records(
    records: Iterable[AuditRecord], feedback: Mapping[str, Feedback], cfg: DatasetBuildConfig, dropped: Counter[str]
) -> list[Example]:
    """One example (or none, counted in `dropped` by reason) per audit record."""
    examples: list[Example] = []
    for record in records:
        example = _label_one(record, feedback.get(record.request_id), cfg, dropped)
        if example is not None:
            examples.append(example)
    return examples


def _label_one(
    record: AuditRecord, fb: Feedback | None, cfg: DatasetBuildConfig, dropped: Counter[str]
) -> Example | None:
    # The texts as the detector saw them, without the "role: " prefixes of `input_text` (not what it is served).
    text = "\n".join(s.text for s in (record.input_segments if cfg.stage == "input" else record.output_segments))
    if not text.strip():
        dropped["audit:empty_text"] += 1
        return None
    steps = [s for s in record.steps if _about_target(s, cfg)]
    ran = any(s.ran for s in steps)
    fired = [s for s in steps if s.ran and s.fired]
    source = f"audit:{record.request_id}"

    if fb is not None and "feedback" in cfg.signals:
        action = cfg.feedback_labels.get(fb.label, "ignore")
        if action == "keep":
            action = POSITIVE if fired else NEGATIVE if ran else "ignore"
        consistent = not ((fb.label == "false_positive" and not fired) or (fb.label == "false_negative" and fired))
        if action in (POSITIVE, NEGATIVE) and consistent:
            label = cfg.pos_label if action == POSITIVE else cfg.negative_label
            return Example(text, label, source, SIGNAL_FEEDBACK)
        # A false positive on a record where the target never fired is about another step.
        dropped["feedback:ignored" if consistent else "feedback:not_about_target"] += 1

    if not ran:
        dropped["audit:target_not_run"] += 1
        return None
    if fired:
        blocked = any(s.action == "block" for s in fired)
        signal, wanted = (SIGNAL_BLOCK, "blocks") if blocked else (SIGNAL_FLAG, "flags")
        if wanted not in cfg.signals:
            dropped[f"audit:signal_off:{wanted}"] += 1
            return None
        return Example(text, cfg.pos_label, source, signal)
    if record.outcome == Outcome.ALLOWED:
        return Example(text, cfg.negative_label, source, SIGNAL_ALLOWED)
    if record.outcome == Outcome.BLOCKED_OUTPUT and "output_feedback" in cfg.signals and _output_blocked(record, cfg):
        return Example(text, CANDIDATE, source, SIGNAL_OUTPUT_FEEDBACK)
    # Blocked or flagged by another step, target silent: neither a clean negative nor a positive.
    dropped[f"audit:other_outcome:{record.outcome}"] += 1
    return None


def _output_blocked(record: AuditRecord, cfg: DatasetBuildConfig) -> bool:
    wanted = set(cfg.output_detectors)
    return any(
        s.stage == "output"
        and s.ran
        and s.fired
        and s.action == "block"
        and (not wanted or s.name in wanted or s.detector in wanted)
        for s in record.steps
    )
