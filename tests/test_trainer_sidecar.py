"""The sidecar trainer, with real parts: a tiny random BERT trained into v1, a real SQLite audit store holding
block events and reviewer feedback, real snapshots, real fine-tuning (under accelerate), the int8 ONNX serving
path for evaluation, and the model registry's pointer.

v1 never saw two patterns: a new attack phrased with "override" (a word its training data only used in benign
requests) and benign account questions mentioning a "password" (a word it only saw in attacks). Audit records
carry v1's real decisions on them; reviewers mark its mistakes. The candidate must fix them to be promoted.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("accelerate")

from guardproxy.audit import AuditRecord, Outcome, Segment, StepRecord
from guardproxy.audit.feedback import Feedback
from guardproxy.audit.sqlite import SQLiteAuditStore
from guardproxy.detectors.model_files import read_pointer, resolve_model_dir
from guardproxy.trainer.sidecar import load_config, run_once
from tests.loop_helpers import ATTACKS, BENIGN, NEW_ATTACKS, NEW_BENIGN, train_v1, write_sidecar_config
from tests.loop_helpers import decisions as _decisions

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def world_v1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project directory with a base model, base data, a classifier config and a trained v1 (built once)."""
    root = tmp_path_factory.mktemp("world")
    train_v1(root)
    return root


@pytest.fixture
def world(world_v1: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "world"
    shutil.copytree(world_v1, root)
    monkeypatch.chdir(root)
    return root


def _step(fired: bool) -> StepRecord:
    return StepRecord(
        name="input.0.injection",
        stage="input",
        detector="injection",
        action="block",
        ran=True,
        fired=fired,
        latency_ms=1.0,
        score=0.9 if fired else 0.1,
    )


def _record(rid: str, text: str, fired: bool, ts: float) -> AuditRecord:
    return AuditRecord(
        request_id=rid,
        ts=ts,
        client="team-a",
        endpoint="/v1/chat/completions",
        model="m",
        backend="fake",
        stream=False,
        outcome=Outcome.BLOCKED_INPUT if fired else Outcome.ALLOWED,
        status=400 if fired else 200,
        latency_ms=2.0,
        steps=(_step(fired),),
        input_segments=(Segment("user", 0, text),),
        output_segments=() if fired else (Segment("assistant", 0, "ok"),),
    )


def _traffic(world: Path, ts: float) -> dict[str, list[str]]:
    """v1's real decisions on the new patterns, written as audit records, with reviewers correcting its mistakes.
    Returns the corrected texts (v1 was wrong on each)."""
    v1 = world / "models" / "tiny" / "v1"
    attacks = [f"{t} please" for t in NEW_ATTACKS]
    benign = [f"{t} please" for t in NEW_BENIGN]
    ordinary = [f"{a} again {i}" for i in range(3) for a in ATTACKS] + [
        f"{b} again {i}" for i in range(3) for b in BENIGN
    ]
    truth = [True] * len(attacks) + [False] * len(benign)  # reviewers judge the new patterns only
    texts = attacks + benign + ordinary
    fired = _decisions(v1, texts)
    records, feedback = [], []
    corrected: dict[str, list[str]] = {"false_negative": [], "false_positive": []}
    for i, (text, did_fire) in enumerate(zip(texts, fired, strict=True)):
        rid = f"r{i:03d}"
        records.append(_record(rid, text, did_fire, ts + i))
        if i < len(truth) and truth[i] != did_fire:
            label = "false_negative" if truth[i] else "false_positive"
            feedback.append(Feedback(request_id=rid, label=label, actor="reviewer", ts=ts + 100 + i))  # type: ignore[arg-type]
            corrected[label].append(text)
    store = SQLiteAuditStore(world / "audit.db")
    try:
        store.write_batch(records)
        for fb in feedback:
            store.add_feedback(fb)
    finally:
        store.close()
    return corrected


def _configs(world: Path, **sidecar: Any) -> Path:
    return write_sidecar_config(world, **sidecar)


def _flipped_towards_reviewers(world: Path, corrected: dict[str, list[str]], version: str) -> tuple[int, int]:
    """How many corrected examples the version now decides as the reviewers said, out of how many."""
    registry = world / "models" / "tiny"
    texts = corrected["false_negative"] + corrected["false_positive"]
    wanted = [True] * len(corrected["false_negative"]) + [False] * len(corrected["false_positive"])
    decided = _decisions(registry / version, texts)
    assert _decisions(registry / "v1", texts) == [not w for w in wanted]  # v1 was wrong on every one
    return sum(d == w for d, w in zip(decided, wanted, strict=True)), len(texts)


def test_better_candidate_is_promoted_and_fixes_the_corrected_examples(world: Path) -> None:
    from guardproxy.trainer.registry import history
    from guardproxy.trainer.sidecar import cli_main

    corrected = _traffic(world, time.time() - 3600)
    assert len(corrected["false_negative"]) >= 4  # v1 misses the new attacks
    config = _configs(world)
    out = io.StringIO()
    # Two passes of the watch loop: the first trains and promotes, the second finds no new signal.
    assert cli_main(["--config", str(config), "--watch", "--max-runs", "2", "--poll_interval", "0.01"], out=out) == 0
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and " promoted v2 (current v1)" in lines[0] and "skipped (0 new events)" in lines[1]

    registry = world / "models" / "tiny"
    assert read_pointer(registry) == "v2" and resolve_model_dir(registry) == registry / "v2"
    assert [(h.action, h.from_version, h.to_version) for h in history(registry)] == [
        ("promote", "v1", "v1"),  # pinned before the candidate landed (without a pointer the newest serves)
        ("promote", "v1", "v2"),
    ]
    assert (registry / "v2" / "torch" / "config.json").is_file()  # the next run starts from these weights
    fixed, total = _flipped_towards_reviewers(world, corrected, "v2")
    assert fixed >= 0.75 * total, (fixed, total)

    [run_dir] = list((world / "reports" / "tiny-injection").iterdir())
    report = json.loads((run_dir / "report.json").read_text())
    assert report["status"] == "promoted" and report["gate"]["passed"]
    assert report["training"]["init_from"].endswith("v1/torch") and report["training"]["steps"] == 300
    eval_f1 = report["metrics"]["eval"]
    assert eval_f1["candidate"]["f1"] >= eval_f1["current"]["f1"] + 0.05
    snapshot_rows = (Path(report["snapshot"]) / "data.jsonl").read_text().splitlines()
    assert report["metrics"]["new_events"]["candidate"]["n"] == len(snapshot_rows)  # all of it is new traffic
    assert (run_dir / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "promoted" in (run_dir / "report.md").read_text() and "| f1 on eval |" in (run_dir / "report.md").read_text()
    state = json.loads((world / "runs" / "sidecar" / "tiny-injection" / "state.json").read_text())
    assert state["pending"] is None and [h["status"] for h in state["history"]] == ["promoted"]
    assert not list((world / "runs" / "sidecar" / "tiny-injection" / "train").iterdir())  # checkpoints removed


def test_worse_candidate_is_refused_and_the_pointer_stays(world: Path) -> None:
    _traffic(world, time.time() - 3600)
    # Poisoned training data: the snapshot's labels swapped. The candidate gets worse; the gate must notice.
    config = _configs(
        world,
        snapshot_dataset={"label_map": {"injection": "benign", "benign": "injection"}},
        classifier_overrides={"max_steps": 150},
    )
    report = run_once(load_config(config))
    registry = world / "models" / "tiny"
    assert report.status == "refused" and report.candidate_version == "v2"
    assert read_pointer(registry) == "v1" and resolve_model_dir(registry) == registry / "v1"
    assert report.gate["reasons"] and not report.gate["passed"]
    failed = {c["check"] for c in report.gate["checks"] if not c["passed"]}
    assert failed & {"f1 on eval", "fpr on eval", "fpr on new_events"}, report.gate
    assert report.report_dir is not None and "refused" in (report.report_dir / "report.md").read_text()


def test_killed_run_resumes_from_its_checkpoint(world: Path) -> None:
    _traffic(world, time.time() - 3600)
    config = _configs(world, classifier_overrides={"max_steps": 300, "save_steps": 20})
    train_root = world / "runs" / "sidecar" / "tiny-injection" / "train"
    proc = subprocess.Popen(
        [sys.executable, "-m", "guardproxy.trainer.sidecar", "--config", str(config)],
        cwd=world,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not list(train_root.glob("*/checkpoint-*/state.json")):
            assert proc.poll() is None, "the run ended before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint within 60 s"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    [checkpoint] = list(train_root.glob("*/checkpoint-*"))[-1:]
    killed_at = int(checkpoint.name.removeprefix("checkpoint-"))
    assert 20 <= killed_at < 300
    state = json.loads((world / "runs" / "sidecar" / "tiny-injection" / "state.json").read_text())
    assert state["pending"] and state["pending"]["candidate"] is None

    report = run_once(load_config(config))
    assert report.run_id == state["pending"]["run_id"]  # the same run, finished
    assert report.training["resumed_from_step"] >= killed_at and report.training["steps"] == 300
    assert [p.name for p in (world / "datasets" / "injection").iterdir() if p.name.startswith("s")] == ["s001"]
    assert report.status in {"promoted", "refused"} and report.candidate_version == "v2"


def test_not_enough_new_signal_means_no_run(world: Path) -> None:
    from guardproxy.trainer.sidecar import cli_main

    _traffic(world, time.time() - 3600)
    out = io.StringIO()
    assert cli_main(["--config", str(_configs(world)), "--min_new_events", "1000"], out=out) == 0
    assert "skipped" in out.getvalue()
    assert not (world / "datasets").exists() and not (world / "reports").exists()
    registry = world / "models" / "tiny"
    assert read_pointer(registry) is None and [p.name for p in registry.glob("v*")] == ["v1"]


def test_a_version_that_kept_no_torch_weights_is_fine_tuned_from_its_int8_export(world: Path) -> None:
    # The shipped models carry only their int8 ONNX: the sidecar must still start from what serves.
    shutil.rmtree(world / "models" / "tiny" / "v1" / "torch")
    corrected = _traffic(world, time.time() - 3600)
    report = run_once(load_config(_configs(world)))
    assert report.training["init_from"].endswith("init-v1"), report.training
    assert report.status == "promoted", report.gate
    fixed, total = _flipped_towards_reviewers(world, corrected, "v2")
    assert fixed >= 0.75 * total, (fixed, total)
    assert (world / "models" / "tiny" / "v2" / "torch" / "config.json").is_file()  # the next run needs no unpacking


def test_an_export_that_cannot_be_unpacked_falls_back_to_the_base_model(
    world: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import onnx

    from guardproxy.trainer.sidecar.run import _init_from, classifier_config

    v1 = world / "models" / "tiny" / "v1"
    shutil.rmtree(v1 / "torch")
    model = onnx.load(str(v1 / "model.onnx"))
    for node in model.graph.node:  # no dense bias names the layers any more
        node.input[:] = [i.replace(".dense.bias", ".dense.b") for i in node.input]
    onnx.save(model, str(v1 / "model.onnx"))
    classifier = classifier_config(load_config(_configs(world)))
    assert _init_from(v1, classifier, world / "scratch") is None
    assert "no dense bias downstream" in caplog.text and "fine-tuning the base model instead" in caplog.text
