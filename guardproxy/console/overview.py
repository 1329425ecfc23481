"""The overview page's numbers: traffic over time, block rates, detector latency, labels, errors, and each
detector's precision as reviewers have labelled it. Computed from the records of the chosen time range."""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from guardproxy.audit.feedback import Feedback
from guardproxy.audit.records import AuditRecord, Outcome, StepRecord
from guardproxy.audit.search import RecordFilter
from guardproxy.audit.store import AuditStore, latest_feedback

# The range selector: name -> seconds back from now (None: everything).
RANGES: dict[str, float | None] = {"1h": 3600.0, "24h": 86400.0, "7d": 7 * 86400.0, "30d": 30 * 86400.0, "all": None}
DEFAULT_RANGE = "24h"
# The overview reads at most this many records (the newest of the range) and says so when it stops there.
MAX_RECORDS = 100_000
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
    capped: bool = False
    outcomes: Counter[str] = field(default_factory=Counter)
    steps: dict[str, Tally] = field(default_factory=dict)
    detectors: dict[str, Tally] = field(default_factory=dict)
    labels: Counter[str] = field(default_factory=Counter)
    errors: int = 0  # records whose outcome is `error`
    step_errors: int = 0  # steps that failed (timed out or raised)
    fail_closed: int = 0  # blocked records in which a step failed: blocked because it failed (on_error: block)
    labelled: int = 0  # records in range with a reviewer's label
    precision: dict[str, Precision] = field(default_factory=dict)
    bars: list[Bar] = field(default_factory=list)
    ticks: list[tuple[float, str]] = field(default_factory=list)
    peak: int = 0

    @property
    def blocked(self) -> int:
        return self.outcomes[Outcome.BLOCKED_INPUT.value] + self.outcomes[Outcome.BLOCKED_OUTPUT.value]


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def range_bounds(name: str, now: float | None = None) -> tuple[str, float | None, float]:
    """The known range name (else the default), its start (None: all) and end."""
    if name not in RANGES:
        name = DEFAULT_RANGE
    end = time.time() if now is None else now
    back = RANGES[name]
    return name, None if back is None else end - back, end


def build_overview(store: AuditStore, range_name: str, *, now: float | None = None) -> Overview:
    name, since, until = range_bounds(range_name, now)
    records = list(store.search(RecordFilter(since=since, until=until), limit=MAX_RECORDS))
    feedback = latest_feedback(store.feedback())
    overview = summarise(records, feedback, range_name=name, since=since, until=until)
    overview.capped = len(records) >= MAX_RECORDS
    return overview


def summarise(
    records: Iterable[AuditRecord],
    feedback: Mapping[str, Feedback],
    *,
    range_name: str,
    since: float | None,
    until: float,
) -> Overview:
    overview = Overview(range_name, since, until)
    fires: Counter[str] = Counter()
    labelled: Counter[str] = Counter()
    false_positives: Counter[str] = Counter()
    timeline: list[tuple[float, str]] = []
    for record in records:
        overview.records += 1
        overview.outcomes[record.outcome.value] += 1
        timeline.append((record.ts, _series_of(record.outcome)))
        overview.errors += int(record.outcome == Outcome.ERROR)
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
        fb = feedback.get(record.request_id)
        overview.labelled += int(fb is not None)
        for detector in sorted({s.detector for s in record.steps if s.ran and s.fired}):
            fires[detector] += 1
            if fb is None or not _about(fb, record, detector):
                continue
            labelled[detector] += 1
            false_positives[detector] += int(fb.label == "false_positive")
    overview.precision = {
        detector: Precision(fires[detector], labelled[detector], false_positives[detector])
        for detector in sorted(fires)
    }
    _chart(overview, timeline)
    return overview


def _about(fb: Feedback, record: AuditRecord, detector: str) -> bool:
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


def _chart(overview: Overview, timeline: list[tuple[float, str]]) -> None:
    """Stacked bars per time bucket, as SVG rectangles (the page draws them; no JavaScript)."""
    if not timeline:
        return
    start = overview.since if overview.since is not None else min(ts for ts, _ in timeline)
    span = max(overview.until - start, 1.0)
    counts = [Counter[str]() for _ in range(BUCKETS)]
    for ts, series in timeline:
        index = min(BUCKETS - 1, max(0, int((ts - start) / span * BUCKETS)))
        counts[index][series] += 1
    overview.peak = max(sum(c.values()) for c in counts)
    slot = CHART_WIDTH / BUCKETS
    for i, bucket in enumerate(counts):
        y = float(CHART_HEIGHT)
        when = _when(start + i * span / BUCKETS, span)
        for series, colour in SERIES:
            n = bucket[series]
            if not n:
                continue
            height = n / overview.peak * (CHART_HEIGHT - 10)
            y -= height
            overview.bars.append(Bar(i * slot + 2, y, slot - 4, height, colour, f"{when}: {n} {series}"))
    overview.ticks = [(i * slot, _when(start + i * span / BUCKETS, span)) for i in range(0, BUCKETS, 6)]


def _when(ts: float, span: float) -> str:
    moment = datetime.fromtimestamp(ts, UTC)
    return moment.strftime("%H:%M") if span <= 2 * 86400 else moment.strftime("%m-%d %H:%M")
