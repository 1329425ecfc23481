"""`guardproxy audit sample` (a reproducible stratified batch) and `guardproxy audit kappa` (Cohen's kappa between
two reviewers), on a real SQLite audit store and through the real command line."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from guardproxy.audit.agreement import agreement, kappa_cmd
from guardproxy.audit.feedback import Feedback
from guardproxy.audit.records import AuditRecord, Outcome, StepRecord
from guardproxy.audit.sample import allocate, sample_cmd
from guardproxy.audit.sqlite import SQLiteAuditStore

ROOT = Path(__file__).resolve().parents[1]


def record(i: int, outcome: Outcome, detector: str | None) -> AuditRecord:
    steps = (
        ()
        if detector is None
        else (
            StepRecord(
                name=f"input.0.{detector}",
                stage="input",
                detector=detector,
                action="block",
                ran=True,
                fired=True,
                latency_ms=1.0,
            ),
        )
    )
    return AuditRecord(
        request_id=f"r{i:04d}",
        ts=1e9 + i,
        client="c",
        endpoint="/v1/chat/completions",
        model="m",
        backend="b",
        stream=False,
        outcome=outcome,
        status=200,
        latency_ms=1.0,
        steps=steps,
    )


@pytest.fixture
def db(tmp_path: Path) -> str:
    path = tmp_path / "audit.db"
    store = SQLiteAuditStore(path)
    # 900 allowed, 90 blocked by injection, 10 blocked by the canary: a rare stratum.
    store.write_batch(
        [record(i, Outcome.ALLOWED, None) for i in range(900)]
        + [record(900 + i, Outcome.BLOCKED_INPUT, "injection") for i in range(90)]
        + [record(990 + i, Outcome.BLOCKED_OUTPUT, "canary") for i in range(10)]
    )
    store.close()
    return str(path)


def run_sample(db: str, **kw: object) -> tuple[int, list[dict[str, object]], str]:
    out, err = io.StringIO(), io.StringIO()
    code = sample_cmd(db, out=out, err=err, **kw)  # type: ignore[arg-type]
    return code, [json.loads(line) for line in out.getvalue().splitlines()], err.getvalue()


def test_sample_is_stratified_and_reproducible(db: str) -> None:
    code, rows, _ = run_sample(db, n=30, stratify="outcome,detector", seed=7, since=None)
    assert code == 0 and len(rows) == 30
    strata = [(r["stratum"]["outcome"], r["stratum"]["detector"]) for r in rows]  # type: ignore[index]
    assert strata.count(("blocked_output", "canary")) == 10  # the rare stratum, whole
    assert strata.count(("allowed", "none")) == 10 and strata.count(("blocked_input", "injection")) == 10
    again = run_sample(db, n=30, stratify="outcome,detector", seed=7, since=None)[1]
    assert [r["request_id"] for r in again] == [r["request_id"] for r in rows]
    other = run_sample(db, n=30, stratify="outcome,detector", seed=8, since=None)[1]
    assert {r["request_id"] for r in other} != {r["request_id"] for r in rows}
    bigger = run_sample(db, n=60, stratify="outcome", seed=7, since=None)[1]
    smaller = run_sample(db, n=30, stratify="outcome", seed=7, since=None)[1]
    assert {r["request_id"] for r in smaller} <= {r["request_id"] for r in bigger}  # a larger batch extends it


def test_allocation_gives_what_small_strata_cannot_use_to_the_others() -> None:
    assert allocate(10, {("a",): 100, ("b",): 2, ("c",): 100}) == {("a",): 4, ("b",): 2, ("c",): 4}
    assert allocate(10, {("a",): 3}) == {("a",): 3}


def test_sample_refuses_bad_arguments(db: str, tmp_path: Path) -> None:
    for kw, message in (
        ({"n": 5, "stratify": "outcome,colour"}, "--stratify takes"),
        ({"n": 0, "stratify": "outcome"}, "--n must be at least 1"),
    ):
        code, rows, err = run_sample(db, seed=1, since=None, **kw)
        assert code == 2 and rows == [] and message in err
    code, _, err = run_sample(str(tmp_path / "missing.db"), n=3, stratify="outcome", seed=1, since=None)
    assert code == 2 and "no audit database" in err


def fb(request_id: str, actor: str, label: str, ts: float) -> Feedback:
    return Feedback(request_id=request_id, label=label, actor=actor, ts=ts)  # type: ignore[arg-type]


def test_kappa_of_two_reviewers() -> None:
    items = [
        fb("r1", "ann", "correct", 1),
        fb("r1", "ann", "false_positive", 2),  # ann's latest counts
        fb("r1", "bob", "false_positive", 3),
        fb("r2", "ann", "false_positive", 4),
        fb("r2", "bob", "correct", 5),
        fb("r3", "ann", "correct", 6),
        fb("r3", "bob", "correct", 7),
        fb("r4", "ann", "correct", 8),
        fb("r4", "bob", "correct", 9),
        fb("r5", "ann", "correct", 10),  # bob never labelled it
    ]
    result = agreement(items, "ann", "bob")
    assert result.n == 4
    assert result.observed == 0.75 and result.expected == 0.5 and result.kappa == 0.5
    assert agreement(items[:1], "ann", "bob").kappa is None


def test_kappa_and_sample_through_the_command_line(db: str) -> None:
    store = SQLiteAuditStore(db)
    for rid, a, b in (
        ("r0001", "correct", "correct"),
        ("r0002", "false_positive", "false_positive"),
        ("r0003", "correct", "false_positive"),
    ):
        store.add_feedback(fb(rid, "ann", a, 1))
        store.add_feedback(fb(rid, "bob", b, 2))
    store.close()
    done = subprocess.run(
        [sys.executable, "-m", "guardproxy", "audit", "kappa", "--db", db, "ann", "bob"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["both_labelled"] == 3 and report["kappa"] == pytest.approx((2 / 3 - 4 / 9) / (1 - 4 / 9))
    out, err = io.StringIO(), io.StringIO()
    assert kappa_cmd(db, a="ann", b="carol", out=out, err=err) == 2 and "no request in common" in err.getvalue()
    sampled = subprocess.run(
        [
            sys.executable,
            "-m",
            "guardproxy",
            "audit",
            "sample",
            "--db",
            db,
            "--n",
            "5",
            "--stratify",
            "outcome,review",
            "--seed",
            "3",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert sampled.returncode == 0, sampled.stderr
    assert len(sampled.stdout.splitlines()) == 5
