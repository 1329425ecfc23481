"""Validation: score held-out texts with the shipped int8 ONNX model (the serving code path), pick the threshold
for a target false-positive rate, and report precision/recall/F1/FPR overall and per dataset.

ROC-AUC and PR-AUC are `guardproxy.evaluation.metrics`'s, so a model card and `guardproxy eval` agree."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from guardproxy.evaluation.metrics import average_precision, roc_auc

Scores = npt.NDArray[np.float64]


def threshold_for_fpr(negative_scores: Scores, target_fpr: float, floor: float) -> float:
    """Lowest threshold (score >= t fires) with at most `target_fpr` of the negatives at or above it."""
    if not len(negative_scores):
        return floor
    allowed = int(np.floor(target_fpr * len(negative_scores)))
    ranked = np.sort(negative_scores)[::-1]
    # Just above the highest negative that must stay below the threshold.
    t = float(np.nextafter(ranked[allowed], 1.0)) if allowed < len(ranked) else 0.0
    return min(max(t, floor), 1.0 - 1e-6)


def binary_metrics(
    scores: Scores, positive: npt.NDArray[np.bool_], threshold: float, fpr_mask: npt.NDArray[np.bool_] | None = None
) -> dict[str, Any]:
    """fpr_mask selects the negatives the FPR is about (e.g. only `benign`); default all negatives."""
    fired = scores >= threshold
    tp = int((fired & positive).sum())
    fp = int((fired & ~positive).sum())
    fn = int((~fired & positive).sum())
    neg = ~positive if fpr_mask is None else fpr_mask & ~positive
    has_positives = bool(positive.any())  # precision and F1 of a negatives-only set say nothing
    precision = tp / (tp + fp) if has_positives and tp + fp else None
    recall = tp / (tp + fn) if has_positives else None
    f1 = 2 * tp / (2 * tp + fp + fn) if has_positives else None
    return {
        "n": len(scores),
        "positives": int(positive.sum()),
        "negatives": int((~positive).sum()),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "fpr": float((fired & neg).sum() / neg.sum()) if neg.any() else None,
        "roc_auc": roc_auc(scores.tolist(), positive.tolist()),
        "pr_auc": average_precision(scores.tolist(), positive.tolist()),
    }


def evaluate_scores(
    scores: Sequence[float],
    positive: Sequence[bool],
    datasets: Sequence[str],
    source_labels: Sequence[str],
    *,
    target_fpr: float,
    fpr_labels: Sequence[str] | None,
    min_threshold: float,
    threshold: float | None = None,
) -> dict[str, Any]:
    """`threshold` None: choose it on these scores for the target FPR; else report at the given one."""
    s = np.asarray(scores, dtype=np.float64)
    pos = np.asarray(positive, dtype=bool)
    ds = np.asarray(datasets)
    src = np.asarray(source_labels)
    fpr_mask = np.isin(src, list(fpr_labels)) if fpr_labels else ~pos
    if threshold is None:
        threshold = threshold_for_fpr(s[fpr_mask & ~pos], target_fpr, min_threshold)
    per_dataset = {
        name: binary_metrics(s[ds == name], pos[ds == name], threshold, fpr_mask[ds == name])
        for name in sorted(set(ds.tolist()))
    }
    per_label = {
        label: {"n": int((src == label).sum()), "flagged": float((s[src == label] >= threshold).mean())}
        for label in sorted(set(src.tolist()))
    }
    return {
        "threshold": threshold,
        "target_fpr": target_fpr,
        "fpr_labels": list(fpr_labels) if fpr_labels else "all negatives",
        "overall": binary_metrics(s, pos, threshold, fpr_mask),
        "overall_at_0.5": binary_metrics(s, pos, 0.5, fpr_mask),
        "per_dataset": per_dataset,
        "flagged_rate_per_source_label": per_label,
    }


def evaluate_multilabel(
    probs: npt.NDArray[np.float64],
    targets: npt.NDArray[np.int64],
    labels: Sequence[str],
    groups: dict[str, list[str]],
    datasets: Sequence[str],
    source_labels: Sequence[str],
    *,
    target_fpr: dict[str, float],
    fpr_labels: Sequence[str] | None,
    min_threshold: float,
    thresholds: dict[str, float] | None = None,
) -> dict[str, Any]:
    """A sigmoid head: a threshold per label for its target FPR, metrics per label, and per group (a group
    fires when any of its labels does; a record counts for a group only when all its labels are known)."""
    ds = np.asarray(datasets)
    src = np.asarray(source_labels)
    in_fpr_set = np.isin(src, list(fpr_labels)) if fpr_labels else np.ones(len(src), dtype=bool)
    chosen: dict[str, float] = {}
    per_label: dict[str, Any] = {}
    for j, name in enumerate(labels):
        known = targets[:, j] >= 0
        pos = targets[:, j] == 1
        negatives = probs[known & ~pos & in_fpr_set, j]
        chosen[name] = thresholds[name] if thresholds else threshold_for_fpr(negatives, target_fpr[name], min_threshold)
        per_label[name] = binary_metrics(probs[known, j], pos[known], chosen[name], in_fpr_set[known])
    t = np.asarray([chosen[name] for name in labels])
    fired = probs >= t
    per_group: dict[str, Any] = {}
    for group, members in groups.items():
        cols = [labels.index(m) for m in members]
        known = np.asarray((targets[:, cols] >= 0).all(axis=1), dtype=bool)
        pos = np.asarray((targets[:, cols] == 1).any(axis=1), dtype=bool)
        # Binary metrics over a calibrated group score: the max over labels of prob / threshold, fired at 1.
        score = (probs[:, cols] / t[cols]).max(axis=1)
        overall = binary_metrics(score[known], pos[known], 1.0, in_fpr_set[known])
        per_dataset = {
            name: binary_metrics(
                score[known & (ds == name)], pos[known & (ds == name)], 1.0, in_fpr_set[known & (ds == name)]
            )
            for name in sorted(set(ds[known].tolist()))
        }
        recall_per_label = {
            m: float(fired[targets[:, labels.index(m)] == 1][:, cols].any(axis=1).mean())
            for m in members
            if (targets[:, labels.index(m)] == 1).any()
        }
        per_group[group] = {
            "overall": overall,
            "per_dataset": per_dataset,
            "group_recall_per_true_label": recall_per_label,
            "flagged_rate_per_source_label": {
                label: {
                    "n": int((known & (src == label)).sum()),
                    "flagged": float(fired[known & (src == label)][:, cols].any(axis=1).mean()),
                }
                for label in sorted(set(src[known].tolist()))
            },
        }
    return {
        "thresholds": chosen,
        "target_fpr": target_fpr,
        "fpr_labels": list(fpr_labels) if fpr_labels else "all negatives",
        "per_label": per_label,
        "groups": per_group,
    }
