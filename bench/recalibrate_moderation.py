"""A candidate: the shipped guard classifier's weights with its *moderation* operating points chosen again on a
calibration set that holds the over-refusal hard negatives (configs/train/data/hard_negatives/).

    python bench/recalibrate_moderation.py                # v3 + guard_v4.yaml -> runs/candidates/v3-recal

Same rule as training (`guardproxy train evaluate`): each label's threshold is the lowest with at most its
target false-positive rate (the config's `target_fpr` / `label_target_fpr`) on the benign/safe records of the
*calibration* half of the held-out split; figures come from the *test* half. Only records whose moderation labels
are known are scored (the long BIPIA documents and jailbreaks have unknown moderation labels and would take
most of an hour on a loaded 2-core machine), so the injection threshold is left as the card has it.
The out-of-family sets and the first-run suite are not read: nothing here is tuned on them.

Writes the candidate model directory and bench/results/recalibration.json (both operating points on the same
test half). Whether the candidate ships is decided by `bench/cross_source.py shipped` and
`bench/bench_first_run.py`, never by these figures.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from guardproxy.detectors.model_card import ModelCard  # noqa: E402
from guardproxy.trainer.classifier.card import write_card  # noqa: E402
from guardproxy.trainer.classifier.config import load_config  # noqa: E402
from guardproxy.trainer.classifier.data import load_examples  # noqa: E402
from guardproxy.trainer.classifier.evaluate import evaluate_multilabel  # noqa: E402
from guardproxy.trainer.classifier.pipeline import TORCH_DIR, _validation_probs  # noqa: E402

MODERATION = ("harassment", "hate", "self-harm", "sexual", "violence", "illicit")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=ROOT / "configs/train/guard_v4.yaml")
    parser.add_argument("--model", type=Path, default=ROOT / "models/guard-classifier/v3")
    parser.add_argument("--out", type=Path, default=ROOT / "runs/candidates/v3-recal")
    parser.add_argument("--report", type=Path, default=ROOT / "bench/results/recalibration.json")
    args = parser.parse_args(argv)

    cfg = load_config(str(args.config))
    card = ModelCard.load(args.model)
    columns = [cfg.labels.index(m) for m in MODERATION]
    held_out = [e for e in load_examples(cfg)[0] if e.split != "train" and all(e.targets[c] >= 0 for c in columns)]
    shutil.rmtree(args.out, ignore_errors=True)
    shutil.copytree(args.model, args.out, ignore=shutil.ignore_patterns(TORCH_DIR))
    probs = _validation_probs(args.out, held_out, cfg.eval_threads)

    def part(split: str) -> tuple[np.ndarray[Any, Any], list[Any]]:
        mask = np.asarray([e.split == split for e in held_out])
        return probs[mask], [e for e in held_out if e.split == split]

    def evaluate(split: str, thresholds: dict[str, float] | None) -> dict[str, Any]:
        p, examples = part(split)
        return evaluate_multilabel(
            p,
            np.asarray([e.targets for e in examples], dtype=np.int64),
            cfg.labels,
            {"moderation": list(MODERATION)},
            [e.dataset for e in examples],
            [e.source_label for e in examples],
            target_fpr={name: cfg.label_target_fpr.get(name, cfg.target_fpr) for name in cfg.labels},
            fpr_labels=cfg.fpr_labels,
            min_threshold=cfg.min_threshold,
            thresholds=thresholds,
        )

    chosen = evaluate("calibration", None)["thresholds"]
    thresholds = {**card.thresholds, **{m: chosen[m] for m in MODERATION}}
    before, after = evaluate("test", dict(card.thresholds)), evaluate("test", thresholds)
    command = f"python bench/recalibrate_moderation.py --config {_rel(args.config)} --model {_rel(args.model)}"
    recalibration = {
        "command": command,
        "from": _rel(args.model),
        "config": _rel(args.config),
        "scored_records": len(held_out),
        "thresholds_before": dict(card.thresholds),
        "thresholds_after": thresholds,
    }
    write_card(args.out, replace(card, thresholds=thresholds, extra={**card.extra, "recalibration": recalibration}))
    summary = {
        name: {
            "moderation_test_half": {
                k: r["groups"]["moderation"]["overall"][k] for k in ("n", "precision", "recall", "f1", "fpr", "roc_auc")
            },
            "per_dataset_fpr": {
                d: m["fpr"] for d, m in r["groups"]["moderation"]["per_dataset"].items() if m["fpr"] is not None
            },
        }
        for name, r in (("before", before), ("after", after))
    }
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(recalibration | {"test_half": summary}, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(recalibration | {"test_half": summary}, indent=2))
    return 0


def _rel(path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


if __name__ == "__main__":
    sys.exit(main())
