"""Held-out figures of a guard model's P(unsafe), from the project's one set of metric functions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from guardproxy.evaluation.metrics import average_precision, confusion, roc_auc


@dataclass(frozen=True, slots=True)
class BinaryScores:
    n: int
    positives: int
    threshold: float
    precision: float | None
    recall: float | None
    f1: float | None
    fpr: float | None
    auprc: float | None
    roc_auc: float | None

    def to_dict(self) -> dict[str, Any]:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


def binary_scores(scores: Sequence[float], positive: Sequence[bool], threshold: float = 0.5) -> BinaryScores:
    counts = confusion((s >= threshold for s in scores), positive)
    return BinaryScores(
        n=len(scores),
        positives=counts.positives,
        threshold=threshold,
        precision=counts.precision,
        recall=counts.recall,
        f1=counts.f1,
        fpr=counts.fpr,
        auprc=average_precision(scores, positive),
        roc_auc=roc_auc(scores, positive),
    )
