"""Detection metrics as pure functions: confusion counts, ROC-AUC, PR-AUC, percentiles, span matching.

The one home of these definitions: the trainer's validation and the benchmarks import them from here.

Plain Python on purpose: the evaluation command must run on the serving install, which has no
numpy or scikit-learn. Definitions follow scikit-learn's where one exists (ROC-AUC with ties
counted half; PR-AUC as average precision, the step-wise area without interpolation), so the
numbers can be checked against it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

MatchMode = Literal["exact", "overlap"]


def ratio(numerator: int, denominator: int) -> float | None:
    """numerator / denominator, or None when undefined (no samples), never a fake 0."""
    return numerator / denominator if denominator else None


def f1_score(precision: float | None, recall: float | None) -> float | None:
    if precision is None or recall is None:
        return None
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


@dataclass(frozen=True, slots=True)
class Confusion:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    @property
    def positives(self) -> int:
        return self.tp + self.fn

    @property
    def negatives(self) -> int:
        return self.fp + self.tn

    @property
    def precision(self) -> float | None:
        return ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float | None:
        return ratio(self.tp, self.positives)

    @property
    def fpr(self) -> float | None:
        return ratio(self.fp, self.negatives)

    @property
    def f1(self) -> float | None:
        return f1_score(self.precision, self.recall)

    def __add__(self, other: Confusion) -> Confusion:
        return Confusion(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn)


def confusion(flagged: Iterable[bool], positive: Iterable[bool]) -> Confusion:
    """Counts of (prediction, truth) pairs; both iterables must have the same length."""
    tp = fp = fn = tn = 0
    for predicted, actual in zip(flagged, positive, strict=True):
        if predicted and actual:
            tp += 1
        elif predicted:
            fp += 1
        elif actual:
            fn += 1
        else:
            tn += 1
    return Confusion(tp, fp, fn, tn)


def roc_auc(scores: Sequence[float], positive: Sequence[bool]) -> float | None:
    """Probability that a random positive outscores a random negative (ties count half).

    Computed from average ranks (the Mann-Whitney U statistic). None when a class is missing.
    """
    n_pos = sum(1 for p in positive if p)
    n_neg = len(positive) - n_pos
    if len(scores) != len(positive):
        raise ValueError(f"{len(scores)} scores for {len(positive)} labels")
    if n_pos == 0 or n_neg == 0:
        return None
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    rank_sum = 0.0
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        average_rank = (i + j) / 2 + 1  # ranks are 1-based; tied scores share the mean rank
        rank_sum += average_rank * sum(1 for k in order[i : j + 1] if positive[k])
        i = j + 1
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


@dataclass(frozen=True, slots=True)
class CurvePoint:
    threshold: float
    precision: float
    recall: float
    fpr: float


def threshold_curve(scores: Sequence[float], positive: Sequence[bool]) -> list[CurvePoint]:
    """One point per distinct score, highest first: what flagging `score >= threshold` would give."""
    if len(scores) != len(positive):
        raise ValueError(f"{len(scores)} scores for {len(positive)} labels")
    n_pos = sum(1 for p in positive if p)
    n_neg = len(positive) - n_pos
    order = sorted(range(len(scores)), key=lambda i: scores[i], reverse=True)
    points: list[CurvePoint] = []
    tp = fp = 0
    for at, index in enumerate(order):
        if positive[index]:
            tp += 1
        else:
            fp += 1
        is_last_of_tie = at + 1 == len(order) or scores[order[at + 1]] != scores[index]
        if is_last_of_tie:
            points.append(
                CurvePoint(
                    threshold=scores[index],
                    precision=tp / (tp + fp),
                    recall=tp / n_pos if n_pos else 0.0,
                    fpr=fp / n_neg if n_neg else 0.0,
                )
            )
    return points


def average_precision(scores: Sequence[float], positive: Sequence[bool]) -> float | None:
    """PR-AUC as average precision: sum over thresholds of (recall gain) x precision. None without positives."""
    if not any(positive):
        return None
    area = 0.0
    previous_recall = 0.0
    for point in threshold_curve(scores, positive):
        area += (point.recall - previous_recall) * point.precision
        previous_recall = point.recall
    return area


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank percentile, the one definition every guardproxy figure uses (evaluation reports,
    `guardproxy bench`, the bench/ scripts that report nearest-rank): the smallest value with at least a share
    `q` (in [0, 1]) of the values at or below it, i.e. the ceil(q * n)-th smallest (the smallest for q = 0).
    Always a measured value, never an interpolation: p99 of 100 latencies is the 99th, p50 of 1..100 is 50.
    None for no values."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"percentile: q must be in [0, 1], got {q}")
    if not values:
        return None
    ordered = sorted(values)
    # Rounded first so that float products such as 0.07 * 100 = 7.000000000000001 keep their rank.
    rank = max(1, math.ceil(round(q * len(ordered), 9)))
    return ordered[rank - 1]


@dataclass(frozen=True, slots=True)
class LabeledSpan:
    start: int
    end: int
    entity_type: str


@dataclass(frozen=True, slots=True)
class SpanCounts:
    """Entity-level counts: tp = predicted spans matched to a gold span (one-to-one)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float | None:
        return ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float | None:
        return ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float | None:
        return f1_score(self.precision, self.recall)

    @property
    def support(self) -> int:
        return self.tp + self.fn

    def __add__(self, other: SpanCounts) -> SpanCounts:
        return SpanCounts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)


def _matches(gold: LabeledSpan, predicted: LabeledSpan, mode: MatchMode) -> bool:
    if gold.entity_type != predicted.entity_type:
        return False
    if mode == "exact":
        return gold.start == predicted.start and gold.end == predicted.end
    return gold.start < predicted.end and predicted.start < gold.end


def match_spans(
    gold: Sequence[LabeledSpan], predicted: Sequence[LabeledSpan], mode: MatchMode
) -> dict[str, SpanCounts]:
    """Per-entity counts for one text. Each gold and each predicted span is used at most once.

    Overlap pairs are taken greedily, largest overlap first, so one long prediction covering two
    gold names counts one hit and one miss rather than two hits.
    """
    pairs: list[tuple[int, int, int]] = []
    for g, gold_span in enumerate(gold):
        for p, predicted_span in enumerate(predicted):
            if _matches(gold_span, predicted_span, mode):
                overlap = min(gold_span.end, predicted_span.end) - max(gold_span.start, predicted_span.start)
                pairs.append((-overlap, g, p))
    used_gold: set[int] = set()
    used_predicted: set[int] = set()
    for _, g, p in sorted(pairs):
        if g not in used_gold and p not in used_predicted:
            used_gold.add(g)
            used_predicted.add(p)
    counts: dict[str, SpanCounts] = {}
    for g, span in enumerate(gold):
        hit = g in used_gold
        counts[span.entity_type] = counts.get(span.entity_type, SpanCounts()) + SpanCounts(tp=int(hit), fn=int(not hit))
    for p, span in enumerate(predicted):
        if p not in used_predicted:
            counts[span.entity_type] = counts.get(span.entity_type, SpanCounts()) + SpanCounts(fp=1)
    return counts


def add_counts(total: dict[str, SpanCounts], more: dict[str, SpanCounts]) -> None:
    """Accumulate per-entity counts into `total` (a local accumulator owned by the caller)."""
    for entity, counts in more.items():
        total[entity] = total.get(entity, SpanCounts()) + counts
