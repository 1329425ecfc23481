"""Classifier trainer: fine-tunes a small encoder on labeled JSONL and ships it as int8 ONNX + a model card.

`cli_main(argv)` is `guardproxy train classifier`; `main(cfg)` runs it from a `ClassifierTrainConfig`.
torch, transformers and peft are imported only when training starts, so `--help` and config loading work
without the trainer extra.
"""

from guardproxy.trainer.classifier.config import ClassifierTrainConfig, DatasetSpec, load_config
from guardproxy.trainer.classifier.pipeline import cli_main, main

__all__ = ["ClassifierTrainConfig", "DatasetSpec", "cli_main", "load_config", "main"]
