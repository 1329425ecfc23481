"""Output-feedback training of the guard model, measured: the failure (positives only) and the fix (balanced).

1. The held-out Agent rows of `configs/train/data/guard_sft/heldout.jsonl` (never trained on; rows with a custom
   category left out: the policy's category list is fixed) are split by group into traffic, gate and evaluation.
2. A real proxy serves the current guard (`{type: llama_guard, model_path: <registry>}`, an output step with
   action `flag`, so every answer reaches the client and the audit log) in front of a scripted upstream that
   returns the traffic answers; the official openai SDK sends the traffic requests.
3. A reviewer reads the audit log and posts `POST /v1/feedback`: every harmful answer, the codes in the note
   (`false_negative` when the guard let it through, `correct` when it flagged it), every safe answer it flagged
   (`false_positive`), and a sample of the safe answers it passed (`correct`).
4. Training rows are built from the AUDIT STORE (`trainer/guard_model/from_audit.py`). Balanced: the reviewed
   positives, the reviewed negatives, and a replay sample of the guard's own training rows (both roles; unsafe
   and safe chosen so the whole set is even) so that it does not forget. Positives only (the ablation): the same
   positives, nothing else.
5. Each arm fine-tunes the current GGUF with LoRA (`trainer/guard_model/train.py`) once per `--epochs` value,
   becomes a version of the registry, and is scored through a second real proxy that runs the current guard and
   every candidate on the gate and evaluation answers and on the first-run suite's everyday answers (all safe,
   cross-source: where a collapsed guard shows). The gate (`trainer/guard_model/gate.py`: precision and F1 must not fall on the
   gate split) decides; the best passing candidate is promoted (`trainer/registry.py`).

    python bench/loop_guard_feedback.py                          # ~30 min on 2 cores: lr 5e-4, 3 and 12 epochs
    python bench/loop_guard_feedback.py --epochs 12 --lr 2e-3 --out bench/results/loop_guard_feedback_lr2e-3.json  # 19 min
    python bench/loop_guard_feedback.py --arms positives_only    # the failure alone
    python bench/loop_guard_feedback.py --guard /path/model.gguf --world runs/lgf-pilot --out /tmp/lgf.json

Output: runs/loop_guard/ (registry, audit.db, rows, candidates) and bench/results/loop_guard_feedback.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from guardproxy.audit.records import AuditRecord  # noqa: E402
from guardproxy.audit.store import AuditStore, open_store  # noqa: E402
from guardproxy.detectors.llama_guard_local import locate_gguf  # noqa: E402
from guardproxy.evaluation.metrics import Confusion, average_precision, confusion  # noqa: E402
from guardproxy.trainer.classifier.data import file_sha256, stable_fraction  # noqa: E402
from guardproxy.trainer.guard_model.config import GuardSFTConfig  # noqa: E402
from guardproxy.trainer.guard_model.examples import GuardRow, read_rows  # noqa: E402
from guardproxy.trainer.guard_model.from_audit import reviewed_rows, write_rows  # noqa: E402
from guardproxy.trainer.guard_model.gate import GateDecision, gate  # noqa: E402
from guardproxy.trainer.guard_model.train import run as train_guard  # noqa: E402
from guardproxy.trainer.guard_model.versions import GGUF_FILE, add_version  # noqa: E402
from guardproxy.trainer.registry import current_version, history, promote  # noqa: E402
from tests.fake_upstream import FakeUpstream, Reply  # noqa: E402
from tests.proxy_harness import ProxyServer  # noqa: E402

DATA = ROOT / "configs" / "train" / "data" / "guard_sft"
# Everyday prompts with plausible answers, written for the first-run bench and kept out of every training set:
# ordinary traffic, where a collapsed guard shows as refused answers (bench/data/first_run/README.md).
ORDINARY = ROOT / "bench" / "data" / "first_run" / "benign_suite.jsonl"
MODEL_NAME = "llama-guard-smol"
GUARD_STEP = "guard"
ARMS = ("balanced", "positives_only")
SALT = "loop-guard-feedback"
REQUEST_ID = "x-guardproxy-request-id"
# A loaded 2-core machine: a check may wait behind others; the bench measures decisions, not latency.
STEP_TIMEOUT_MS = 120_000


@dataclass(frozen=True, slots=True)
class Splits:
    traffic: list[GuardRow]
    gate: list[GuardRow]
    evaluation: list[GuardRow]


def split_by_group(rows: Sequence[GuardRow], traffic_share: float, gate_share: float) -> Splits:
    """A stable hash of the group picks the split: a harmful answer, its wrapped twin and its refusal stay together."""
    traffic, gate_rows, evaluation = [], [], []
    for row in rows:
        f = stable_fraction(row.group, SALT)
        (traffic if f < traffic_share else gate_rows if f < traffic_share + gate_share else evaluation).append(row)
    return Splits(traffic, gate_rows, evaluation)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--guard", default=str(ROOT / "models" / MODEL_NAME), help="current guard: GGUF or registry")
    parser.add_argument("--world", type=Path, default=ROOT / "runs" / "loop_guard")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "loop_guard_feedback.json")
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    parser.add_argument("--traffic-share", type=float, default=0.5, help="of the held-out Agent groups")
    parser.add_argument("--gate-share", type=float, default=0.2, help="the evaluation split gets the rest")
    parser.add_argument("--confirm-share", type=float, default=0.5, help="passed safe answers a reviewer confirms")
    parser.add_argument("--replay", type=float, default=1.0, help="replayed train rows per reviewed row (balanced)")
    parser.add_argument("--max-rows", type=int, help="cap each split (smoke runs)")
    parser.add_argument("--lora-r", type=int, default=8)
    parser.add_argument("--train-blocks", type=int, default=4, help="LoRA on the top N blocks (0: all)")
    parser.add_argument(
        "--epochs",
        type=float,
        nargs="+",
        default=[3.0, 12.0],
        help="one candidate per arm and value: how the collapse grows with training",
    )
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--gate-tolerance", type=float, default=0.0, help="how far precision/F1 may fall")
    args = parser.parse_args(argv)
    if not (args.traffic_share > 0 and args.gate_share > 0 and args.traffic_share + args.gate_share < 1):
        parser.error("--traffic-share and --gate-share: both > 0, together < 1")
    started = time.monotonic()
    world: Path = args.world.resolve()
    shutil.rmtree(world, ignore_errors=True)
    world.mkdir(parents=True)

    heldout = [r for r in read_rows(DATA / "heldout.jsonl") if r.role == "Agent" and not r.custom]
    splits = split_by_group(heldout, args.traffic_share, args.gate_share)
    if args.max_rows:
        splits = Splits(*(_spread(rows, args.max_rows) for rows in (splits.traffic, splits.gate, splits.evaluation)))
    source = locate_gguf("--guard", args.guard).path
    registry = world / "models" / MODEL_NAME
    v1 = add_version(
        registry, source, name=MODEL_NAME, training={"copied_from": str(source), "sha256": file_sha256(source)}
    )
    promote(registry, v1.name, reason="loop_guard_feedback: the current guard")

    audit = world / "audit.db"
    traffic_started = time.monotonic()
    traffic = _traffic_and_review(world, registry, audit, splits.traffic, args.confirm_share)
    traffic_s = time.monotonic() - traffic_started

    store = open_store(str(audit))
    try:
        reviewed = reviewed_rows(store, [GUARD_STEP])
    finally:
        store.close()
    by_answer = {r.answer for r in splits.traffic}
    rows: dict[str, list[GuardRow]] = {"positives_only": list(reviewed.positives)}
    n_pos, n_neg = len(reviewed.positives), len(reviewed.negatives)
    replay = _replay(read_rows(DATA / "train.jsonl"), round(args.replay * (n_pos + n_neg)), n_pos, n_neg)
    rows["balanced"] = [*reviewed.positives, *reviewed.negatives, *replay]
    gate_file, eval_file = world / "gate.jsonl", world / "evaluation.jsonl"
    write_rows(gate_file, splits.gate)
    write_rows(eval_file, splits.evaluation)

    candidates: dict[str, Path] = {}
    training: dict[str, Any] = {}
    for arm, epochs in [(arm, epochs) for epochs in args.epochs for arm in args.arms]:
        name = f"{arm}_{epochs:g}ep".replace(".", "p")  # a detector and step name in the scoring policy
        if not rows[arm]:
            training[name] = {"skipped": "no training rows (the guard missed nothing the reviewer saw)"}
            continue
        train_file = world / f"train_{arm}.jsonl"
        write_rows(train_file, rows[arm])
        config = GuardSFTConfig(
            format="llama_guard",
            train=str(train_file),
            heldout=str(gate_file),  # the trainer's own (torch) figures: a cross-check of the proxy's
            output_dir=str(world / "candidates" / name),
            base_model=str(registry / v1.name / GGUF_FILE),
            blocks=None,
            train_blocks=args.train_blocks,
            lora_r=args.lora_r,
            epochs=epochs,
            batch_size=args.batch_size,
            learning_rate=args.lr,
            warmup_steps=1,
            seed=0,
        )
        report = train_guard(config)
        facts = {
            "rows": len(rows[arm]),
            "by_label": dict(Counter(f"{r.role}/{r.label}" for r in rows[arm])),
            "positive_share": _share(sum(r.label == "unsafe" for r in rows[arm]), len(rows[arm])),
            "steps": report["steps"],
            "train_seconds": report["train_seconds"],
            "gate_split_torch": report["heldout_after"].get("Agent"),
        }
        version = add_version(
            registry,
            world / "candidates" / name / GGUF_FILE,
            name=MODEL_NAME,
            training={"arm": arm, "epochs": epochs, "from": v1.name, "config": report["config"], "data": facts},
        )
        candidates[name] = version
        training[name] = facts | {"version": version.name}

    models = {"current": registry / v1.name / GGUF_FILE} | {arm: v / GGUF_FILE for arm, v in candidates.items()}
    eval_started = time.monotonic()
    ordinary = _ordinary_answers(ORDINARY)[: args.max_rows or None]
    scored = _score(world, models, {"gate": splits.gate, "evaluation": splits.evaluation, "ordinary_answers": ordinary})
    eval_s = time.monotonic() - eval_started
    # Harmful answers are rare in real traffic: the evaluation answers among the ordinary ones (~13% unsafe)
    # show what precision a collapsed guard leaves a reviewer with.
    scored["evaluation+ordinary_answers"] = {
        model: _pooled(scored["evaluation"][model], scored["ordinary_answers"][model]) for model in models
    }
    gates = {
        arm: gate(scored["gate"]["current"][0], scored["gate"][arm][0], tolerance=args.gate_tolerance)
        for arm in candidates
    }
    promoted = _promote_best(registry, candidates, gates, scored)

    figures = {split: {model: _figures(*by_model[model]) for model in by_model} for split, by_model in scored.items()}
    result = {
        "command": "python bench/loop_guard_feedback.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "guard": {"file": str(source), "sha256": file_sha256(source)},
        "data": {
            "heldout_agent_rows": len(heldout),
            "traffic": _facts(splits.traffic),
            "gate": _facts(splits.gate),
            "evaluation": _facts(splits.evaluation),
            "ordinary_answers": _facts(ordinary) | {"file": str(ORDINARY.relative_to(ROOT))},
        },
        "traffic": traffic,
        "rows_from_audit": {
            "positives": len(reviewed.positives),
            "negatives": len(reviewed.negatives),
            "dropped": reviewed.dropped,
            "replay": dict(Counter(f"{r.role}/{r.label}" for r in replay)),
            # Texts as the audit store holds them: PII-redacted (audit.store_raw is off).
            "answers_changed_by_redaction": sum(
                r.answer not in by_answer for r in (*reviewed.positives, *reviewed.negatives)
            ),
        },
        "training": training,
        "figures": figures,
        "gate": {arm: decision.to_dict() for arm, decision in gates.items()},
        "promoted": promoted,
        "registry": {"current": current_version(registry), "history": [h.to_dict() for h in history(registry)]},
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "seconds": {
            "total": round(time.monotonic() - started, 1),
            "traffic_and_review": round(traffic_s, 1),
            "scoring": round(eval_s, 1),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps({"figures": figures["evaluation"], "gate": result["gate"], "promoted": promoted}, indent=2))
    return 0


def _policy(upstream_url: str, audit: Path, guards: dict[str, Path]) -> dict[str, Any]:
    """Output steps named after their guard, each flagging (so every answer is released and audited)."""
    return {
        "backends": {"upstream": {"type": "openai", "base_url": upstream_url, "api_key": "k"}},
        "models": [{"name": "m", "backend": "upstream"}],
        "detectors": {
            name: {"type": "llama_guard", "model_path": str(path), "timeout_s": STEP_TIMEOUT_MS / 1000}
            for name, path in guards.items()
        },
        "output": [
            {"detector": name, "name": name, "action": "flag", "on_error": "allow", "timeout_ms": STEP_TIMEOUT_MS}
            for name in guards
        ],
        "audit": {"path": str(audit)},
    }


def _traffic_and_review(
    world: Path, registry: Path, audit: Path, rows: Sequence[GuardRow], confirm_share: float
) -> dict[str, Any]:
    """Send the traffic through a proxy serving the registry, then label what the guard did, as a reviewer."""
    policy = world / "policy.yaml"
    counts: Counter[str] = Counter()
    with FakeUpstream() as upstream:
        policy.write_text(yaml.safe_dump(_policy(upstream.base_url, audit, {GUARD_STEP: registry})))
        with ProxyServer(policy) as proxy:
            client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="reviewer-key", max_retries=0)
            sent = [(row, _send(client, upstream, row)) for row in rows]
            store = open_store(str(audit))
            try:
                for row, request_id in sent:
                    step = _guard_step(_wait_for(store, request_id), GUARD_STEP)
                    flagged, errored = bool(step.get("fired")), step.get("error") is not None
                    counts["errors"] += errored
                    label, note = _review(row, flagged, request_id, confirm_share)
                    counts[f"{'flagged' if flagged else 'passed'}_{row.label}"] += 1
                    if label is None:
                        continue
                    counts[f"feedback_{label}"] += 1
                    body = {
                        "request_id": request_id,
                        "label": label,
                        "stage": "output",
                        "step": GUARD_STEP,
                        "note": note,
                    }
                    answer = proxy.post_raw(
                        "/v1/feedback", json.dumps(body).encode(), {"authorization": "Bearer reviewer-key"}
                    )
                    if answer.status_code != 201:
                        raise RuntimeError(f"feedback refused: {answer.status_code} {answer.text}")
            finally:
                store.close()
    return {"sent": len(rows), **dict(sorted(counts.items()))}


def _review(row: GuardRow, flagged: bool, request_id: str, confirm_share: float) -> tuple[str | None, str]:
    """The reviewer's label and note for one answer, or None when the answer is not reviewed."""
    # Output feedback as users give it: every harmful answer they see is reported, caught or not (a caught one
    # confirms the flag). These are the positives both arms learn from; only the balanced arm gets negatives.
    if row.label == "unsafe":
        return ("correct" if flagged else "false_negative"), "unsafe: " + ",".join(row.codes)
    if row.label == "safe" and flagged:
        return "false_positive", "a safe answer"
    if row.label == "safe" and stable_fraction(request_id, SALT + "-confirm") < confirm_share:
        return "correct", "checked: safe"
    return None, ""


def _send(client: openai.OpenAI, upstream: FakeUpstream, row: GuardRow) -> str:
    upstream.enqueue(Reply(content=row.answer))
    raw = client.chat.completions.with_raw_response.create(model="m", messages=[{"role": "user", "content": row.user}])
    return str(raw.headers[REQUEST_ID])


def _wait_for(store: AuditStore, request_id: str, timeout_s: float = 30.0) -> AuditRecord:
    """The audit writer batches: a record appears shortly after its answer."""
    deadline = time.monotonic() + timeout_s
    while (record := store.get(request_id)) is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"no audit record for {request_id} after {timeout_s} s")
        time.sleep(0.05)
    return record


def _guard_step(record: AuditRecord, name: str) -> dict[str, Any]:
    for step in record.steps:
        if step.stage == "output" and step.name == name:
            return step.to_dict()
    raise RuntimeError(f"{record.request_id}: no output step {name!r} in the audit record")


Scored = tuple[Confusion, list[float | None], list[bool]]


def _score(world: Path, models: dict[str, Path], splits: dict[str, Sequence[GuardRow]]) -> dict[str, dict[str, Scored]]:
    """Every model on every split through one proxy: each answer passes all guards, the audit log keeps each verdict."""
    audit = world / "scoring.db"
    policy = world / "scoring_policy.yaml"
    sent: dict[str, list[tuple[GuardRow, str]]] = {}
    with FakeUpstream() as upstream:
        policy.write_text(yaml.safe_dump(_policy(upstream.base_url, audit, models)))
        with ProxyServer(policy) as proxy:
            client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="k", max_retries=0)
            for split, rows in splits.items():
                sent[split] = [(row, _send(client, upstream, row)) for row in rows]
            store = open_store(str(audit))
            try:
                records = {rid: _wait_for(store, rid) for pairs in sent.values() for _, rid in pairs}
            finally:
                store.close()
    scored: dict[str, dict[str, Scored]] = {}
    for split, pairs in sent.items():
        truth = [row.label == "unsafe" for row, _ in pairs]
        scored[split] = {}
        for model in models:
            steps = [_guard_step(records[rid], model) for _, rid in pairs]
            flagged = [bool(s["fired"]) for s in steps]
            scores = [None if s["score"] is None else float(s["score"]) for s in steps]
            scored[split][model] = (confusion(flagged, truth), scores, truth)
    return scored


def _figures(counts: Confusion, scores: list[float | None], truth: list[bool]) -> dict[str, Any]:
    n = counts.positives + counts.negatives
    known = [(s, t) for s, t in zip(scores, truth, strict=True) if s is not None]
    return {
        "n": n,
        "positive_share": _share(counts.positives, n),
        "flagged_share": _share(counts.tp + counts.fp, n),
        "precision": _round(counts.precision),
        "recall": _round(counts.recall),
        "f1": _round(counts.f1),
        "fpr": _round(counts.fpr),
        "auprc": _round(average_precision([s for s, _ in known], [t for _, t in known])),
        "errors": len(scores) - len(known),
        "confusion": {"tp": counts.tp, "fp": counts.fp, "fn": counts.fn, "tn": counts.tn},
    }


def _promote_best(
    registry: Path, candidates: dict[str, Path], gates: dict[str, GateDecision], scored: dict[str, dict[str, Scored]]
) -> str | None:
    """The passing candidate with the best gate-split F1 becomes CURRENT; none passing: the current guard stays."""
    passing = [arm for arm in candidates if gates[arm].passed]
    if not passing:
        return None
    best = max(passing, key=lambda arm: scored["gate"][arm][0].f1 or 0.0)
    promote(registry, candidates[best].name, reason=f"loop_guard_feedback: {best} passed the gate")
    return f"{best} ({candidates[best].name})"


def _replay(train: Sequence[GuardRow], n: int, positives: int, negatives: int) -> list[GuardRow]:
    """`n` of the guard's own training rows, picked by a stable hash, split between unsafe and safe so that
    the reviewed rows plus these are as balanced as `n` allows (reviewers report far more harmful answers
    than they confirm safe ones)."""
    ordered = sorted(train, key=lambda r: stable_fraction(r.user + (r.answer or ""), SALT + "-replay"))
    half = (n + positives + negatives) // 2
    unsafe_n = min(n, max(0, half - positives))
    unsafe = [r for r in ordered if r.label == "unsafe"][:unsafe_n]
    safe = [r for r in ordered if r.label == "safe"][: n - unsafe_n]
    return unsafe + safe


def _pooled(a: Scored, b: Scored) -> Scored:
    (ca, sa, ta), (cb, sb, tb) = a, b
    return Confusion(ca.tp + cb.tp, ca.fp + cb.fp, ca.fn + cb.fn, ca.tn + cb.tn), [*sa, *sb], [*ta, *tb]


def _ordinary_answers(path: Path) -> list[GuardRow]:
    """The first-run suite's (prompt, answer) pairs as safe Agent rows."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        rows.append(GuardRow("Agent", item["text"], item["answer"], "safe", (), (), "first_run", item["id"]))
    return rows


def _spread(rows: list[GuardRow], n: int) -> list[GuardRow]:
    """At most `n` rows, taken alternately by label so a small run still has both."""
    unsafe, safe = [r for r in rows if r.label == "unsafe"], [r for r in rows if r.label == "safe"]
    mixed = [r for pair in zip(unsafe, safe, strict=False) for r in pair] + unsafe[len(safe) :] + safe[len(unsafe) :]
    return mixed[:n]


def _facts(rows: Sequence[GuardRow]) -> dict[str, Any]:
    unsafe = sum(r.label == "unsafe" for r in rows)
    return {
        "rows": len(rows),
        "unsafe": unsafe,
        "groups": len({r.group for r in rows}),
        "positive_share": _share(unsafe, len(rows)),
    }


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


if __name__ == "__main__":
    sys.exit(main())
