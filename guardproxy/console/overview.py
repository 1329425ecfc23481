"""The overview page's numbers: traffic over time, block rates, detector latency, labels, errors, and each
detector's precision as reviewers have labelled it. Computed from the records of the chosen time range."""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from guardproxy.audit.agreement import Agreement, agreement
from guardproxy.audit.feedback import Feedback
from guardproxy.audit.records import Outcome, StepRecord
from guardproxy.audit.search import OutcomeCount, RecordFilter, RecordOutline
from guardproxy.audit.store import AuditStore, latest_feedback
from guardproxy.evaluation.metrics import percentile as nearest_rank

# The range selector: name -> seconds back from now (None: everything).
RANGES: dict[str, float | None] = {"1h": 3600.0, "24h": 86400.0, "7d": 7 * 86400.0, "30d": 30 * 86400.0, "all": None}
DEFAULT_RANGE = "24h"
# Step, detector and label figures come from at most the newest this many records of the range (the page says so);
# counts, the chart and precision from all of them.
SAMPLE_RECORDS = 20_000
MAX_REVIEWERS = 12
BUCKETS = 24
CHART_WIDTH, CHART_HEIGHT = 720, 180
# Bar colours of the chart (SVG attributes, so they need no inline style) and the legend.
SERIES = (("allowed", "#4c9a5f"), ("flagged", "#d39b2a"), ("blocked", "#c0392b"), ("other", "#8a8f98"))


@dataclass(slots=True)
class Tally:
    """One step or detector: how often it ran, fired, blocked, failed, and how long it took."""

    ran: int = 0
    fired: int = 0
    blocked: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)

    def add(self, step: StepRecord, record_blocked: bool) -> None:
        if step.error is not None:
            self.errors += 1
        if not step.ran:
            return
        self.ran += 1
        self.latencies.append(step.latency_ms)
        if step.fired:
            self.fired += 1
            self.blocked += int(step.action == "block" and record_blocked)

    @property
    def block_rate(self) -> float | None:
        return self.blocked / self.ran if self.ran else None

    def percentile(self, q: float) -> float | None:
        return percentile(self.latencies, q)


@dataclass(frozen=True, slots=True)
class Precision:
    """`labelled` of a detector's `fires` have a reviewer's label; `false_positives` of them were wrong."""

    fires: int
    labelled: int
    false_positives: int

    @property
    def value(self) -> float | None:
        return (self.labelled - self.false_positives) / self.labelled if self.labelled else None


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    fill: str
    title: str


@dataclass(slots=True)
class Overview:
    range_name: str
    since: float | None
    until: float
    records: int = 0
    sampled: bool = False  # the step figures come from the newest SAMPLE_RECORDS only
    outcomes: Counter[str] = field(default_factory=Counter)
    steps: dict[str, Tally] = field(default_factory=dict)
    detectors: dict[str, Tally] = field(default_factory=dict)
    labels: Counter[str] = field(default_factory=Counter)
    errors: int = 0  # records whose outcome is `error`
    step_errors: int = 0  # steps that failed (timed out or raised)
    fail_closed: int = 0  # blocked records in which a step failed: blocked because it failed (on_error: block)
    labelled: int = 0  # records in range with a reviewer's label
    precision: dict[str, Precision] = field(default_factory=dict)
    agreements: list[Agreement] = field(default_factory=list)  # pairs of reviewers, on requests both labelled
    bars: list[Bar] = field(default_factory=list)
    ticks: list[tuple[float, str]] = field(default_factory=list)
    peak: int = 0

    @property
    def blocked(self) -> int:
        return self.outcomes[Outcome.BLOCKED_INPUT.value] + self.outcomes[Outcome.BLOCKED_OUTPUT.value]


def percentile(values: list[float], q: float) -> float | None:
    """The project's nearest-rank percentile (`evaluation.metrics.percentile`) with q in 0..100, as the page
    names it (p50, p99); None for no values."""
    return nearest_rank(values, q / 100)


def range_bounds(name: str, now: float | None = None) -> tuple[str, float | None, float]:
    """The known range name (else the default), its start (None: all) and end."""
    if name not in RANGES:
        name = DEFAULT_RANGE
    end = time.time() if now is None else now
    back = RANGES[name]
    return name, None if back is None else end - back, end


def build_overview(store: AuditStore, range_name: str, *, now: float | None = None) -> Overview:
    """Counts and the chart: every record of the range (one aggregate query). Step, detector and label figures:
    the newest SAMPLE_RECORDS of them. Precision: every labelled record of the range."""
    name, since, until = range_bounds(range_name, now)
    where = RecordFilter(since=since, until=until)
    start = since
    if start is None:
        oldest = next(iter(store.query(limit=1)), None)
        start = until if oldest is None else oldest.ts
    bucket_s = max(until - start, 1.0) / BUCKETS
    counts = store.outcome_counts(where, start=start, bucket_s=bucket_s)
    sample = list(store.outlines(where, limit=SAMPLE_RECORDS))
    labelled = list(store.outlines(replace(where, labelled=True)))
    history = list(store.feedback(request_ids=[o.request_id for o in labelled]))
    feedback = latest_feedback(history)
    overview = summarise(sample, feedback, range_name=name, since=start, until=until, counts=counts, labelled=labelled)
    overview.sampled = len(sample) < overview.records
    overview.agreements = reviewer_agreements(history)
    return overview


def reviewer_agreements(history: list[Feedback]) -> list[Agreement]:
    """Cohen's kappa of each pair of reviewers who labelled a request in common (the first MAX_REVIEWERS by name)."""
    reviewers = sorted({fb.actor for fb in history})[:MAX_REVIEWERS]
    pairs = (agreement(history, a, b) for a, b in itertools.combinations(reviewers, 2))
    return [pair for pair in pairs if pair.n]


def summarise(
    records: Iterable[RecordOutline],
    feedback: Mapping[str, Feedback],
    *,
    range_name: str,
    since: float | None,
    until: float,
    counts: Iterable[OutcomeCount] | None = None,
    labelled: Iterable[RecordOutline] | None = None,
) -> Overview:
    """`records` give the step, detector and label figures; `counts` the outcome counts per chart bucket (default:
    counted from `records`); `labelled` the records precision is computed on (default: those of `records` that
    have feedback)."""
    records = list(records)
    overview = Overview(range_name, since, until)
    for record in records:
        failed = False
        for step in record.steps:
            overview.steps.setdefault(step.name, Tally()).add(step, record.blocked)
            overview.detectors.setdefault(step.detector, Tally()).add(step, record.blocked)
            if step.error is not None:
                overview.step_errors += 1
                failed = True
            if step.ran and step.fired:
                overview.labels.update(step.labels)
        overview.fail_closed += int(failed and record.blocked)
    start = since if since is not None else min((r.ts for r in records), default=until)
    bucket_s = max(until - start, 1.0) / BUCKETS
    if counts is None:
        counts = _counted(records, start, bucket_s)
    buckets = [Counter[str]() for _ in range(BUCKETS)]
    for count in counts:
        overview.records += count.n
        overview.outcomes[count.outcome.value] += count.n
        buckets[min(BUCKETS - 1, max(0, count.bucket))][_series_of(count.outcome)] += count.n
    overview.errors = overview.outcomes[Outcome.ERROR.value]
    _precision(overview, records, labelled, feedback)
    _chart(overview, buckets, start, bucket_s)
    return overview


def _counted(records: Iterable[RecordOutline], start: float, bucket_s: float) -> list[OutcomeCount]:
    counter = Counter((r.outcome, int((r.ts - start) // bucket_s)) for r in records)
    return [OutcomeCount(outcome, bucket, n) for (outcome, bucket), n in counter.items()]


def _precision(
    overview: Overview,
    records: list[RecordOutline],
    labelled: Iterable[RecordOutline] | None,
    feedback: Mapping[str, Feedback],
) -> None:
    fires: Counter[str] = Counter()
    for record in records:
        fires.update({s.detector for s in record.steps if s.ran and s.fired})
    labelled_fires: Counter[str] = Counter()
    false_positives: Counter[str] = Counter()
    chosen = [r for r in records if r.request_id in feedback] if labelled is None else list(labelled)
    for record in chosen:
        fb = feedback.get(record.request_id)
        if fb is None:
            continue
        overview.labelled += 1
        for detector in {s.detector for s in record.steps if s.ran and s.fired}:
            if _about(fb, record, detector):
                labelled_fires[detector] += 1
                false_positives[detector] += int(fb.label == "false_positive")
    overview.precision = {
        detector: Precision(fires[detector], labelled_fires[detector], false_positives[detector])
        for detector in sorted(set(fires) | set(labelled_fires))
    }


def _about(fb: Feedback, record: RecordOutline, detector: str) -> bool:
    """Whether a label speaks about this detector's fire: it names no step, or a fired step of this detector."""
    if fb.step is None:
        return True
    return any(s.detector == detector and fb.step in (s.name, s.detector) for s in record.steps if s.fired)


def _series_of(outcome: Outcome) -> str:
    if outcome in (Outcome.BLOCKED_INPUT, Outcome.BLOCKED_OUTPUT):
        return "blocked"
    if outcome in (Outcome.ALLOWED, Outcome.FLAGGED):
        return outcome.value
    return "other"


def _chart(overview: Overview, buckets: list[Counter[str]], start: float, bucket_s: float) -> None:
    """Stacked bars per time bucket, as SVG rectangles (the page draws them; no JavaScript)."""
    overview.peak = max((sum(c.values()) for c in buckets), default=0)
    if not overview.peak:
        return
    span = bucket_s * BUCKETS
    slot = CHART_WIDTH / BUCKETS
    for i, bucket in enumerate(buckets):
        y = float(CHART_HEIGHT)
        when = _when(start + i * bucket_s, span)
        for series, colour in SERIES:
            n = bucket[series]
            if not n:
                continue
            height = n / overview.peak * (CHART_HEIGHT - 10)
            y -= height
            overview.bars.append(Bar(i * slot + 2, y, slot - 4, height, colour, f"{when}: {n} {series}"))
    overview.ticks = [(i * slot, _when(start + i * bucket_s, span)) for i in range(0, BUCKETS, 6)]


def _when(ts: float, span: float) -> str:
    moment = datetime.fromtimestamp(ts, UTC)
    return moment.strftime("%H:%M") if span <= 2 * 86400 else moment.strftime("%m-%d %H:%M")
