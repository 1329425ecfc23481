"""Before/after of the closed learning loop on the shared data (issue 5's proof).

1. v1 is trained on HALF of the injection training split (`configs/train/injection.yaml`, split by a hash).
2. The other half is sent as traffic through a real proxy serving v1 (the official openai SDK); every
   decision v1 gets wrong is labelled through `POST /v1/feedback`, as a reviewer would.
3. The sidecar (`guardproxy.trainer.sidecar.run_once`) builds a snapshot from the audit log, fine-tunes v2
   from v1, evaluates both on the fixed held-out test split (never trained on), gates and promotes.
4. Both versions are reported on that held-out split; the sidecar's own report is written too.

    python bench/loop_before_after.py [--traffic 800] [--steps 300]     # ~20 min on 2 cores

Output: runs/loop/ (models, audit.db, snapshot, reports) and bench/results/loop_before_after.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import openai
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from guardproxy.trainer.classifier.config import load_config  # noqa: E402
from guardproxy.trainer.classifier.data import load_examples, stable_fraction  # noqa: E402
from guardproxy.trainer.classifier.pipeline import main as train_main  # noqa: E402
from guardproxy.trainer.registry import promote  # noqa: E402
from guardproxy.trainer.sidecar import run_once  # noqa: E402
from guardproxy.trainer.sidecar.config import load_config as load_sidecar  # noqa: E402
from tests.fake_upstream import FakeUpstream  # noqa: E402
from tests.proxy_harness import ProxyServer  # noqa: E402

POSITIVE = {"injection", "jailbreak"}


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--world", type=Path, default=ROOT / "runs" / "loop")
    parser.add_argument("--traffic", type=int, default=800, help="requests sent from the second half")
    parser.add_argument("--steps", type=int, default=300, help="training steps of v1 and of the sidecar's v2")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "loop_before_after.json")
    args = parser.parse_args(argv)
    world: Path = args.world.resolve()
    shutil.rmtree(world, ignore_errors=True)
    world.mkdir(parents=True)
    t0 = time.monotonic()

    base = load_config(ROOT / "configs" / "train" / "injection.yaml")
    examples, _ = load_examples(base)
    train = [e for e in examples if e.split == "train"]
    half_a = [e for e in train if stable_fraction(e.text, "loop-half") < 0.5]
    half_b = [e for e in train if stable_fraction(e.text, "loop-half") >= 0.5]
    test = [e for e in examples if e.split == "test"]
    _jsonl(world / "half_a.jsonl", [{"text": e.text, "label": e.source_label} for e in half_a])
    _jsonl(world / "eval.jsonl", [{"text": e.text, "label": "injection" if e.label else "benign"} for e in test])
    traffic = sorted(half_b, key=lambda e: stable_fraction(e.text, "loop-traffic"))[: args.traffic]

    classifier = {
        "name": "loop-injection",
        "labels": ["benign", "injection"],
        "label_map": dict(base.label_map),
        "base_model": base.base_model,
        "output_dir": "models",
        "work_dir": "runs/v1",
        "max_length": 256,
        "stride": 64,
        "max_steps": args.steps,
        "batch_size": 16,
        "save_steps": 100,
        "target_fpr": 0.01,
        "min_threshold": 0.02,
        "fpr_labels": ["benign"],
        "datasets": [{"path": "half_a.jsonl"}],
    }
    (world / "classifier.yaml").write_text(yaml.safe_dump(classifier))
    v1 = train_main(load_config(world / "classifier.yaml"))
    promote(v1.parent, v1.name, reason="loop bench: trained on half A")

    audit = world / "audit.db"
    policy = world / "policy.yaml"
    mistakes = {"false_positive": 0, "false_negative": 0}
    decisions: list[bool] = []
    with FakeUpstream() as upstream:
        policy.write_text(
            yaml.safe_dump(
                {
                    "backends": {"upstream": {"type": "openai", "base_url": upstream.base_url, "api_key": "k"}},
                    "models": [{"name": "m", "backend": "upstream"}],
                    "detectors": {"inj": {"type": "injection_classifier", "model_path": str(v1.parent)}},
                    "input": [{"detector": "inj", "action": "block"}],
                    "audit": {"path": str(audit)},
                }
            )
        )
        with ProxyServer(policy) as proxy:
            client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="reviewer-key", max_retries=0)
            for e in traffic:
                try:
                    raw = client.chat.completions.with_raw_response.create(
                        model="m", messages=[{"role": "user", "content": e.text}]
                    )
                    request_id, blocked = raw.headers["x-guardproxy-request-id"], False
                except openai.BadRequestError as exc:
                    request_id, blocked = exc.response.headers["x-guardproxy-request-id"], True
                decisions.append(blocked)
                truth = e.label != 0
                if blocked != truth:
                    label = "false_positive" if blocked else "false_negative"
                    mistakes[label] += 1
                    proxy.post_raw(
                        "/v1/feedback",
                        json.dumps({"request_id": request_id, "label": label, "step": "input.0.inj"}).encode(),
                        {"authorization": "Bearer reviewer-key"},
                    )
    traffic_s = time.monotonic() - t0

    sidecar = {
        "name": "loop",
        "dataset": {
            "name": "loop",
            "audit_store": str(audit),
            "target": "injection",
            "detectors": ["inj"],
            "benign_ratio": 1.5,
            "output_dir": "datasets",
        },
        "classifier": "classifier.yaml",
        "classifier_overrides": {"max_steps": args.steps, "work_dir": "runs/v2"},
        "eval_sets": ["eval.jsonl"],
        "min_new_events": 10,
        "metric": "f1",
        "min_improvement": 0.0,
        "max_fpr_increase": 0.01,
        "work_dir": "runs/sidecar",
        "report_dir": "reports",
    }
    (world / "sidecar.yaml").write_text(yaml.safe_dump(sidecar))
    report = run_once(load_sidecar(world / "sidecar.yaml"))
    result = {
        "data": {
            "half_a": len(half_a),
            "half_b": len(half_b),
            "traffic_sent": len(traffic),
            "held_out_test": len(test),
        },
        "traffic": {"blocked": sum(decisions), "feedback": mistakes},
        "sidecar": report.as_json(),
        "seconds": round(time.monotonic() - t0, 1),
        "traffic_phase_seconds": round(traffic_s, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps(result, indent=2, default=str)[:4000])
    return 0


if __name__ == "__main__":
    sys.exit(main())
