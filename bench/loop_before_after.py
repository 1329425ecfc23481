"""Before/after of the closed learning loop on the shared data (issue 5's proof).

1. v1 is trained on HALF of the injection training split (`configs/train/injection.yaml`, split by a hash).
2. The other half is sent as traffic through a real proxy serving v1 (the official openai SDK); every
   decision v1 gets wrong is labelled through `POST /v1/feedback`, as a reviewer would.
3. The sidecar (`guardproxy.trainer.sidecar.run_once`) builds a snapshot from the audit log, fine-tunes v2
   from v1, evaluates both on the fixed held-out test split (never trained on), gates and promotes.
4. Both versions are reported on that held-out split; the sidecar's own report is written too.
5. `--shift DATASET`: a new kind of attack appears in the traffic. v1 never sees DATASET (it is left out of
   half A); half of the traffic comes from DATASET's training split, and every model is also scored on
   DATASET's held-out test slice.
6. Control (`--control`, on by default): v2 trains as many steps from v1 as the sidecar's does, on half A
   alone, without the snapshot. Candidate minus control is what the traffic and the feedback added, apart
   from the plain extra training both got.

    python bench/loop_before_after.py [--traffic 800] [--steps 300] [--no-control]     # ~27 min on 2 cores
    python bench/loop_before_after.py --shift bipia_indirect_injection --out bench/results/loop_shift_bipia.json
    python bench/loop_before_after.py --finetune lora --lr 5e-4 --out bench/results/loop_before_after_lora.json

Output: runs/loop/ (models, audit.db, snapshot, reports) and bench/results/loop_before_after.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import openai
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from guardproxy.trainer.classifier.config import load_config  # noqa: E402
from guardproxy.trainer.classifier.data import load_examples, stable_fraction  # noqa: E402
from guardproxy.trainer.classifier.pipeline import TORCH_DIR  # noqa: E402
from guardproxy.trainer.classifier.pipeline import main as train_main  # noqa: E402
from guardproxy.trainer.dataset.snapshot import DATA_FILE, read_jsonl  # noqa: E402
from guardproxy.trainer.registry import promote  # noqa: E402
from guardproxy.trainer.sidecar import run_once  # noqa: E402
from guardproxy.trainer.sidecar.config import load_config as load_sidecar  # noqa: E402
from guardproxy.trainer.sidecar.evaluate import (  # noqa: E402
    GroupScorer,
    LabelledText,
    group_members,
    label_rules,
    labelled,
    model_metrics,
)
from guardproxy.trainer.sidecar.run import classifier_config, dataset_config  # noqa: E402
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
    parser.add_argument(
        "--control",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also train the no-feedback control (v1 + the same steps on half A only)",
    )
    parser.add_argument(
        "--finetune",
        choices=["full", "lora"],
        default="full",
        help="how the sidecar's v2 and the control fine-tune from v1 (v1 itself is always a full fine-tune)",
    )
    parser.add_argument("--lr", type=float, help="learning rate of v2 and the control (default: the config's)")
    parser.add_argument("--shift", metavar="DATASET", help="leave DATASET out of v1; half the traffic comes from it")
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

    def by_hash(e: Any) -> float:
        return stable_fraction(e.text, "loop-traffic")

    if args.shift:
        if not any(e.dataset == args.shift for e in train):
            parser.error(f"--shift {args.shift}: no such dataset in configs/train/injection.yaml")
        half_a = [e for e in half_a if e.dataset != args.shift]
        shifted = sorted((e for e in train if e.dataset == args.shift), key=by_hash)[: args.traffic // 2]
        usual = sorted((e for e in half_b if e.dataset != args.shift), key=by_hash)
        traffic = shifted + usual[: args.traffic - len(shifted)]
        traffic.sort(key=lambda e: stable_fraction(e.text, "loop-order"))
    else:
        traffic = sorted(half_b, key=by_hash)[: args.traffic]
    _jsonl(world / "half_a.jsonl", [{"text": e.text, "label": e.source_label} for e in half_a])
    _jsonl(world / "eval.jsonl", [{"text": e.text, "label": "injection" if e.label else "benign"} for e in test])
    slices = {"eval": [LabelledText(e.text, e.label != 0) for e in test]}
    if args.shift:
        slices[f"eval:{args.shift}"] = [LabelledText(e.text, e.label != 0) for e in test if e.dataset == args.shift]

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
        "classifier_overrides": {"max_steps": args.steps, "work_dir": "runs/v2"} | _tuning(args),
        "eval_sets": ["eval.jsonl"],
        "min_new_events": 10,
        "metric": "f1",
        "min_improvement": 0.0,
        "max_fpr_increase": 0.01,
        "work_dir": "runs/sidecar",
        "report_dir": "reports",
    }
    (world / "sidecar.yaml").write_text(yaml.safe_dump(sidecar))
    sidecar_cfg = load_sidecar(world / "sidecar.yaml")
    report = run_once(sidecar_cfg)
    control = (
        _control(world, sidecar_cfg, v1, Path(report.snapshot or ""), args.steps, _tuning(args))
        if args.control
        else None
    )
    models = {"v1 (current)": v1, "v2 (sidecar candidate)": v1.parent / str(report.candidate_version)}
    if control is not None:
        models["control (no traffic, no feedback)"] = Path(control["model"])
    sliced = {
        name: {
            m: _brief(model_metrics(GroupScorer(d, None, sidecar_cfg.eval_threads), texts)) for m, d in models.items()
        }
        for name, texts in slices.items()
        if name != "eval"  # the whole test split is in the sidecar's own report already
    }
    result = {
        "data": {
            "half_a": len(half_a),
            "half_b": len(half_b),
            "traffic_sent": len(traffic),
            "held_out_test": len(test),
            "shift": args.shift,
            "v2_and_control": _tuning(args),
            "traffic_from_shift": sum(e.dataset == args.shift for e in traffic) if args.shift else 0,
        },
        "traffic": {"blocked": sum(decisions), "feedback": mistakes},
        "summary": _summary(report.as_json(), control) | {"slices": sliced},
        "sidecar": report.as_json(),
        "control": control,
        "seconds": round(time.monotonic() - t0, 1),
        "traffic_phase_seconds": round(traffic_s, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps(result["summary"], indent=2))
    return 0


def _tuning(args: argparse.Namespace) -> dict[str, Any]:
    """What v2 and the control share beyond v1's config: the fine-tuning method and its learning rate."""
    tuning: dict[str, Any] = {"finetune": args.finetune}
    if args.lr is not None:
        tuning["learning_rate"] = args.lr
    return tuning


def _control(
    world: Path, sidecar_cfg: Any, v1: Path, snapshot: Path, steps: int, tuning: dict[str, Any]
) -> dict[str, Any]:
    """v1 + `steps` more steps on half A alone, scored like the sidecar scores its candidate and current."""
    overrides = tuning | {
        "max_steps": steps,
        "work_dir": str(world / "runs" / "control"),
        "output_dir": str(world / "control-models"),
        "init_from": str(v1 / TORCH_DIR),
        "keep_torch_weights": False,
    }
    control_dir = train_main(load_config(world / "classifier.yaml", overrides))
    classifier, dataset = classifier_config(sidecar_cfg), dataset_config(sidecar_cfg)
    scorer = GroupScorer(control_dir, sidecar_cfg.metric_group, sidecar_cfg.eval_threads)
    _, members = group_members(scorer.classifier.card, sidecar_cfg.metric_group)
    rules = label_rules(classifier, dataset, members, dict(sidecar_cfg.eval_labels))
    skipped: Counter[str] = Counter()
    eval_set = [LabelledText(row["text"], row["label"] == "injection") for row in read_jsonl(world / "eval.jsonl")]
    # The first run's snapshot holds only this run's audit events, plus base rows when configured (none here).
    events = [r for r in read_jsonl(snapshot / DATA_FILE) if str(r.get("source", "")).startswith("audit:")]
    metrics = {
        "eval": _brief(model_metrics(scorer, eval_set)),
        "new_events": _brief(model_metrics(scorer, labelled(events, rules, skipped, "new_events"))),
    }
    return {"model": str(control_dir), "steps": steps, "init_from": overrides["init_from"], "metrics": metrics}


def _summary(sidecar: dict[str, Any], control: dict[str, Any] | None) -> dict[str, Any]:
    """Precision, recall, F1 and FPR of v1, v2 and the control on both evaluation sets, side by side."""
    keys = ("n", "precision", "recall", "f1", "fpr")
    rows: dict[str, Any] = {}
    for set_name, by_model in sidecar["metrics"].items():
        models = {"v1 (current)": by_model.get("current"), "v2 (sidecar candidate)": by_model.get("candidate")}
        if control is not None:
            models["control (no traffic, no feedback)"] = control["metrics"].get(set_name)
        rows[set_name] = {
            name: {k: round(m[k], 4) if isinstance(m.get(k), float) else m.get(k) for k in keys}
            for name, m in models.items()
            if m
        }
    return {"status": sidecar["status"], "by_set": rows}


def _brief(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if k != "fired"}


if __name__ == "__main__":
    sys.exit(main())
