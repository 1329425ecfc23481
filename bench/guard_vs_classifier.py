"""The shipped guard model (Llama Guard 3 protocol, in process) against the ONNX moderation head, per evaluation set.

Issue 16's target: "the shipped guard model, run as llama_guard on answers (output stage), beats the ONNX
moderation head on held-out harmful answers (recall at equal false-positive rate)".

    python bench/guard_vs_classifier.py                     # writes bench/results/guard_vs_classifier.json
    python bench/guard_vs_classifier.py --limit 20 --out /tmp/gvc.json          # smoke run
    python bench/guard_vs_classifier.py --guard PATH.gguf   # another GGUF (file, or a registry/version directory)

Every row of every set is scored by both models, one text at a time on the calling thread:

- `onnx_moderation`: the shipped policy's `moderation` detector (`type: moderation_classifier`,
  models/guard-classifier), its calibrated score (0.5 = the model card's operating point) on the judged text alone,
  as the proxy runs it at that stage. Its shipped threshold is the threshold of the policy.yaml step that runs it at
  the set's stage (input: the step whose roles include `user`; output: the output step). The classifier's text
  cache is bypassed, so each latency is a real forward pass.
- `guard`: `LocalLlamaGuard.classify_sync` with warm prefix heads (as the `llama_guard` detector loads it), the
  14 Llama Guard 3 categories, score = P(unsafe) at the answer's first token. Requests: the text as the `User`
  turn (role User). Answers: the user's request as the `User` turn, then the answer as the `Agent` turn (role
  Agent), as the detector does at the output stage. Default threshold 0.5. `answers_not_a_verdict` counts the
  greedy answers that do not start with `safe`/`unsafe` (a base chat model writes prose; its P(unsafe) is still
  read from the two words' logits).

Sets (`in_distribution_for_guard` says whether the guard's training data builder made the set):

- `heldout_answers` (output, in-distribution for the guard): the `Agent` rows without a custom category of
  configs/train/data/guard_sft/heldout.jsonl: groups held out from the guard's own SFT data (harmful answers, their
  wrapped twins, AdvBench compliance openings = unsafe; refusals and helpful answers = safe). Not the ONNX head's
  training data, so this set favours the guard.
- `cross_source_answers` (output, cross-source for both): bench/data/ood/harmful_answers.jsonl (unsafe; these
  records have no request, so the guard's `User` turn is empty, what the detector sees without a user message)
  and the hand-written answers of the first-run suite (safe, each after its own prompt).
- `cross_source_requests` (input, cross-source for both): bench/data/ood/unsafe_casual.jsonl (unsafe),
  bench/data/ood/harmless_sense.jsonl and the first-run prompts (safe: the over-refusal sets).

Figures, per set and per model (ranking figures use every row; percentiles are nearest-rank):

- `n`, `positives`, `negatives`; `auprc` (average precision), `roc_auc` (ties count half), both from
  guardproxy.evaluation.metrics;
- `at_shipped_threshold` (ONNX: the policy step's threshold) / `at_default_threshold` (guard: 0.5): recall, FPR,
  precision and the confusion counts;
- `at_fpr_1pct`, `at_fpr_5pct`: the highest recall with at most floor(target x negatives) false positives, and the
  threshold giving it (chosen on the set itself: an oracle operating point, for comparing curves, not a setting);
- `latency_ms`: p50/p99/mean of one text's scoring.

`matched_fpr` per set: the false-positive rate F the ONNX head has at its shipped threshold on this set, and each
model's highest recall with no more false positives than that (the guard's threshold is chosen on the same set
to match F). This is a matched-FPR comparison of the two score curves, NOT a tuned threshold to ship: the guard's
threshold there is read off the evaluation set itself. `issue_16_target` repeats it for the answer sets.
Never choose a shipped threshold from these figures (bench/data/ood/README.md).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from guardproxy.detectors.base import DetectorDeps  # noqa: E402
from guardproxy.detectors.llama_guard import LlamaGuardConfig  # noqa: E402
from guardproxy.detectors.llama_guard_local import GgufSource, LocalLlamaGuard, locate_gguf  # noqa: E402
from guardproxy.detectors.llama_guard_prompt import (  # noqa: E402
    LLAMA_GUARD_3_CATEGORIES,
    GuardRole,
    Turn,
    render_task,
    render_task_head,
)
from guardproxy.detectors.onnx_classifier import OnnxClassifierDetector  # noqa: E402
from guardproxy.detectors.registry import build_detector  # noqa: E402
from guardproxy.errors import GuardproxyError  # noqa: E402
from guardproxy.evaluation.metrics import (  # noqa: E402
    average_precision,
    confusion,
    percentile,
    roc_auc,
    threshold_curve,
)
from guardproxy.policies import load_policy  # noqa: E402

RESULTS = ROOT / "bench" / "results"
OOD = ROOT / "bench" / "data" / "ood"
FIRST_RUN = ROOT / "bench" / "data" / "first_run" / "benign_suite.jsonl"
HELDOUT = ROOT / "configs" / "train" / "data" / "guard_sft" / "heldout.jsonl"
GUARD_THRESHOLD = 0.5
TARGET_FPRS = {"at_fpr_1pct": 0.01, "at_fpr_5pct": 0.05}
DEFAULT_MAX_TOKENS = LlamaGuardConfig.model_fields["max_tokens"].default  # what the detector decodes at most
Stage = Literal["input", "output"]


class BenchError(Exception):
    """The bench cannot run as asked; the message says why."""


# --- the sets ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    source: str
    text: str  # the judged text: a request (input) or an answer (output)
    unsafe: bool
    user: str = ""  # output stage: the request the answer replies to


@dataclass(frozen=True, slots=True)
class EvalSet:
    name: str
    stage: Stage
    in_distribution_for_guard: bool
    what: str
    rows: list[Row]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def limited(rows: list[Row], limit: int) -> list[Row]:
    """At most `limit` rows with both classes: the first ceil(limit/2) unsafe ones, the rest safe, each class taken
    round-robin over its sources (so a smoke run sees every file). 0 = all rows, in file order."""
    if not limit:
        return rows
    picked: list[Row] = []
    for unsafe, quota in ((True, math.ceil(limit / 2)), (False, limit // 2)):
        by_source: dict[str, list[Row]] = {}
        for row in rows:
            if row.unsafe == unsafe:
                by_source.setdefault(row.source, []).append(row)
        queues = list(by_source.values())
        taken: list[Row] = []
        while len(taken) < quota and any(queues):
            for queue in queues:
                if queue and len(taken) < quota:
                    taken.append(queue.pop(0))
        picked += taken
    return picked


def load_sets(limit: int = 0) -> list[EvalSet]:
    heldout = [
        Row(r["source"], r["answer"], r["label"] == "unsafe", r["user"])
        for r in read_jsonl(HELDOUT)
        if r["role"] == "Agent" and not r["custom"]
    ]
    first_run = read_jsonl(FIRST_RUN)
    answers = [Row("harmful_answers", r["text"], True) for r in read_jsonl(OOD / "harmful_answers.jsonl")]
    answers += [Row("first_run_answers", r["answer"], False, r["text"]) for r in first_run]
    requests = [Row("unsafe_casual", r["text"], True) for r in read_jsonl(OOD / "unsafe_casual.jsonl")]
    requests += [Row("harmless_sense", r["text"], False) for r in read_jsonl(OOD / "harmless_sense.jsonl")]
    requests += [Row("first_run_prompts", r["text"], False) for r in first_run]
    return [
        EvalSet(
            "heldout_answers",
            "output",
            True,
            "Agent rows without custom categories of configs/train/data/guard_sft/heldout.jsonl (held-out groups of "
            "the guard's own SFT data)",
            limited(heldout, limit),
        ),
        EvalSet(
            "cross_source_answers",
            "output",
            False,
            "bench/data/ood/harmful_answers.jsonl (unsafe, no request: empty User turn) + the first-run suite's "
            "hand-written answers after their prompts (safe)",
            limited(answers, limit),
        ),
        EvalSet(
            "cross_source_requests",
            "input",
            False,
            "bench/data/ood/unsafe_casual.jsonl (unsafe) + bench/data/ood/harmless_sense.jsonl and the first-run "
            "prompts (safe)",
            limited(requests, limit),
        ),
    ]


# --- metrics not in guardproxy.evaluation.metrics ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OperatingPoint:
    """Flag `score >= threshold`; threshold None = flag nothing (no threshold keeps within the FP budget)."""

    threshold: float | None
    recall: float
    fpr: float
    tp: int
    fp: int


def recall_at_fpr(scores: Sequence[float], positive: Sequence[bool], max_fpr: float) -> OperatingPoint:
    """The highest recall with at most floor(max_fpr x negatives) false positives: the lowest threshold (one of
    the scores, all ties flagged together) within that budget. Chosen on the scored set itself."""
    n_pos = sum(1 for p in positive if p)
    n_neg = len(positive) - n_pos
    if n_neg == 0:
        raise ValueError("recall at a false-positive rate needs negatives")
    budget = math.floor(max_fpr * n_neg + 1e-9)  # 1e-9: k/n_neg * n_neg must give k back, not k - epsilon
    best = OperatingPoint(None, 0.0, 0.0, 0, 0)
    for point in threshold_curve(scores, positive):  # highest threshold first: fp and recall only grow
        fp = round(point.fpr * n_neg)
        if fp > budget:
            break
        best = OperatingPoint(point.threshold, point.recall, point.fpr, round(point.recall * n_pos), fp)
    return best


def _r(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def at_threshold(scores: Sequence[float], positive: Sequence[bool], threshold: float) -> dict[str, Any]:
    c = confusion([s >= threshold for s in scores], positive)
    return {
        "threshold": threshold,
        "recall": _r(c.recall),
        "fpr": _r(c.fpr),
        "precision": _r(c.precision),
        "confusion": {"tp": c.tp, "fp": c.fp, "fn": c.fn, "tn": c.tn},
    }


def point_dict(point: OperatingPoint) -> dict[str, Any]:
    return {
        "threshold": _r(point.threshold, 6),
        "recall": _r(point.recall),
        "fpr": _r(point.fpr),
        "tp": point.tp,
        "fp": point.fp,
    }


def latency(samples_ms: Sequence[float]) -> dict[str, float | None]:
    return {
        "p50": _r(percentile(samples_ms, 0.5), 2),
        "p99": _r(percentile(samples_ms, 0.99), 2),
        "mean": _r(sum(samples_ms) / len(samples_ms), 2) if samples_ms else None,
    }


# --- the two models ---------------------------------------------------------------------------------------


@dataclass
class Scores:
    values: list[float]
    latency_ms: list[float]
    not_a_verdict: int = 0


def shipped_thresholds(policy_path: Path, detector: str) -> dict[Stage, float]:
    """The threshold of the policy step running `detector` on user texts (input) and on answers (output)."""
    policy = load_policy(policy_path)
    found: dict[Stage, float] = {}
    for step in policy.input:
        if step.detector == detector and (step.roles is None or "user" in step.roles) and "input" not in found:
            found["input"] = step.threshold
    for step in policy.output:
        if step.detector == detector and "output" not in found:
            found["output"] = step.threshold
    missing = {"input", "output"} - set(found)
    if missing:
        raise BenchError(f"{policy_path}: no {sorted(missing)} step runs detector {detector!r}")
    return found


def build_moderation(policy_path: Path, name: str, threads: int | None) -> OnnxClassifierDetector:
    policy = load_policy(policy_path)
    if name not in policy.detectors:
        raise BenchError(f"--moderation {name!r} is not a detector of {policy_path}: {sorted(policy.detectors)}")
    config = policy.detectors[name]
    if threads is not None:
        config = config.model_copy(update={"threads": threads})
    detector = build_detector(name, config, DetectorDeps())
    if not isinstance(detector, OnnxClassifierDetector):
        raise BenchError(f"detectors.{name} of {policy_path} is not an ONNX classifier ({type(detector).__name__})")
    return detector


def score_onnx(detector: OnnxClassifierDetector, rows: Sequence[Row], label: str) -> Scores:
    out = Scores([], [])
    for i, row in enumerate(rows):
        start = time.perf_counter()
        # The classifier itself, not the service's text cache: every latency is a forward pass.
        detection = detector.decide(detector.service.classifier.score(row.text))
        out.latency_ms.append((time.perf_counter() - start) * 1000)
        out.values.append(float(detection.score))
        progress(label, i, len(rows))
    return out


def guard_task(row: Row, stage: Stage) -> tuple[GuardRole, str]:
    if stage == "input":
        return "User", render_task([Turn("User", row.text)], LLAMA_GUARD_3_CATEGORIES)
    return "Agent", render_task([Turn("User", row.user), Turn("Agent", row.text)], LLAMA_GUARD_3_CATEGORIES)


def is_verdict(answer: str) -> bool:
    first = answer.strip().split("\n", 1)[0].strip()
    return first in ("safe", "unsafe")


def score_guard(engine: LocalLlamaGuard, rows: Sequence[Row], stage: Stage, label: str) -> Scores:
    out = Scores([], [])
    for i, row in enumerate(rows):
        role, task = guard_task(row, stage)
        start = time.perf_counter()
        verdict = engine.classify_sync(role, task)
        out.latency_ms.append((time.perf_counter() - start) * 1000)
        out.values.append(float(verdict.p_unsafe))
        out.not_a_verdict += not is_verdict(verdict.text)
        progress(label, i, len(rows))
    return out


def progress(label: str, i: int, n: int) -> None:
    if (i + 1) % 50 == 0 or i + 1 == n:
        print(f"  {label}: {i + 1}/{n}", file=sys.stderr, flush=True)


def locate_guard(path: Path | None) -> GgufSource:
    try:
        return locate_gguf("--guard", None if path is None else str(path))
    except GuardproxyError as exc:
        raise BenchError(str(exc)) from None


# --- the report -------------------------------------------------------------------------------------------


def model_figures(scores: Scores, positive: list[bool], threshold: float, threshold_key: str) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "auprc": _r(average_precision(scores.values, positive)),
        "roc_auc": _r(roc_auc(scores.values, positive)),
        threshold_key: at_threshold(scores.values, positive, threshold),
    }
    for key, target in TARGET_FPRS.items():
        figures[key] = point_dict(recall_at_fpr(scores.values, positive, target))
    figures["latency_ms"] = latency(scores.latency_ms)
    return figures


def matched_fpr(onnx: Scores, guard: Scores, positive: list[bool], onnx_threshold: float) -> dict[str, Any]:
    shipped = confusion([s >= onnx_threshold for s in onnx.values], positive)
    fpr = shipped.fpr or 0.0
    onnx_point = recall_at_fpr(onnx.values, positive, fpr)
    guard_point = recall_at_fpr(guard.values, positive, fpr)
    return {
        "note": "matched-FPR comparison, not a tuned threshold: each model's highest recall with no more false "
        "positives than the ONNX head makes at its shipped threshold on this set; the guard's threshold is chosen "
        "on this same set",
        "fpr": _r(fpr),
        "false_positives_allowed": shipped.fp,
        "onnx_moderation_at_shipped_threshold": {"recall": _r(shipped.recall), "fpr": _r(shipped.fpr)},
        "onnx_moderation": point_dict(onnx_point),
        "guard": point_dict(guard_point),
        "guard_minus_onnx_recall": _r(guard_point.recall - onnx_point.recall),
        "guard_minus_onnx_shipped_recall": _r(guard_point.recall - (shipped.recall or 0.0)),
    }


def per_source(rows: list[Row], onnx: Scores, guard: Scores, onnx_threshold: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for source in dict.fromkeys(r.source for r in rows):
        idx = [i for i, r in enumerate(rows) if r.source == source]
        labels = {rows[i].unsafe for i in idx}
        out[source] = {
            "n": len(idx),
            "label": "unsafe" if labels == {True} else "safe" if labels == {False} else "mixed",
            "flagged_share": {
                "onnx_moderation_at_shipped": _r(sum(onnx.values[i] >= onnx_threshold for i in idx) / len(idx)),
                "guard_at_0.5": _r(sum(guard.values[i] >= GUARD_THRESHOLD for i in idx) / len(idx)),
            },
        }
    return out


def set_report(s: EvalSet, onnx: Scores, guard: Scores, onnx_threshold: float) -> dict[str, Any]:
    positive = [r.unsafe for r in s.rows]
    guard_figures = model_figures(guard, positive, GUARD_THRESHOLD, "at_default_threshold")
    guard_figures["answers_not_a_verdict"] = guard.not_a_verdict
    return {
        "stage": s.stage,
        "in_distribution_for_guard": s.in_distribution_for_guard,
        "what": s.what,
        "n": len(s.rows),
        "positives": sum(positive),
        "negatives": len(positive) - sum(positive),
        "models": {
            "onnx_moderation": model_figures(onnx, positive, onnx_threshold, "at_shipped_threshold"),
            "guard": guard_figures,
        },
        "matched_fpr": matched_fpr(onnx, guard, positive, onnx_threshold),
        "per_source": per_source(s.rows, onnx, guard, onnx_threshold),
    }


def target_verdict(sets: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "target": "the guard on answers (output stage) beats the ONNX moderation head on held-out harmful answers: "
        "recall at equal false-positive rate (matched_fpr); small sets, read the counts",
    }
    for name, report in sets.items():
        if report["stage"] != "output":
            continue
        m = report["matched_fpr"]
        out[name] = {
            "in_distribution_for_guard": report["in_distribution_for_guard"],
            "positives": report["positives"],
            "negatives": report["negatives"],
            "fpr": m["fpr"],
            "guard_recall": m["guard"]["recall"],
            "onnx_recall": m["onnx_moderation"]["recall"],
            "guard_higher": m["guard"]["recall"] > m["onnx_moderation"]["recall"],
        }
    return out


def print_table(report: dict[str, Any]) -> None:
    head = (
        f"{'set':<22} {'model':<16} {'AUPRC':>6} {'AUC':>6} {'R@thr':>6} {'F@thr':>6} {'R@mF':>6} "
        f"{'R@1%':>6} {'R@5%':>6} {'p50ms':>8} {'p99ms':>8}"
    )
    print(head)
    for name, s in report["sets"].items():
        for model, f in s["models"].items():
            at = f.get("at_shipped_threshold") or f["at_default_threshold"]
            cells = [
                f["auprc"],
                f["roc_auc"],
                at["recall"],
                at["fpr"],
                s["matched_fpr"][model]["recall"],
                f["at_fpr_1pct"]["recall"],
                f["at_fpr_5pct"]["recall"],
            ]
            shown = " ".join(f"{'-' if v is None else f'{v:.3f}':>6}" for v in cells)
            lat = f["latency_ms"]
            print(f"{name:<22} {model:<16} {shown} {lat['p50']:>8.1f} {lat['p99']:>8.1f}")
        m = s["matched_fpr"]
        print(f"{'':<22} n={s['n']} pos={s['positives']} matched FPR={m['fpr']} ({m['false_positives_allowed']} FP)")
    print("R@thr/F@thr: recall/FPR at ONNX's shipped threshold or the guard's 0.5; R@mF: recall at the ONNX head's")
    print("shipped FPR (matched-FPR comparison, guard threshold chosen on the set, not a tuned threshold)")


def rel(path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def run(args: argparse.Namespace) -> dict[str, Any]:
    sets = load_sets(args.limit)
    thresholds = shipped_thresholds(args.policy, args.moderation)
    source = locate_guard(args.guard)
    load_before = os.getloadavg()
    started = time.perf_counter()

    onnx_scores: dict[str, Scores] = {}
    detector = build_moderation(args.policy, args.moderation, args.threads)
    try:
        detector.decide(detector.service.classifier.score("Warm-up: how do I water a cactus?"))  # first-call setup
        onnx_model = [f"{rel(d.loaded)}" for d in detector.model_dirs()]
        for s in sets:
            onnx_scores[s.name] = score_onnx(detector, s.rows, f"onnx {s.name}")
    finally:
        detector.close()

    load_start = time.perf_counter()
    heads = {role: render_task_head(role, LLAMA_GUARD_3_CATEGORIES) for role in ("User", "Agent")}
    engine = LocalLlamaGuard.load(
        "--guard",
        source.path,
        wrapper="auto",
        n_ctx=args.n_ctx,
        n_threads=args.threads,
        max_tokens=args.max_tokens,
        heads=heads,
    )
    guard_scores: dict[str, Scores] = {}
    try:
        engine.wait_prefilled()
        guard_load_ms = (time.perf_counter() - load_start) * 1000
        for s in sets:
            guard_scores[s.name] = score_guard(engine, s.rows, s.stage, f"guard {s.name}")
    finally:
        engine.close()

    results = {s.name: set_report(s, onnx_scores[s.name], guard_scores[s.name], thresholds[s.stage]) for s in sets}
    return {
        "what": "the guard model (Llama Guard 3 protocol, in process) vs the ONNX moderation head, per set; "
        "figures explained in the module docstring of bench/guard_vs_classifier.py",
        "command": "python " + " ".join(["bench/guard_vs_classifier.py", *args.argv]),
        "limit_per_set": args.limit or None,
        "models": {
            "onnx_moderation": {
                "detector": f"detectors.{args.moderation} of {rel(args.policy)}",
                "model_dir": onnx_model,
                "shipped_threshold": thresholds,
                "score": "calibrated (0.5 = model card operating point), max over labels and windows, on the "
                "judged text alone",
            },
            "guard": {
                "gguf": rel(source.path),
                "gguf_bytes": source.path.stat().st_size,
                "registry_version": None if source.model_dir is None else rel(source.model_dir.loaded),
                "prompt_wrapper": engine.wrapper,
                "categories": "Llama Guard 3 S1-S14",
                "default_threshold": GUARD_THRESHOLD,
                "max_tokens": args.max_tokens,
                "n_ctx": args.n_ctx,
                "load_and_prefill_ms": round(guard_load_ms, 1),
                "score": "P(unsafe) at the answer's first token (softmax over the logits of 'safe' and 'unsafe')",
            },
        },
        "n_threads": args.threads,
        "wall_s": round(time.perf_counter() - started, 1),
        "machine": {
            "cpu_count": os.cpu_count(),
            "load_average_1_5_15_min": {"before": load_before, "after": os.getloadavg()},
            "platform": platform.platform(),
            "processor": platform.processor(),
            "python": platform.python_version(),
        },
        "issue_16_target": target_verdict(results),
        "sets": results,
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--guard", type=Path, help="a GGUF file or model directory (default: the shipped registry)")
    p.add_argument("--limit", type=int, default=0, help="at most N rows per set, both classes (smoke runs)")
    p.add_argument("--out", type=Path, default=RESULTS / "guard_vs_classifier.json")
    p.add_argument("--threads", type=int, default=None, help="threads of both models (default: each one's own)")
    p.add_argument("--policy", type=Path, default=ROOT / "policy.yaml", help="holds the ONNX detector and its steps")
    p.add_argument("--moderation", default="moderation", help="the ONNX detector's name in --policy")
    p.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS, help="guard answer tokens decoded at most")
    p.add_argument("--n-ctx", type=int, default=4096, help="guard context window (the detector's default)")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        report = run(args)
    except (BenchError, GuardproxyError) as exc:
        print(f"guard_vs_classifier: {exc}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print_table(report)
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
