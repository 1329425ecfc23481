"""What a reader (the review console, its exports) asks the audit store for: a filter over records and a page cursor.

The filter's rules are written once, in `guardproxy.audit.sql_common.search_query`; each SQL store renders
the two parts that need its dialect (a fired step inside the `steps` JSON, a field of `meta`).
"""

from __future__ import annotations

from dataclasses import dataclass

from guardproxy.audit.feedback import FeedbackLabel
from guardproxy.audit.records import BLOCKED_OUTCOMES, AuditRecord, Outcome, StepRecord
from guardproxy.core import Stage

# The `review` filter's value for records no reviewer has labelled.
UNLABELLED = "unlabelled"


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordFilter:
    """Every field narrows the result; None leaves it open.

    `stage`, `step`, `detector` and `label` match one step that *fired* with all of them (a step that ran and
    stayed quiet is not a match). `text` is a case-insensitive substring of the stored (redacted) input or
    output text; `client` a substring of the client (with keys on: `key:<name> (<prefix>)`). `review` is the
    latest reviewer label; `unlabelled` / `labelled`: no label yet / any label. `since` is inclusive, `until` exclusive (unix seconds).
    """

    outcome: Outcome | None = None
    stage: Stage | None = None
    step: str | None = None
    detector: str | None = None
    label: str | None = None
    model: str | None = None
    client: str | None = None
    profile: str | None = None
    review: FeedbackLabel | None = None
    unlabelled: bool = False
    labelled: bool = False  # some reviewer labelled it
    since: float | None = None
    until: float | None = None
    text: str | None = None

    @property
    def step_match(self) -> StepMatch | None:
        if self.stage is None and self.step is None and self.detector is None and self.label is None:
            return None
        return StepMatch(stage=self.stage, name=self.step, detector=self.detector, label=self.label)


@dataclass(frozen=True, slots=True, kw_only=True)
class StepMatch:
    """One fired step with these attributes (None: any)."""

    stage: Stage | None = None
    name: str | None = None
    detector: str | None = None
    label: str | None = None


@dataclass(frozen=True, slots=True)
class PageCursor:
    """Where a newest-first page ended: the next page holds records strictly before (ts, request_id)."""

    ts: float
    request_id: str


@dataclass(frozen=True, slots=True)
class RecordOutline:
    """A record without its texts: what the console's overview aggregates (decoding a whole record costs ~10x)."""

    request_id: str
    ts: float
    outcome: Outcome
    steps: tuple[StepRecord, ...]

    @property
    def blocked(self) -> bool:
        return self.outcome in BLOCKED_OUTCOMES

    @classmethod
    def of(cls, record: AuditRecord) -> RecordOutline:
        return cls(record.request_id, record.ts, record.outcome, record.steps)


@dataclass(frozen=True, slots=True)
class OutcomeCount:
    """`n` records with this outcome in time bucket `bucket` (see `AuditStore.outcome_counts`)."""

    outcome: Outcome
    bucket: int
    n: int
