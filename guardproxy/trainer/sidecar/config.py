"""Sidecar trainer configuration: a trl-style (pydantic) dataclass whose help text lives in `field(metadata=...)`.

One YAML file names the dataset build config (a path, or the same fields inline), the classifier training config
and the gate. It is read by the trainer's one config loader (`trainer/config_load.py`): types checked, errors as
`file:line:col: field: problem`, relative paths (inline dataset fields too) against this file's directory.
"""

from __future__ import annotations

import dataclasses
from dataclasses import field
from pathlib import Path
from typing import Any, Literal

from pydantic.dataclasses import dataclass

from guardproxy.trainer.config_load import PATH, TRAINER_CONFIG, load_yaml_config, resolve_paths
from guardproxy.trainer.dataset.config import DatasetBuildConfig

Metric = Literal["f1", "recall", "pr_auc"]
GateSet = Literal["eval", "new_events", "both"]
EVAL = "eval"
NEW_EVENTS = "new_events"


@dataclass(config=TRAINER_CONFIG)
class SidecarConfig:
    """Retrain a classifier detector from audit signal, compare it with the serving version, promote if better."""

    name: str = field(metadata={"help": "Run series name: state and reports live under it."})
    dataset: str | dict[str, Any] = field(
        metadata={
            "help": "The dataset build config (DatasetBuildConfig): a YAML path, or its fields inline.",
            PATH: True,
        }
    )
    classifier: str = field(
        metadata={
            "help": "The classifier training config (ClassifierTrainConfig YAML) of the detector's model.",
            PATH: True,
        }
    )
    eval_sets: list[str] = field(
        metadata={
            "help": "Fixed evaluation set: JSONL files of {text, label} (e.g. a `guardproxy train holdout` "
            "export). Both models are scored on it, with the serving (int8 ONNX) code.",
            PATH: True,
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
            "classifier config's `<output_dir>/<name>`; if set, its last part must be the classifier's name.",
            PATH: True,
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
        metadata={
            "help": "State file and training checkpoints, under `<work_dir>/<name>/` (not committed).",
            PATH: True,
        },
    )
    report_dir: str = field(
        default="reports/sidecar",
        metadata={
            "help": "Each run writes report.md, report.json and report.png to `<report_dir>/<run id>/`.",
            PATH: True,
        },
    )
    eval_threads: int = field(default=2, metadata={"help": "onnxruntime threads when scoring."})
    keep_reports: int | None = field(default=None, metadata={"help": "Keep only the newest N run reports."})
    config_path: str | None = field(default=None, metadata={"help": "Set by the loader: the YAML file."})

    def __post_init__(self) -> None:
        # metric, gate_on and eval_labels' values are checked by their Literal types.
        if not self.eval_sets:
            raise ValueError("eval_sets: a fixed evaluation set is required (e.g. a `guardproxy train holdout` export)")
        if self.min_new_events < 1:
            raise ValueError("min_new_events: must be >= 1")
        if self.max_fpr_increase < 0:
            raise ValueError("max_fpr_increase: must be >= 0")
        if self.poll_interval <= 0:
            raise ValueError("poll_interval: must be > 0")

    @property
    def gate_sets(self) -> tuple[str, ...]:
        return (EVAL, NEW_EVENTS) if self.gate_on == "both" else (self.gate_on,)

    @property
    def run_dir(self) -> Path:
        return Path(self.work_dir) / self.name

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _resolve_inline_dataset(data: dict[str, Any], base: Path, overridden: frozenset[str]) -> None:
    """Inline dataset fields follow the path rule too: against this file, like a dataset file's against its own."""
    if isinstance(data.get("dataset"), dict) and "dataset" not in overridden:
        data["dataset"] = dict(data["dataset"])
        resolve_paths(DatasetBuildConfig, data["dataset"], base)


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> SidecarConfig:
    """Read a YAML config (the trainer's one loader and path rule, see `trainer/config_load.py`)."""

    def prepare(data: dict[str, Any], base: Path, overridden: frozenset[str]) -> None:
        data["config_path"] = str(path)
        _resolve_inline_dataset(data, base, overridden)

    return load_yaml_config(SidecarConfig, path, overrides, prepare=prepare)
