"""One sidecar pass: new signal? -> snapshot -> fine-tune a candidate -> evaluate both -> gate -> promote.

A run is recorded as *pending* in the state file before training starts. If the process dies, the next pass
resumes that run: same snapshot, same checkpoint directory (the classifier trainer resumes from its newest
checkpoint), same evaluation window. Whatever the verdict, a finished run consumes its events: the next run
needs `min_new_events` more.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from guardproxy.detectors.model_card import ModelCard
from guardproxy.detectors.model_files import CARD_FILE, read_pointer, resolve_model_dir
from guardproxy.errors import DetectorFailed
from guardproxy.trainer.classifier.config import ClassifierTrainConfig, DatasetSpec
from guardproxy.trainer.classifier.config import load_config as load_classifier_config
from guardproxy.trainer.classifier.pipeline import TORCH_DIR
from guardproxy.trainer.dataset.build import build as build_snapshot
from guardproxy.trainer.dataset.config import DatasetBuildConfig, config_from_mapping
from guardproxy.trainer.dataset.config import load_config as load_dataset_config
from guardproxy.trainer.dataset.snapshot import DATA_FILE, read_jsonl
from guardproxy.trainer.registry import promote
from guardproxy.trainer.sidecar.config import EVAL, NEW_EVENTS, SidecarConfig
from guardproxy.trainer.sidecar.evaluate import (
    GroupScorer,
    LabelledText,
    group_members,
    label_rules,
    labelled,
    load_eval_sets,
    model_metrics,
)
from guardproxy.trainer.sidecar.gate import decide
from guardproxy.trainer.sidecar.report import PROMOTED, REFUSED, SKIPPED, RunReport, write_report
from guardproxy.trainer.sidecar.signal import count_new_signal
from guardproxy.trainer.sidecar.state import PendingRun, SidecarState, load_state, save_state

log = logging.getLogger(__name__)
SNAPSHOT_DATASET = "snapshot"


def dataset_config(cfg: SidecarConfig) -> DatasetBuildConfig:
    if isinstance(cfg.dataset, str):
        return load_dataset_config(cfg.dataset)
    # Inline: its paths were resolved against the sidecar file when it was loaded; a `policy:` it names is
    # applied exactly as in a dataset file (its learning: section, its audit path).
    return config_from_mapping(dict(cfg.dataset), f"{cfg.config_path}: dataset")


def classifier_config(cfg: SidecarConfig) -> ClassifierTrainConfig:
    classifier = load_classifier_config(cfg.classifier, dict(cfg.classifier_overrides))
    if cfg.registry is not None:
        registry = Path(cfg.registry)
        if registry.name != classifier.name:
            raise ValueError(
                f"registry {registry}: its last part must be the classifier's name {classifier.name!r} "
                "(versions are written to <output_dir>/<name>/vN)"
            )
        classifier = dataclasses.replace(classifier, output_dir=str(registry.parent))
    return classifier


def registry_dir(classifier: ClassifierTrainConfig) -> Path:
    return Path(classifier.output_dir) / classifier.name


def snapshot_spec(cfg: SidecarConfig, classifier: ClassifierTrainConfig, dataset: DatasetBuildConfig) -> dict[str, Any]:
    """The snapshot's data.jsonl as a DatasetSpec: its two labels mapped onto the model's outputs."""
    pos, neg = dataset.pos_label, dataset.negative_label
    # The snapshot comes last and wins label conflicts: a reviewer's correction beats the base data.
    spec: dict[str, Any] = {"name": SNAPSHOT_DATASET, "overrides": True}
    if classifier.head == "softmax":
        positive_class = pos if pos in classifier.labels[1:] else classifier.labels[1]
        spec["label_map"] = {pos: positive_class, neg: classifier.labels[0]}
    else:
        if pos not in classifier.labels:
            raise ValueError(f"snapshot label {pos!r} is not a model label {classifier.labels}: set snapshot_dataset")
        spec["label_map"] = {pos: [pos], neg: []}
        spec["unknown_labels"] = [label for label in classifier.labels if label != pos]
    return spec | cfg.snapshot_dataset


def _current_dir(registry: Path) -> Path | None:
    try:
        return resolve_model_dir(registry)
    except DetectorFailed:
        return None


def _pin_current(registry: Path, current: Path | None) -> None:
    """Without a CURRENT pointer the newest version serves: pin the serving one before a candidate lands."""
    if current is not None and read_pointer(registry) is None:
        promote(registry, current.name, reason="sidecar: pin the serving version before adding a candidate")


def _init_from(current: Path | None, classifier: ClassifierTrainConfig, scratch: Path) -> str | None:
    """The current version's weights, when it has the same outputs: its kept torch/ copy, else its int8 export
    dequantized into `scratch` (the shipped models carry only the export)."""
    if current is None:
        return None
    card = ModelCard.load(current)
    if list(card.labels) != classifier.labels or card.head != classifier.head:
        log.warning("%s has other labels or head than the training config: fine-tuning the base model", current)
        return None
    if (current / TORCH_DIR / "config.json").is_file():
        return str(current / TORCH_DIR)
    from guardproxy.trainer.classifier.card import resolve_base_model
    from guardproxy.trainer.classifier.unpack import UnpackError, unpack_version

    unpacked = scratch / f"init-{current.name}"
    if not (unpacked / "config.json").is_file():  # a resumed run reuses it
        log.info("%s kept no torch weights: starting from its int8 export, dequantized", current)
        try:
            unpack_version(current, classifier, resolve_base_model(classifier.base_model).path, unpacked)
        except UnpackError as exc:
            log.warning("%s; fine-tuning the base model instead", exc)
            return None
    return str(unpacked)


def _run_id(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%S") + f"-{int(now * 1000) % 1000:03d}"


def run_once(cfg: SidecarConfig, *, now: float | None = None) -> RunReport:
    """One pass. Returns the run's report (status `skipped` when there is not enough new signal)."""
    started = time.time() if now is None else now
    dataset = dataset_config(cfg)
    classifier = classifier_config(cfg)
    registry = registry_dir(classifier)
    state = load_state(cfg.run_dir)

    pending = state.pending
    if pending is None:
        signal = count_new_signal(dataset, state.watermark, now=started)
        if signal.count < cfg.min_new_events:
            log.info("%d new training events since the last run (need %d): no run", signal.count, cfg.min_new_events)
            return RunReport(_run_id(started), SKIPPED, signal.count, started, finished=time.time())
        run_id = _run_id(started)
        snapshot = build_snapshot(dataset, now=started)
        pending = PendingRun(
            run_id=run_id,
            started=started,
            watermark=started,
            since=state.watermark,
            snapshot=str(snapshot.path),
            train_dir=str(cfg.run_dir / "train" / run_id),
            new_events=signal.count,
        )
        state.pending = pending
        save_state(cfg.run_dir, state)
        log.info("run %s: %d new events, snapshot %s", run_id, signal.count, snapshot.ref)
    else:
        log.info("resuming unfinished run %s (snapshot %s)", pending.run_id, pending.snapshot)

    report = _train_evaluate_gate(cfg, state, pending, dataset, classifier, registry)
    report.finished = time.time()
    write_report(report, Path(cfg.report_dir) / cfg.name / pending.run_id)
    _prune_reports(Path(cfg.report_dir) / cfg.name, cfg.keep_reports)
    state.finish({"run_id": report.run_id, "status": report.status, "candidate": report.candidate_version})
    save_state(cfg.run_dir, state)
    shutil.rmtree(pending.train_dir, ignore_errors=True)  # checkpoints: the version dir keeps the weights
    log.info("run %s: %s (%s)", report.run_id, report.status, "; ".join(report.gate.get("reasons", [])))
    return report


def _train_evaluate_gate(
    cfg: SidecarConfig,
    state: SidecarState,
    pending: PendingRun,
    dataset: DatasetBuildConfig,
    classifier: ClassifierTrainConfig,
    registry: Path,
) -> RunReport:
    from guardproxy.trainer.classifier.pipeline import main as train_classifier

    report = RunReport(pending.run_id, REFUSED, pending.new_events, pending.started, snapshot=pending.snapshot)
    current = _current_dir(registry)
    _pin_current(registry, current)
    report.current_version = current.name if current else None

    if pending.candidate is None or not (Path(pending.candidate) / CARD_FILE).is_file():
        spec = DatasetSpec(path=str(Path(pending.snapshot) / DATA_FILE), **snapshot_spec(cfg, classifier, dataset))
        init_from = _init_from(current, classifier, Path(pending.train_dir))
        run_cfg = dataclasses.replace(
            classifier,
            datasets=[*classifier.datasets, spec],
            work_dir=pending.train_dir,
            init_from=init_from,
            version=None,
            resume=True,
            keep_torch_weights=True,
        )
        candidate = train_classifier(run_cfg)
        pending.candidate = str(candidate)
        save_state(cfg.run_dir, state)
    candidate = Path(pending.candidate)
    report.candidate_version = candidate.name
    card = ModelCard.load(candidate)
    report.training = {
        k: card.training.get(k) for k in ("steps", "seconds", "init_from", "resumed_from_step", "final_loss")
    }

    group, members = group_members(card, cfg.metric_group)
    report.metric, report.group = cfg.metric, group
    rules = label_rules(classifier, dataset, members, dict(cfg.eval_labels))
    skipped: Counter[str] = Counter()
    sets: dict[str, list[LabelledText]] = {
        EVAL: load_eval_sets(cfg.eval_sets, rules, skipped),
        NEW_EVENTS: _new_events(dataset, pending, rules, skipped),
    }
    if skipped:
        report.notes.append(f"evaluation rows skipped (label not positive/negative for {group}): {dict(skipped)}")
    scored = {"candidate": GroupScorer(candidate, cfg.metric_group, cfg.eval_threads)}
    if current is not None:
        scored["current"] = GroupScorer(current, cfg.metric_group, cfg.eval_threads)
    for set_name, texts in sets.items():
        report.metrics[set_name] = {model: model_metrics(scorer, texts) for model, scorer in scored.items()}
    by_model = {
        model: {s: report.metrics[s][model] for s in sets if report.metrics[s][model].get("n")} for model in scored
    }
    verdict = decide(cfg, by_model.get("current") if current is not None else None, by_model["candidate"])
    report.gate = verdict.as_json()
    if verdict.passed:
        promote(registry, candidate.name, reason=f"sidecar run {pending.run_id}: " + _summary(report))
        report.status = PROMOTED
    return report


def _new_events(
    dataset: DatasetBuildConfig, pending: PendingRun, rules: Any, skipped: Counter[str]
) -> list[LabelledText]:
    """The snapshot rows that came from this run's new audit events (labelled as the snapshot labelled them)."""
    fresh = count_new_signal(dataset, pending.since, pending.watermark, now=pending.started).request_ids
    rows = [
        row
        for row in read_jsonl(Path(pending.snapshot) / DATA_FILE)
        if str(row.get("source", "")).removeprefix("audit:") in fresh
    ]
    return labelled(rows, rules, skipped, NEW_EVENTS)


def _summary(report: RunReport) -> str:
    checks = [c for c in report.gate.get("checks", []) if c["check"].startswith(report.metric)]
    return ", ".join(
        f"{c['check']} {c['current']:.4f} -> {c['candidate']:.4f}"
        for c in checks
        if c["current"] is not None and c["candidate"] is not None
    )


def _prune_reports(root: Path, keep: int | None) -> None:
    if keep is None or not root.is_dir():
        return
    runs = sorted(p for p in root.iterdir() if p.is_dir())
    for old in runs[:-keep]:
        shutil.rmtree(old)


def watch(cfg: SidecarConfig, *, max_runs: int | None = None) -> list[RunReport]:
    """Loop: a pass every `poll_interval` seconds. `max_runs` bounds the passes (tests, cron-like use)."""
    reports: list[RunReport] = []
    passes = 0
    while True:
        passes += 1
        try:
            reports.append(run_once(cfg))
        except (OSError, ValueError, RuntimeError, DetectorFailed):
            # A failed pass stays pending and is resumed next time; the loop must outlive it.
            log.exception("sidecar pass failed; retrying in %.0f s", cfg.poll_interval)
        if max_runs is not None and passes >= max_runs:
            return reports
        time.sleep(cfg.poll_interval)
