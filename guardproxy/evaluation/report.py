"""Turn per-record results into predictions lines, the JSON report and a short text summary.

A "view" is what one detector (or all named detectors together, "combined") said about each
record. Combined: flagged when any detector fired (as in the proxy, where any step may act), score
= the highest score, spans = all spans. Metrics are computed the same way for every view.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from guardproxy.core import JSON
from guardproxy.evaluation.data import Dataset, Record
from guardproxy.evaluation.metrics import (
    Confusion,
    LabeledSpan,
    SpanCounts,
    add_counts,
    average_precision,
    confusion,
    match_spans,
    percentile,
    roc_auc,
)
from guardproxy.evaluation.runner import RecordResult, Target

COMBINED = "combined"
_MAX_ERROR_EXAMPLES = 5


@dataclass(frozen=True, slots=True)
class Prediction:
    fired: bool
    score: float | None  # None: no detector of the view ran on this record (all failed)
    spans: tuple[LabeledSpan, ...]
    errors: tuple[str, ...]


def views(results: Sequence[RecordResult], targets: Sequence[Target]) -> dict[str, list[Prediction]]:
    """Per detector, plus "combined" when several are named."""
    by_view: dict[str, list[Prediction]] = {t.name: [] for t in targets}
    if len(targets) > 1:
        by_view[COMBINED] = []
    for result in results:
        singles = [_single(result, t.name) for t in targets]
        for target, prediction in zip(targets, singles, strict=True):
            by_view[target.name].append(prediction)
        if len(targets) > 1:
            by_view[COMBINED].append(_combine(singles))
    return by_view


def _single(result: RecordResult, name: str) -> Prediction:
    r = result.results[name]
    # A detector may point at the same text twice for two reasons (two rules): that is one prediction.
    spans = tuple(dict.fromkeys(LabeledSpan(s.start, s.end, s.label) for s in r.spans))
    return Prediction(r.fired, r.score, spans, () if r.error is None else (f"{name}: {r.error}",))


def _combine(predictions: Sequence[Prediction]) -> Prediction:
    scores = [p.score for p in predictions if p.score is not None]
    spans = tuple(dict.fromkeys(s for p in predictions for s in p.spans))
    return Prediction(
        fired=any(p.fired for p in predictions),
        score=max(scores) if scores else None,
        spans=spans,
        errors=tuple(e for p in predictions for e in p.errors),
    )


def prediction_line(result: RecordResult, targets: Sequence[Target]) -> JSON:
    """One line of --predictions: the contract's keys first, then each detector's own result."""
    singles = {t.name: result.results[t.name] for t in targets}
    scores = [r.score for r in singles.values() if r.score is not None]
    fired = [r for r in singles.values() if r.fired]
    return {
        "index": result.record.index,
        "flagged": bool(fired),
        "score": max(scores) if scores else None,
        "labels": list(dict.fromkeys(label for r in fired for label in r.labels)),
        "spans": [
            {"start": s.start, "end": s.end, "label": s.label, "score": s.score, "detector": name}
            for name, r in singles.items()
            for s in r.spans
        ],
        "detectors": {
            name: {
                "fired": r.fired,
                "score": r.score,
                "labels": list(r.labels),
                "latency_ms": round(r.latency_ms, 4),
                "error": r.error,
            }
            for name, r in singles.items()
        },
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def confusion_json(c: Confusion) -> JSON:
    return {
        "positives": c.positives,
        "negatives": c.negatives,
        "tp": c.tp,
        "fp": c.fp,
        "fn": c.fn,
        "tn": c.tn,
        "precision": _round(c.precision),
        "recall": _round(c.recall),
        "f1": _round(c.f1),
        "fpr": _round(c.fpr),
    }


def binary_metrics(predictions: Sequence[Prediction], truth: Sequence[bool]) -> JSON:
    """Confusion at the configured threshold, and threshold-free ranking quality where scores exist."""
    scored = [(p.score, t) for p, t in zip(predictions, truth, strict=True) if p.score is not None]
    scores = [s for s, _ in scored]
    scored_truth = [t for _, t in scored]
    return confusion_json(confusion((p.fired for p in predictions), truth)) | {
        "roc_auc": _round(roc_auc(scores, scored_truth)),
        "pr_auc": _round(average_precision(scores, scored_truth)),
        "scored": len(scored),
        "errors": sum(1 for p in predictions if p.errors),
    }


def record_truth(dataset: Dataset, positives: Collection[str] | None, entities: Collection[str]) -> list[bool]:
    """Whether each record should be flagged: a positive label (label mode), a scored gold span (span mode)."""
    if positives is not None:
        return [any(label in positives for label in r.labels) for r in dataset.records]
    return [any(s.entity_type in entities for s in r.spans) for r in dataset.records]


def entity_universe(dataset: Dataset, by_view: Mapping[str, Sequence[Prediction]]) -> frozenset[str]:
    """Every entity type in the gold data or any prediction: what is scored when nothing narrower is given."""
    gold = {s.entity_type for r in dataset.records for s in r.spans}
    return frozenset(gold | {s.entity_type for preds in by_view.values() for p in preds for s in p.spans})


def label_report(dataset: Dataset, predictions: Sequence[Prediction], positives: Collection[str]) -> JSON:
    truth = record_truth(dataset, positives, ())
    per_label: dict[str, list[int]] = {}
    for record, prediction in zip(dataset.records, predictions, strict=True):
        for label in dict.fromkeys(record.labels):
            counts = per_label.setdefault(label, [0, 0])
            counts[0] += 1
            counts[1] += int(prediction.fired)
    report = binary_metrics(predictions, truth)
    report["per_label"] = {
        label: {"n": n, "flagged": flagged, "flag_rate": _round(flagged / n), "positive": label in positives}
        for label, (n, flagged) in sorted(per_label.items())
    }
    groups = _groups(dataset.records)
    if groups:
        report["per_group"] = {
            group: binary_metrics([predictions[i] for i in indices], [truth[i] for i in indices])
            for group, indices in groups.items()
        }
    return report


def span_report(dataset: Dataset, predictions: Sequence[Prediction], entities: Collection[str]) -> JSON:
    """Per-entity precision/recall/F1 at exact and overlap matching, plus record-level detection.

    Only entity types in `entities` are scored; spans of other types are counted under `ignored_*`
    so that a detector is not charged for entities it was never asked to find.
    """
    exact: dict[str, SpanCounts] = dict.fromkeys(sorted(entities), SpanCounts())
    overlap = dict(exact)
    ignored_gold: dict[str, int] = {}
    ignored_predicted: dict[str, int] = {}
    for record, prediction in zip(dataset.records, predictions, strict=True):
        gold = [s for s in record.spans if s.entity_type in entities]
        found = [s for s in prediction.spans if s.entity_type in entities]
        for s in record.spans:
            if s.entity_type not in entities:
                ignored_gold[s.entity_type] = ignored_gold.get(s.entity_type, 0) + 1
        for s in prediction.spans:
            if s.entity_type not in entities:
                ignored_predicted[s.entity_type] = ignored_predicted.get(s.entity_type, 0) + 1
        add_counts(exact, match_spans(gold, found, "exact"))
        add_counts(overlap, match_spans(gold, found, "overlap"))
    truth = record_truth(dataset, None, entities)
    report: JSON = {
        "entities_scored": sorted(entities),
        "exact": _span_table(exact),
        "overlap": _span_table(overlap),
        "record_level": binary_metrics(predictions, truth),
        "ignored_gold_spans": dict(sorted(ignored_gold.items())),
        "ignored_predicted_spans": dict(sorted(ignored_predicted.items())),
    }
    groups = _groups(dataset.records)
    if groups:
        report["per_group"] = {
            group: binary_metrics([predictions[i] for i in indices], [truth[i] for i in indices])
            for group, indices in groups.items()
        }
    return report


def _span_table(per_entity: dict[str, SpanCounts]) -> JSON:
    total = sum(per_entity.values(), SpanCounts())
    return {"micro": _span_counts_json(total)} | {
        "per_entity": {entity: _span_counts_json(c) for entity, c in per_entity.items()}
    }


def _span_counts_json(c: SpanCounts) -> JSON:
    return {
        "support": c.support,
        "tp": c.tp,
        "fp": c.fp,
        "fn": c.fn,
        "precision": _round(c.precision),
        "recall": _round(c.recall),
        "f1": _round(c.f1),
    }


def _groups(records: Sequence[Record]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for record in records:
        if record.group is not None:
            groups.setdefault(record.group, []).append(record.index)
    return dict(sorted(groups.items()))


def latency_summary(values: Sequence[float]) -> JSON:
    return {
        "n": len(values),
        "p50": _round(percentile(values, 0.5)),
        "p99": _round(percentile(values, 0.99)),
        "mean": _round(sum(values) / len(values)) if values else None,
        "max": _round(max(values)) if values else None,
    }


def latency_report(results: Sequence[RecordResult], targets: Sequence[Target]) -> JSON:
    """Milliseconds per detect call (calls that failed included: a timeout is latency too)."""
    report = {t.name: latency_summary([r.results[t.name].latency_ms for r in results]) for t in targets}
    if len(targets) > 1:
        report["record"] = latency_summary([r.wall_ms for r in results])
    return report


def error_report(results: Sequence[RecordResult], targets: Sequence[Target]) -> JSON:
    report: JSON = {}
    for target in targets:
        failed = [(r.record.index, r.results[target.name].error) for r in results if r.results[target.name].error]
        if failed:
            examples = [{"index": index, "error": error} for index, error in failed[:_MAX_ERROR_EXAMPLES]]
            report[target.name] = {"count": len(failed), "examples": examples}
    return report


def detector_json(target: Target) -> JSON:
    return {
        "type": target.type,
        "threshold": target.threshold,
        "threshold_source": target.threshold_source,
        "timeout_ms": target.timeout_ms,
    }


def summary_lines(report: JSON) -> list[str]:
    """A few human-readable lines for the terminal; the JSON report has everything."""
    lines = [f"{report['records']} records ({report['mode']} mode), stage {report['stage']}, role {report['role']}"]
    for name, metrics in report["metrics"].items():
        block = metrics if report["mode"] == "label" else metrics["record_level"]
        latency = report["latency_ms"].get(name if name != COMBINED else "record", {})
        lines.append(
            f"{name}: precision {_fmt(block['precision'])}  recall {_fmt(block['recall'])}  F1 {_fmt(block['f1'])}  "
            f"FPR {_fmt(block['fpr'])}  ROC-AUC {_fmt(block['roc_auc'])}  PR-AUC {_fmt(block['pr_auc'])}  "
            f"latency p50 {_fmt(latency.get('p50'))} ms  p99 {_fmt(latency.get('p99'))} ms"
            + (f"  errors {block['errors']}" if block["errors"] else "")
        )
        if report["mode"] == "label":
            rates = ", ".join(
                f"{label} {row['flagged']}/{row['n']} ({_fmt(row['flag_rate'])})"
                for label, row in metrics["per_label"].items()
            )
            lines.append(f"  flagged per label: {rates}")
        else:
            for match in ("exact", "overlap"):
                micro = metrics[match]["micro"]
                lines.append(
                    f"  spans ({match}): precision {_fmt(micro['precision'])}  recall {_fmt(micro['recall'])}  "
                    f"F1 {_fmt(micro['f1'])}  over {', '.join(metrics['entities_scored'])}"
                )
            per_entity = metrics["overlap"]["per_entity"].items()
            lines.append(
                "  per entity (overlap) P/R: "
                + ", ".join(f"{e} {_fmt(row['precision'])}/{_fmt(row['recall'])}" for e, row in per_entity)
            )
    return lines


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)
