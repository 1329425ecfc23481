"""The body of `guardproxy eval`: load, run, write predictions, report and plot, print a summary.

Kept apart from `cli.py` so that building the main parser stays cheap (this module imports the
policy schema and chain runner).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from guardproxy.backends.registry import build_backend
from guardproxy.core import JSON
from guardproxy.detectors.base import Detector, DetectorDeps
from guardproxy.detectors.registry import build_detector
from guardproxy.detectors.shared import SharedResources
from guardproxy.evaluation import plot
from guardproxy.evaluation import report as rep
from guardproxy.evaluation.data import DEFAULT_POSITIVE_LABELS, load_dataset, parse_entity_map, split_names
from guardproxy.evaluation.runner import SetupError, Target, compile_targets, evaluate, resolve_targets
from guardproxy.policies.loader import load_policy

Curves = dict[str, tuple[list[float], list[bool], tuple[float, float] | None]]


async def run(args: argparse.Namespace) -> int:
    if args.plot is not None and not plot.plotting_available():
        print(f"guardproxy eval: --plot needs matplotlib: {plot.INSTALL_HINT}", file=sys.stderr)
        return 2
    # Everything that can be wrong with the arguments is found before any detector is built (slow).
    policy = load_policy(args.policy)
    targets = resolve_targets(policy, split_names(args.detector))
    entity_map = parse_entity_map(args.entity_map)
    dataset = load_dataset(args.data, entity_map=entity_map, group_by=args.group_by)
    positives = positive_labels(args.positive_labels, targets) if dataset.mode == "label" else None
    entities = scored_entities(args.entities, targets) if dataset.mode == "span" else None
    stage = args.stage
    role = args.role or ("user" if stage == "input" else "assistant")

    backends = {name: build_backend(name, cfg) for name, cfg in policy.backends.items()}
    detectors: dict[str, Detector] = {}
    deps = DetectorDeps(backends=backends, shared=SharedResources())
    try:
        for target in targets:
            detectors[target.name] = build_detector(target.name, policy.detectors[target.name], deps)
        steps = compile_targets(targets, detectors, stage)
        started = time.perf_counter()
        results = await evaluate(
            dataset,
            steps,
            stage=stage,
            role=role,
            concurrency=args.concurrency,
            on_progress=_progress_printer(len(dataset.records)),
        )
        wall_s = time.perf_counter() - started
    finally:
        for detector in detectors.values():
            await detector.aclose()
        for backend in backends.values():
            await backend.aclose()

    by_view = rep.views(results, targets)
    if positives is not None:
        metrics = {name: rep.label_report(dataset, preds, positives) for name, preds in by_view.items()}
    else:
        entities = entities or rep.entity_universe(dataset, by_view)
        metrics = {name: rep.span_report(dataset, preds, entities) for name, preds in by_view.items()}
    report: JSON = {
        "policy": str(args.policy),
        "data": str(args.data),
        "mode": dataset.mode,
        "records": len(dataset.records),
        "stage": stage,
        "role": role,
        "detectors": {t.name: rep.detector_json(t) for t in targets},
        "positive_labels": None if positives is None else sorted(positives),
        "entity_map": entity_map,
        "metrics": metrics,
        "latency_ms": rep.latency_report(results, targets),
        "errors": rep.error_report(results, targets),
        "concurrency": args.concurrency,
        "wall_s": round(wall_s, 3),
        "records_per_s": round(len(results) / wall_s, 1) if wall_s > 0 else None,
    }
    _write_lines(args.predictions, (rep.prediction_line(r, targets) for r in results))
    if args.report is not None:
        _write_text(args.report, json.dumps(report, indent=2) + "\n")
    if args.plot is not None:
        latencies = {t.name: [r.results[t.name].latency_ms for r in results] for t in targets}
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        title = f"{', '.join(t.name for t in targets)} on {args.data.name}"
        truth = rep.record_truth(dataset, positives, entities or ())
        plot.write_plot(args.plot, pr_curves(by_view, truth), latencies, title)
    print("\n".join(rep.summary_lines(report)))
    if report["errors"]:
        counts = ", ".join(f"{name}: {e['count']}" for name, e in report["errors"].items())
        print(f"guardproxy eval: warning: detector errors ({counts}); they count as not flagged", file=sys.stderr)
    return 0


def positive_labels(given: str | None, targets: Sequence[Target]) -> frozenset[str]:
    """--positive-labels, else the union of the named detectors' defaults."""
    if given is not None:
        labels = split_names(given)
        if not labels:
            raise SetupError("--positive-labels: give at least one label")
        return frozenset(labels)
    positives: set[str] = set()
    for target in targets:
        defaults = DEFAULT_POSITIVE_LABELS.get(target.type)
        if defaults is None:
            raise SetupError(
                f"detector {target.name!r} (type {target.type}) has no default positive labels for labeled "
                "data; pass --positive-labels A,B"
            )
        positives.update(defaults)
    return frozenset(positives)


def scored_entities(given: str | None, targets: Sequence[Target]) -> frozenset[str] | None:
    """--entities, else the entity types the detectors' configs ask for, else None (every type seen).

    A detector without an entity list (an injection check run on PII data) adds no types: its spans
    are then reported as ignored rather than charged as false entities.
    """
    if given is not None:
        return frozenset(split_names(given))
    configured = {e for t in targets for e in t.entities or ()}
    return frozenset(configured) if configured else None


def pr_curves(by_view: Mapping[str, Sequence[rep.Prediction]], truth: Sequence[bool]) -> Curves:
    """Scores and truth per view for the PR plot (records no detector scored left out), and the operating point."""
    curves: Curves = {}
    for name, predictions in by_view.items():
        pairs = [(p.score, t) for p, t in zip(predictions, truth, strict=True) if p.score is not None]
        tp = sum(1 for p, t in zip(predictions, truth, strict=True) if p.fired and t)
        fired = sum(1 for p in predictions if p.fired)
        point = (tp / sum(truth), tp / fired) if fired and any(truth) else None
        curves[name] = ([s for s, _ in pairs], [t for _, t in pairs], point)
    return curves


def _progress_printer(total: int) -> Callable[[int], None] | None:
    """Progress on stderr, only for a person at a terminal, at most twice a second."""
    if not sys.stderr.isatty():
        return None
    last = 0.0

    def show(done: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= 0.5 or done == total:
            last = now
            print(f"\r{done}/{total} records", end="\n" if done == total else "", file=sys.stderr, flush=True)

    return show


def _write_lines(path: Path, rows: Iterable[JSON]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
