"""`guardproxy train evaluate --config FILE.yaml --model DIR [--FIELD VALUE ...]`: choose a trained model's
operating points again and re-measure it, without retraining — e.g. after changing `target_fpr` or
`min_threshold`. Same procedure as training: thresholds from the calibration half of the held-out data, every
reported figure from the test half. The model card and README are rewritten; the card keeps a log of it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from guardproxy.detectors.model_card import ModelCard
from guardproxy.trainer.classifier.card import write_card
from guardproxy.trainer.classifier.config import load_config
from guardproxy.trainer.classifier.data import load_examples
from guardproxy.trainer.classifier.pipeline import evaluate_held_out

log = logging.getLogger(__name__)


def reevaluate(config_path: str, model_dir: Path, overrides: dict[str, Any]) -> ModelCard:
    cfg = load_config(config_path, overrides)
    card = ModelCard.load(model_dir)
    if list(card.labels) != cfg.labels or card.head != cfg.head:
        raise ValueError(f"{model_dir} was not trained with the outputs of {config_path}")
    examples, _ = load_examples(cfg)
    evaluation = evaluate_held_out(cfg, model_dir, [e for e in examples if e.split != "train"])
    before = {"threshold": card.threshold, "thresholds": dict(card.thresholds) or None}
    if cfg.head == "sigmoid":
        card = replace(card, thresholds=evaluation["thresholds"], evaluation=evaluation)
    else:
        card = replace(card, threshold=evaluation["threshold"], evaluation=evaluation)
    changed = {k: v for k, v in overrides.items()}
    reevaluations = [
        *card.extra.get("reevaluations", []),
        {"ts": time.time(), "overrides": changed, "operating_point_before": before, "config": config_path},
    ]
    config = {**card.extra.get("config", {}), **changed}
    card = replace(card, extra={**card.extra, "reevaluations": reevaluations, "config": config})
    write_card(model_dir, card)
    return card


def operating_point(card: ModelCard) -> dict[str, Any]:
    """`threshold` (softmax head) and `thresholds` (sigmoid head), as far as the card has them."""
    point: dict[str, Any] = {}
    if card.threshold is not None:
        point["threshold"] = card.threshold
    if card.thresholds:
        point["thresholds"] = dict(card.thresholds)
    return point


def cli_main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="guardproxy train evaluate", description=__doc__)
    parser.add_argument("--config", required=True, help="The training config the model was trained with.")
    parser.add_argument("--model", required=True, type=Path, help="The version directory (models/NAME/vN).")
    parser.add_argument("--target_fpr", type=float, help="Overrides the config's target_fpr.")
    parser.add_argument("--min_threshold", type=float, help="Overrides the config's min_threshold.")
    args = parser.parse_args(argv)
    overrides = {
        k: v for k, v in (("target_fpr", args.target_fpr), ("min_threshold", args.min_threshold)) if v is not None
    }
    card = reevaluate(args.config, args.model, overrides)
    print(json.dumps(operating_point(card)))
    return 0


if __name__ == "__main__":
    sys.exit(cli_main())
