"""Guard-model training rows from the audit store: what reviewers said about answers an output guard step checked.

Output feedback is the guard model's own signal: an answer the guard let through that a reviewer calls unsafe
(`false_negative`) is a positive it must learn; an answer it flagged that a reviewer calls fine
(`false_positive`) and a passed answer a reviewer confirms (`correct`) are negatives. Which feedback counts and
what each label means is the dataset builder's rule (`trainer/dataset/signals.py`: latest feedback per request,
about the target step, consistent with what the step did), used here as it is; this module only turns each
labelled record back into the (user turn, answer) pair the guard reads, which a text-classifier snapshot drops.

The texts are the audit store's: PII-redacted unless the policy sets `audit.store_raw`.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from guardproxy.audit.feedback import Feedback
from guardproxy.audit.records import AuditRecord, StepRecord
from guardproxy.audit.store import AuditStore
from guardproxy.core import TextRole
from guardproxy.detectors.llama_guard_prompt import LLAMA_GUARD_3_CATEGORIES
from guardproxy.trainer.dataset.config import DatasetBuildConfig
from guardproxy.trainer.dataset.signals import SIGNAL_FEEDBACK, label_records, relevant_feedback
from guardproxy.trainer.guard_model.examples import GuardRow

_KNOWN_CODES = frozenset(c.code for c in LLAMA_GUARD_3_CATEGORIES)
# A reviewer names the violated categories in the note ("S2", "unsafe: S1,S10"); Llama Guard answers need them.
_CODE = re.compile(r"\bS(\d{1,2})\b")
_AUDIT = "audit:"


@dataclass(frozen=True, slots=True)
class ReviewedRows:
    """Reviewer-labelled answers of one output guard step, as Agent rows; `dropped` counts what was left out."""

    positives: tuple[GuardRow, ...]
    negatives: tuple[GuardRow, ...]
    dropped: dict[str, int]


def reviewed_rows(store: AuditStore, steps: Sequence[str], *, since: float | None = None) -> ReviewedRows:
    """Agent rows from reviewer feedback on the output steps (or detectors) named in `steps`.

    Unsafe rows need Llama Guard codes: the S-codes of the feedback note, else those the step itself reported
    (a confirmed flag); an unsafe label without either is dropped (`unsafe_without_codes`).
    """
    if not steps:
        raise ValueError("steps: name at least one output step or detector of the guard")
    config = DatasetBuildConfig(
        name="guard-feedback",
        audit_store="-",  # recorded only; the store is given
        target=steps[0],
        detectors=list(steps),
        stage="output",
        signals=["feedback"],
    )
    items = list(store.feedback(since=since))
    ids = {fb.request_id for fb in items}
    records = {r.request_id: r for r in store.query(since=since) if r.request_id in ids}
    latest = relevant_feedback(items, config, records.values())
    dropped: Counter[str] = Counter()
    labelled = [e for e in label_records(records.values(), latest, config, dropped) if e.signal == SIGNAL_FEEDBACK]
    positives: list[GuardRow] = []
    negatives: list[GuardRow] = []
    for example in labelled:
        request_id = example.source.removeprefix(_AUDIT)
        record, fb = records[request_id], latest[request_id]
        unsafe = example.label == config.pos_label
        codes = _codes(fb, _steps_of(record, config)) if unsafe else ()
        if unsafe and not codes:
            dropped["unsafe_without_codes"] += 1
            continue
        row = GuardRow(
            role="Agent",
            user=_last_user_text(record),
            answer=example.text,
            label="unsafe" if unsafe else "safe",
            codes=codes,
            custom=(),
            source=f"{_AUDIT}{request_id}:{fb.label}",
            group=f"{_AUDIT}{request_id}",
        )
        (positives if unsafe else negatives).append(row)
    return ReviewedRows(tuple(positives), tuple(negatives), dict(sorted(dropped.items())))


def _steps_of(record: AuditRecord, config: DatasetBuildConfig) -> list[StepRecord]:
    return [
        s
        for s in record.steps
        if s.stage == "output" and (s.name in config.detectors or s.detector in config.detectors)
    ]


def _codes(fb: Feedback, steps: Iterable[StepRecord]) -> tuple[str, ...]:
    """The reviewer's codes, else the step's own (its labels hold `unsafe`, `S2`, `non_violent_crimes`, ...)."""
    from_note = [f"S{n}" for n in _CODE.findall(fb.note)]
    named = from_note or [label for step in steps if step.fired for label in step.labels]
    codes = {c for c in named if c in _KNOWN_CODES}
    return tuple(sorted(codes, key=lambda c: int(c[1:])))


def _last_user_text(record: AuditRecord) -> str:
    """The user turn the guard read beside the answer: the request's last user message."""
    users = [s.text for s in record.input_segments if s.role == TextRole.USER.value]
    return users[-1] if users else ""


def row_json(row: GuardRow) -> dict[str, Any]:
    """A row in the JSONL format `examples.read_rows` reads (custom categories by name and description)."""
    return {
        "role": row.role,
        "user": row.user,
        "answer": row.answer,
        "label": row.label,
        "codes": list(row.codes),
        "custom": [{"name": c.name, "label": c.label, "description": c.description} for c in row.custom],
        "source": row.source,
        "group": row.group,
    }


def write_rows(path: Path, rows: Iterable[GuardRow]) -> int:
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row_json(row), ensure_ascii=False) + "\n")
            count += 1
    return count
