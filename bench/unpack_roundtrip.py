"""How faithful `unpack` is on the shipped model: int8 export -> torch weights -> int8 export again.

Scores both int8 exports with onnxruntime on 120 texts of the shared data (60 benign prompts, 60 from the
jailbreak set) and prints the largest per-text difference of any label's probability.

    python bench/unpack_roundtrip.py [--model models/guard-classifier/v3]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from guardproxy.detectors.onnx_classifier import OnnxTextClassifier  # noqa: E402
from guardproxy.trainer.classifier.card import resolve_base_model  # noqa: E402
from guardproxy.trainer.classifier.config import load_config  # noqa: E402
from guardproxy.trainer.classifier.export import export_int8  # noqa: E402
from guardproxy.trainer.classifier.unpack import unpack_version  # noqa: E402

DATA = ROOT.parent / "shared" / "datasets"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "guard-classifier" / "v3")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "train" / "guard.yaml")
    args = parser.parse_args()
    cfg = load_config(args.config)
    texts: list[str] = []
    for name in ("benign_prompts", "jailbreak_classification"):
        with (DATA / name / "train.jsonl").open(encoding="utf-8") as f:
            texts += [json.loads(line)["text"] for _, line in zip(range(60), f, strict=False)]
    with tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        unpacked = unpack_version(args.model, cfg, resolve_base_model(cfg.base_model).path, Path(tmp) / "torch")
        unpack_s = time.monotonic() - started
        again = Path(tmp) / "again"
        export_int8(unpacked, args.model / "tokenizer.json", again, per_channel=True)
        (again / "model_card.json").write_text((args.model / "model_card.json").read_text())
        served, round_trip = OnnxTextClassifier(args.model, threads=2), OnnxTextClassifier(again, threads=2)
        diffs = np.asarray([float(np.abs(served.score(t).probs - round_trip.score(t).probs).max()) for t in texts])
    result = {
        "model": str(args.model),
        "texts": len(texts),
        "unpack_seconds": round(unpack_s, 2),
        "max_abs_prob_diff": {
            "mean": float(diffs.mean()),
            "p99": float(np.quantile(diffs, 0.99)),
            "max": float(diffs.max()),
        },
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
