"""`guardproxy train classifier`: data -> fine-tune -> int8 ONNX -> validation -> model card, in one versioned dir."""

from __future__ import annotations

import dataclasses
import logging
import re
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from guardproxy.detectors.model_card import ModelCard
from guardproxy.detectors.onnx_classifier import OnnxTextClassifier
from guardproxy.trainer.classifier.card import library_versions, resolve_base_model, write_card
from guardproxy.trainer.classifier.config import ClassifierTrainConfig, parse_args
from guardproxy.trainer.classifier.data import Example, file_sha256, load_examples, training_split, training_windows
from guardproxy.trainer.classifier.evaluate import evaluate_multilabel, evaluate_scores
from guardproxy.trainer.config_load import ConfigError

log = logging.getLogger(__name__)
_VERSION = re.compile(r"^v(\d+)$")
TORCH_DIR = "torch"  # the fine-tuned Hugging Face model inside a version directory (keep_torch_weights)


def next_version(registry: Path) -> str:
    taken = [int(m.group(1)) for p in registry.glob("v*") if (m := _VERSION.match(p.name))]
    return f"v{max(taken, default=0) + 1}"


def _validation_probs(model_dir: Path, examples: list[Example], threads: int) -> np.ndarray[Any, Any]:
    """Per text: softmax, [P(any positive class)]; sigmoid, P(label) per label — each the max over windows."""
    from tqdm.auto import tqdm  # type: ignore[import-untyped]

    classifier = OnnxTextClassifier(model_dir, threads=threads)
    rows = []
    for example in tqdm(examples, desc="validate (int8 onnx)", unit="text", dynamic_ncols=True):
        probs = classifier.score(example.text).probs
        rows.append(probs.max(axis=0) if classifier.head == "sigmoid" else [(1.0 - probs[:, 0]).max()])
    return np.asarray(rows, dtype=np.float64)


def _evaluate_part(
    cfg: ClassifierTrainConfig, probs: np.ndarray[Any, Any], part: list[Example], chosen: dict[str, Any] | None
) -> dict[str, Any]:
    datasets = [e.dataset for e in part]
    sources = [e.source_label for e in part]
    if cfg.head == "sigmoid":
        return evaluate_multilabel(
            probs,
            np.asarray([e.targets for e in part], dtype=np.int64),
            cfg.labels,
            cfg.groups or {cfg.name: cfg.labels},
            datasets,
            sources,
            target_fpr={name: cfg.label_target_fpr.get(name, cfg.target_fpr) for name in cfg.labels},
            fpr_labels=cfg.fpr_labels,
            min_threshold=cfg.min_threshold,
            thresholds=chosen["thresholds"] if chosen else None,
        )
    return evaluate_scores(
        probs[:, 0].tolist(),
        [e.label != 0 for e in part],
        datasets,
        sources,
        target_fpr=cfg.target_fpr,
        fpr_labels=cfg.fpr_labels,
        min_threshold=cfg.min_threshold,
        threshold=chosen["threshold"] if chosen else None,
    )


def evaluate_held_out(cfg: ClassifierTrainConfig, out_dir: Path, validation: list[Example]) -> dict[str, Any]:
    """Thresholds are chosen on the calibration half of the held-out data; metrics are reported on the other
    (test) half at those thresholds, so the reported figures were never tuned on."""
    probs = _validation_probs(out_dir, validation, cfg.eval_threads)
    calibration = np.asarray([e.split == "calibration" for e in validation])
    calib_part = [e for e in validation if e.split == "calibration"]
    test = [e for e in validation if e.split != "calibration"]
    calib = _evaluate_part(cfg, probs[calibration], calib_part, None)
    evaluation = _evaluate_part(cfg, probs[~calibration], test, calib)
    return evaluation | {"calibration": calib, "reported_on": f"test half of the held-out data ({len(test)})"}


def main(cfg: ClassifierTrainConfig) -> Path:
    """Train, export and evaluate; return the versioned model directory."""
    from guardproxy.trainer.classifier.train import finish_distributed

    try:
        return _train_and_write(cfg)
    finally:
        finish_distributed()


def _train_and_write(cfg: ClassifierTrainConfig) -> Path:
    from guardproxy.trainer.classifier.export import export_int8, parity
    from guardproxy.trainer.classifier.train import train

    started = time.monotonic()
    base = resolve_base_model(cfg.base_model)
    tokenizer_file = base.path / "tokenizer.json"
    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    if cls_id is None or sep_id is None:
        raise ValueError(f"{tokenizer_file}: expected a BERT-style tokenizer with [CLS] and [SEP]")

    examples, data_report = load_examples(cfg)
    train_set = training_split(examples, cfg)
    validation = [e for e in examples if e.split != "train"]
    windows = training_windows(train_set, tokenizer, cfg, cls_id, sep_id)
    log.info("examples: %d train, %d validation; %d training windows", len(train_set), len(validation), len(windows))

    weights_dir = Path(cfg.init_from) if cfg.init_from else base.path
    result = train(cfg, weights_dir, windows)
    if not result.is_main_process:  # under `accelerate launch`: the main process exports and evaluates
        return result.model_dir

    registry = Path(cfg.output_dir) / cfg.name
    version = cfg.version or next_version(registry)
    final_dir = registry / version
    # Built beside its final place and renamed when complete: a failed run never leaves a half model behind.
    out_dir = registry / f".{version}.partial"
    shutil.rmtree(out_dir, ignore_errors=True)
    export_facts = export_int8(result.model_dir, tokenizer_file, out_dir, per_channel=cfg.per_channel)
    card: dict[str, Any] = {
        "name": cfg.name,
        "version": version,
        "description": cfg.description,
        "labels": cfg.labels,
        "positive_labels": cfg.labels if cfg.head == "sigmoid" else cfg.labels[1:],
        "groups": cfg.groups or {cfg.name: cfg.labels[1:] if cfg.head == "softmax" else cfg.labels},
        "serving": {
            "head": cfg.head,
            "max_length": cfg.max_length,
            "stride": cfg.stride,
            "cls_token_id": cls_id,
            "sep_token_id": sep_id,
            "onnx_file": export_facts["onnx_file"],
            "tokenizer_file": export_facts["tokenizer_file"],
            "quantization": export_facts["quantization"],
        },
    }
    if cfg.head == "sigmoid":  # placeholders until validation picks them
        card["thresholds"] = dict.fromkeys(cfg.labels, 0.5)
    write_card(out_dir, ModelCard.from_dict(card))  # the serving code needs the card to load the model for validation
    evaluation = evaluate_held_out(cfg, out_dir, validation)
    sample = training_windows(validation[:: max(1, len(validation) // 48)], tokenizer, cfg, cls_id, sep_id)
    operating_point = (
        {"thresholds": evaluation["thresholds"]} if cfg.head == "sigmoid" else {"threshold": evaluation["threshold"]}
    )
    card |= operating_point | {
        "evaluation": evaluation,
        "export": export_facts | {"parity_int8_vs_torch": parity(result.model_dir, out_dir, [w.ids for w in sample])},
        "base_model": base.info,
        "data": data_report.as_json() | {"train_examples": len(train_set), "validation_examples": len(validation)},
        "training": {
            "finetune": cfg.finetune,
            "quantized_base": result.quantized_base,
            "steps": result.steps,
            "training_windows": len(windows),
            "init_from": cfg.init_from,
            "resumed_from_step": result.resumed_from_step,
            "seconds": round(result.seconds, 1),
            "pipeline_seconds": round(time.monotonic() - started, 1),
            "final_loss": round(result.final_loss, 5),
            "libraries": library_versions(),
        },
        "config": dataclasses.asdict(cfg),
        "files": {
            name: {"sha256": file_sha256(out_dir / name), "bytes": (out_dir / name).stat().st_size}
            for name in (export_facts["onnx_file"], export_facts["tokenizer_file"])
        },
        "limitations": cfg.limitations,
        "reproduce": f"guardproxy train classifier --config {cfg.config_path} --version {version}"
        if cfg.config_path
        else "see config",
    }
    write_card(out_dir, ModelCard.from_dict(card))
    if cfg.keep_torch_weights:
        shutil.copytree(result.model_dir, out_dir / TORCH_DIR)
    shutil.rmtree(final_dir, ignore_errors=True)
    out_dir.rename(final_dir)
    log.info("wrote %s (%s)", final_dir, operating_point)
    return final_dir


def cli_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `guardproxy train classifier --config FILE.yaml [--field value ...]`."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = parse_args(argv)
    except ConfigError as exc:  # every problem of the file, one `file:line:col: field: problem` per line
        print(f"guardproxy train classifier: {exc}", file=sys.stderr)
        return 2
    out_dir = main(cfg)
    print(out_dir, file=sys.stdout)
    return 0
