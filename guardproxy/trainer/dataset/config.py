"""Dataset build configuration: trl-style (pydantic) dataclasses whose help text lives in `field(metadata=...)`.

A YAML file fills them through the trainer's one config loader (`trainer/config_load.py`: types checked, errors
as `file:line:col: field: problem`, relative paths against the config file's directory); `--name value` flags
override top-level scalars (`guardproxy trainer dataset build --config F --since 7d`).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import field
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic.dataclasses import dataclass

from guardproxy.trainer.config_load import PATH, TRAINER_CONFIG, Prepare, load_yaml_config, resolve_path
from guardproxy.trainer.config_load import config_from_mapping as validate_mapping

SIGNALS: tuple[str, ...] = ("blocks", "flags", "feedback", "output_feedback")
POSITIVE = "positive"
NEGATIVE = "negative"
# What a feedback label does to the detector's own decision.
FEEDBACK_ACTIONS: tuple[str, ...] = (POSITIVE, NEGATIVE, "keep", "ignore")


@dataclass(config=TRAINER_CONFIG)
class BaseDatasetSpec:
    """A JSONL file of `{"text", "label", ...}` records mixed into the snapshot."""

    path: str = field(metadata={"help": "JSONL file; a relative path is resolved against the config file.", PATH: True})
    name: str | None = field(
        default=None,
        metadata={"help": "Name in `source` and the manifest; default: the file name, or its directory for "
                  "`<name>/train.jsonl`."},
    )  # fmt: skip
    label_map: dict[str, str] | None = field(
        default=None,
        metadata={
            "help": "Dataset label -> `positive` or `negative` (or the snapshot's own label names); overrides "
            "the top-level `label_map`. Records whose label is not mapped are skipped."
        },
    )
    max_per_label: dict[str, int] | None = field(
        default=None, metadata={"help": "Read at most N records of a dataset label (a stable hash picks which)."}
    )


@dataclass(config=TRAINER_CONFIG)
class DatasetBuildConfig:
    """Build a versioned, balanced, PII-scrubbed training snapshot for one detector from the audit log."""

    name: str = field(metadata={"help": "Snapshot series name; snapshots go to `<output_dir>/<name>/sNNN/`."})
    audit_store: str = field(
        metadata={"help": "Audit store: a SQLite file path, `sqlite:///path` or `postgresql://` URL.", PATH: True}
    )
    target: str = field(metadata={"help": "The detector this snapshot trains (e.g. `injection`)."})
    detectors: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Policy step names or detector names whose firing counts as a positive for `target` "
            "(e.g. [injection, input.0.injection]). Default: [target]."
        },
    )
    stage: Literal["input", "output"] = field(
        default="input", metadata={"help": "Which text the target detector reads: the prompt or the answer."}
    )
    since: str | None = field(
        default=None, metadata={"help": "Only audit records at or after this time: 30m, 7d, or ISO-8601."}
    )
    policy: str | None = field(
        default=None,
        metadata={
            "help": "The proxy's policy file: its `learning:` section decides `signals` and `use_candidates` "
            "(the policy is where a team sets what its traffic may teach), and its `audit.path` is the default "
            "`audit_store`.",
            PATH: True,
        },
    )
    signals: list[str] = field(
        default_factory=lambda: ["blocks", "flags", "feedback"],
        metadata={
            "help": "Training signals: `blocks` (a target step blocked), `flags` (it fired with another action), "
            "`feedback` (reviewer labels), `output_feedback` (input passed, the answer was blocked: a "
            "*candidate* positive for an input detector)."
        },
    )
    use_candidates: bool = field(
        default=False,
        metadata={
            "help": "Train on output-feedback candidates as positives. Off: they go to `candidates.jsonl` for "
            "review and stay out of `data.jsonl`."
        },
    )
    output_detectors: list[str] = field(
        default_factory=list,
        metadata={"help": "output_feedback: output steps whose block makes a candidate. Default: any."},
    )
    feedback_labels: dict[str, str] = field(
        default_factory=lambda: {"false_positive": NEGATIVE, "false_negative": POSITIVE, "correct": "keep"},
        metadata={"help": "Feedback label -> positive | negative | keep (the detector's decision stands) | ignore."},
    )
    positive_label: str | None = field(
        default=None, metadata={"help": "Label of positives in data.jsonl. Default: the target name."}
    )
    negative_label: str = field(default="benign", metadata={"help": "Label of negatives in data.jsonl."})
    base_datasets: list[BaseDatasetSpec] = field(
        default_factory=list, metadata={"help": "JSONL datasets mixed in (see BaseDatasetSpec)."}
    )
    label_map: dict[str, str] = field(
        default_factory=dict,
        metadata={"help": "Default dataset label -> positive | negative for every base dataset."},
    )
    benign_ratio: float = field(
        default=1.5,
        metadata={
            "help": "Negatives kept per positive (1.0-3.0 is sensible). Negatives come from allowed audit "
            "traffic first, then base datasets. 0 builds a positives-only set: the mistake that gave seed 004 "
            "precision 0.07."
        },
    )
    max_records: int | None = field(
        default=None, metadata={"help": "Cap on data.jsonl; positives are cut first to keep `benign_ratio`."}
    )
    near_duplicate_threshold: float | None = field(
        default=0.8,
        metadata={"help": "Drop a text whose word-shingle Jaccard with a kept text is at least this. null: off."},
    )
    shingle_words: int = field(default=3, metadata={"help": "Words per shingle for near-duplicate detection."})
    sample_salt: str = field(
        default="guardproxy-dataset-v1", metadata={"help": "Salt of the stable hash that orders sampling."}
    )
    output_dir: str = field(default="datasets", metadata={"help": "Snapshot registry directory.", PATH: True})
    config_path: str | None = field(
        default=None, metadata={"help": "Set by the loader: the YAML file, recorded in the manifest."}
    )

    def __post_init__(self) -> None:
        if not self.detectors:
            self.detectors = [self.target]
        unknown = sorted(set(self.signals) - set(SIGNALS))
        if unknown:
            raise ValueError(f"signals: unknown {unknown}; known: {list(SIGNALS)}")
        if "output_feedback" in self.signals and self.stage != "input":
            raise ValueError("signals: output_feedback makes candidates for an input-stage detector only")
        bad = {k: v for k, v in self.feedback_labels.items() if v not in FEEDBACK_ACTIONS}
        if bad or not set(self.feedback_labels) <= {"false_positive", "false_negative", "correct"}:
            raise ValueError(f"feedback_labels: keys are feedback labels, values one of {list(FEEDBACK_ACTIONS)}")
        if self.benign_ratio < 0:
            raise ValueError("benign_ratio: must be >= 0")
        if self.max_records is not None and self.max_records < 1:
            raise ValueError("max_records: must be >= 1")
        if self.near_duplicate_threshold is not None and not 0 < self.near_duplicate_threshold <= 1:
            raise ValueError("near_duplicate_threshold: must be in (0, 1] or null")
        if self.shingle_words < 1:
            raise ValueError("shingle_words: must be >= 1")
        if self.pos_label in {self.negative_label, "candidate"} or self.negative_label == "candidate":
            raise ValueError("positive_label, negative_label and `candidate` must differ")
        for spec in self.base_datasets:
            mapping = spec.label_map if spec.label_map is not None else self.label_map
            for target in mapping.values():
                self.resolve_label(target)

    @property
    def pos_label(self) -> str:
        return self.positive_label or self.target

    def resolve_label(self, target: str) -> str:
        """A label_map value (`positive`, `negative` or a label name) as the snapshot label."""
        if target in (POSITIVE, self.pos_label):
            return self.pos_label
        if target in (NEGATIVE, self.negative_label):
            return self.negative_label
        raise ValueError(f"label_map value {target!r}: expected positive, negative, {self.pos_label!r} or "
                         f"{self.negative_label!r}")  # fmt: skip

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _apply_policy(data: dict[str, Any], overrides: frozenset[str]) -> None:
    """The policy's `learning:` section wins over this file's signals; command-line overrides win over both.

    `data["policy"]` is already resolved (the trainer's path rule); the policy's `audit.url` is used as it is, its `audit.path`
    resolved against the policy file's directory, as the proxy does.
    """
    from guardproxy.policies.loader import load_policy

    policy_path = Path(data["policy"])
    policy = load_policy(policy_path, env=dict(os.environ))
    for key, value in (("signals", list(policy.learning.signals)), ("use_candidates", policy.learning.use_candidates)):
        if key not in overrides:
            data[key] = value
    if "audit_store" not in data:
        data["audit_store"] = resolve_path(policy.audit.store, policy_path.parent)  # a URL stays as it is


def _prepare(where: str) -> Prepare:
    def prepare(data: dict[str, Any], base: Path, overridden: frozenset[str]) -> None:
        data["config_path"] = where
        if isinstance(data.get("since"), date):  # YAML reads an unquoted 2026-11-22 as a date
            data["since"] = data["since"].isoformat()
        if isinstance(data.get("policy"), str):
            _apply_policy(data, overridden)

    return prepare


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> DatasetBuildConfig:
    """Read a YAML config (the trainer's one loader and path rule, see `trainer/config_load.py`)."""
    return load_yaml_config(DatasetBuildConfig, path, overrides, prepare=_prepare(str(path)))


def config_from_mapping(data: dict[str, Any], where: str) -> DatasetBuildConfig:
    """The config from fields inline in a sidecar config, whose loader already resolved their paths."""
    data = dict(data)
    _prepare(where)(data, Path("."), frozenset())
    return validate_mapping(DatasetBuildConfig, data, where)
