"""Sidecar trainer configuration: a trl-style dataclass whose help text lives in `field(metadata={"help": ...})`.

One YAML file names the dataset build config (a path, or the same fields inline), the classifier training config
and the gate. Relative paths are resolved against the YAML file, like the other trainer configs.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

Metric = Literal["f1", "recall", "pr_auc"]
GateSet = Literal["eval", "new_events", "both"]
EVAL = "eval"
NEW_EVENTS = "new_events"


@dataclass
class SidecarConfig:
    """Retrain a classifier detector from audit signal, compare it with the serving version, promote if better."""

    name: str = field(metadata={"help": "Run series name: state and reports live under it."})
    dataset: str | dict[str, Any] = field(
        metadata={"help": "The dataset build config (DatasetBuildConfig): a YAML path, or its fields inline."}
    )
    classifier: str = field(
        metadata={"help": "The classifier training config (ClassifierTrainConfig YAML) of the detector's model."}
    )
    eval_sets: list[str] = field(
        metadata={
            "help": "Fixed evaluation set: JSONL files of {text, label} (e.g. a `guardproxy train holdout` "
            "export). Both models are scored on it, with the serving (int8 ONNX) code."
        }
    )
    classifier_overrides: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "Classifier config fields replaced for sidecar runs (e.g. max_steps, learning_rate)."},
    )
    snapshot_dataset: dict[str, Any] = field(
        default_factory=dict,
        metadata={
            "help": "DatasetSpec fields for the snapshot's data.jsonl as an extra training dataset (label_map, "
            "unknown_labels, max_per_label). Default: its positive label -> the model's positive class "
            "(sigmoid: the label of that name; other labels unknown), its negative label -> the negative class."
        },
    )
    registry: str | None = field(
        default=None,
        metadata={
            "help": "The model's registry directory (vN/ versions and the CURRENT pointer). Default: the "
            "classifier config's `<output_dir>/<name>`; if set, its last part must be the classifier's name."
        },
    )
    min_new_events: int = field(
        default=50,
        metadata={
            "help": "Training signal needed since the last run before a new one starts: blocks, flags and "
            "feedback of the target detector (allowed traffic does not count)."
        },
    )
    eval_labels: dict[str, Literal["positive", "negative"]] = field(
        default_factory=dict,
        metadata={
            "help": "Evaluation-set label -> positive | negative. Labels not listed follow the classifier's "
            "label_map, then the snapshot's two labels, then unsafe/safe; others are skipped (counted)."
        },
    )
    metric: Metric = field(default="f1", metadata={"help": "Gating metric: f1, recall or pr_auc."})
    metric_group: str | None = field(
        default=None,
        metadata={
            "help": "Which output the metric is about: a model-card group (sigmoid models serving several "
            "detectors) or a label. Default: the model's first group."
        },
    )
    gate_on: GateSet = field(
        default="eval",
        metadata={
            "help": "Where the metric must improve: `eval` (the fixed set; the candidate never trained on it), "
            "`new_events` (the events since the last run; in-sample for the candidate) or `both`."
        },
    )
    min_improvement: float = field(
        default=0.01, metadata={"help": "Promote only if the metric rises by at least this (absolute)."}
    )
    max_fpr_increase: float = field(
        default=0.005,
        metadata={"help": "Refuse if the false-positive rate rises by more than this on any evaluated set."},
    )
    poll_interval: float = field(default=300.0, metadata={"help": "`--watch`: seconds between checks."})
    work_dir: str = field(
        default="runs/sidecar",
        metadata={"help": "State file and training checkpoints, under `<work_dir>/<name>/` (not committed)."},
    )
    report_dir: str = field(
        default="reports/sidecar",
        metadata={"help": "Each run writes report.md, report.json and report.png to `<report_dir>/<run id>/`."},
    )
    eval_threads: int = field(default=2, metadata={"help": "onnxruntime threads when scoring."})
    keep_reports: int | None = field(default=None, metadata={"help": "Keep only the newest N run reports."})
    config_path: str | None = field(default=None, metadata={"help": "Set by the loader: the YAML file."})

    def __post_init__(self) -> None:
        if not self.eval_sets:
            raise ValueError("eval_sets: a fixed evaluation set is required (e.g. a `guardproxy train holdout` export)")
        if self.min_new_events < 1:
            raise ValueError("min_new_events must be >= 1")
        if self.metric not in ("f1", "recall", "pr_auc"):
            raise ValueError(f"metric {self.metric!r}: expected f1, recall or pr_auc")
        if self.gate_on not in (EVAL, NEW_EVENTS, "both"):
            raise ValueError(f"gate_on {self.gate_on!r}: expected eval, new_events or both")
        if self.max_fpr_increase < 0:
            raise ValueError("max_fpr_increase must be >= 0")
        if self.poll_interval <= 0:
            raise ValueError("poll_interval must be > 0")
        bad = {k: v for k, v in self.eval_labels.items() if v not in ("positive", "negative")}
        if bad:
            raise ValueError(f"eval_labels: values must be positive or negative, got {bad}")

    @property
    def gate_sets(self) -> tuple[str, ...]:
        return (EVAL, NEW_EVENTS) if self.gate_on == "both" else (self.gate_on,)

    @property
    def run_dir(self) -> Path:
        return Path(self.work_dir) / self.name

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _resolve(base: Path, value: str) -> str:
    return value if Path(value).is_absolute() else os.path.relpath((base / value).resolve())


def _resolve_inline_dataset(base: Path, fields: dict[str, Any]) -> dict[str, Any]:
    """The dataset loader's path rules for an inline dataset config, against the sidecar file."""
    fields = dict(fields)
    for key in ("output_dir", "audit_store", "policy"):
        value = fields.get(key)
        if isinstance(value, str) and "://" not in value:
            fields[key] = _resolve(base, value)
    fields["base_datasets"] = [
        dict(spec, path=_resolve(base, spec["path"])) if isinstance(spec, dict) and "path" in spec else spec
        for spec in fields.get("base_datasets") or []
    ]
    return fields


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> SidecarConfig:
    """Read a YAML config; relative paths in it are resolved against the file's directory."""
    path = Path(path)
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at top level")
    overrides = overrides or {}
    data.update(overrides)
    data["config_path"] = str(path)
    base = path.parent
    for key in ("dataset", "classifier", "registry", "work_dir", "report_dir"):
        value = data.get(key)
        if isinstance(value, str) and key not in overrides:  # command-line paths are relative to the cwd
            data[key] = _resolve(base, value)
    if isinstance(data.get("eval_sets"), list):
        data["eval_sets"] = [_resolve(base, p) if isinstance(p, str) else p for p in data["eval_sets"]]
    if isinstance(data.get("dataset"), dict):
        data["dataset"] = _resolve_inline_dataset(base, data["dataset"])
    known = {f.name for f in dataclasses.fields(SidecarConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{path}: unknown field(s) {unknown}; allowed: {sorted(known)}")
    try:
        return SidecarConfig(**data)
    except TypeError as exc:
        raise ValueError(f"{path}: {exc}") from exc
