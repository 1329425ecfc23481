"""bench/guard_vs_classifier.py: the matched-FPR helper on hand-made scores, and a --limit 3 run on a tiny GGUF."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench_scripts import load_bench_script

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench" / "guard_vs_classifier.py"
VERDICT_WORDS = tuple(w[:n] for w in ("▁safe", "▁unsafe") for n in range(2, len(w) + 1))


gvc = load_bench_script("guard_vs_classifier")

# 4 positives, 6 negatives, all scores distinct; in descending order: P N P P N P N N N N
SCORES = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05]
POSITIVE = [True, False, True, True, False, True, False, False, False, False]


@pytest.mark.parametrize(
    ("max_fpr", "threshold", "recall", "fp"),
    [
        (0.0, 0.9, 0.25, 0),  # no false positive allowed: stop above the first negative (0.8)
        (1 / 6, 0.6, 0.75, 1),  # one allowed: down to 0.6, stop above the second negative (0.5)
        (0.2, 0.6, 0.75, 1),  # floor(0.2 x 6) = 1 false positive
        (2 / 6, 0.4, 1.0, 2),  # two: every positive, threshold at the last one
        (1.0, 0.05, 1.0, 6),  # everything flagged
    ],
)
def test_recall_at_fpr_takes_the_lowest_threshold_within_the_false_positive_budget(
    max_fpr: float, threshold: float, recall: float, fp: int
) -> None:
    point = gvc.recall_at_fpr(SCORES, POSITIVE, max_fpr)
    assert point.threshold == threshold
    assert point.recall == pytest.approx(recall)
    assert point.fp == fp and point.fpr == pytest.approx(fp / 6)
    assert point.tp == round(recall * 4)


def test_tied_scores_are_flagged_together_so_a_tie_with_a_negative_can_flag_nothing() -> None:
    point = gvc.recall_at_fpr([0.9, 0.9, 0.1], [True, False, False], 0.0)
    assert point.threshold is None and point.recall == 0.0 and point.fp == 0
    assert gvc.recall_at_fpr([0.9, 0.9, 0.1], [True, False, False], 0.5).threshold == 0.9


def test_matched_fpr_gives_the_guard_the_false_positives_the_onnx_head_makes_at_its_shipped_threshold() -> None:
    positive = [True, True, True, True, False, False]
    # ONNX at 0.5: flags 0.9, 0.6 (tp 2) and the negative 0.7 (fp 1 of 2): FPR 0.5, recall 0.5.
    onnx = gvc.Scores([0.9, 0.6, 0.2, 0.1, 0.7, 0.3], [1.0] * 6)
    # Guard, descending: 0.95 P, 0.9 P, 0.85 N (fp 1), 0.8 P, 0.3 P, 0.1 N (fp 2): one FP allowed -> down to 0.3.
    guard = gvc.Scores([0.3, 0.8, 0.9, 0.95, 0.85, 0.1], [1.0] * 6)
    m = gvc.matched_fpr(onnx, guard, positive, 0.5)
    assert m["fpr"] == 0.5 and m["false_positives_allowed"] == 1
    assert m["onnx_moderation_at_shipped_threshold"] == {"recall": 0.5, "fpr": 0.5}
    # ONNX on the same rule: 0.9 P, 0.7 N (fp 1), 0.6 P, then 0.3 N would be the second FP -> threshold 0.6.
    assert m["onnx_moderation"] == {"threshold": 0.6, "recall": 0.5, "fpr": 0.5, "tp": 2, "fp": 1}
    assert m["guard"] == {"threshold": 0.3, "recall": 1.0, "fpr": 0.5, "tp": 4, "fp": 1}
    assert m["guard_minus_onnx_recall"] == 0.5
    assert "not a tuned threshold" in m["note"]


def test_limited_keeps_both_classes_and_every_source() -> None:
    rows = [gvc.Row("a", f"u{i}", True) for i in range(5)]
    rows += [gvc.Row("b", f"s{i}", False) for i in range(5)] + [gvc.Row("c", f"t{i}", False) for i in range(5)]
    picked = gvc.limited(rows, 5)
    assert [r.text for r in picked] == ["u0", "u1", "u2", "s0", "t0"]
    assert gvc.limited(rows, 0) == rows


def test_a_limited_run_on_a_tiny_guard_reports_every_set_and_model(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    pytest.importorskip("gguf")
    pytest.importorskip("onnxruntime")
    if not (REPO / "models" / "guard-classifier").is_dir():
        pytest.skip("models/guard-classifier is not in this checkout")
    from tests.tiny_models import write_tiny_gguf

    gguf = write_tiny_gguf(tmp_path / "tiny.gguf", pieces=VERDICT_WORDS)
    out = tmp_path / "report.json"
    cmd = [sys.executable, str(BENCH), "--guard", str(gguf), "--limit", "3", "--threads", "1"]
    cmd += ["--max-tokens", "2", "--n-ctx", "8192", "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr

    report = json.loads(out.read_text())
    assert report["limit_per_set"] == 3
    assert report["models"]["onnx_moderation"]["shipped_threshold"] == {"input": 0.5, "output": 0.5}
    assert report["machine"]["cpu_count"] >= 1 and len(report["machine"]["load_average_1_5_15_min"]["before"]) == 3
    sets = report["sets"]
    assert {name: (s["stage"], s["in_distribution_for_guard"]) for name, s in sets.items()} == {
        "heldout_answers": ("output", True),
        "cross_source_answers": ("output", False),
        "cross_source_requests": ("input", False),
    }
    for s in sets.values():
        assert (s["n"], s["positives"], s["negatives"]) == (3, 2, 1)
        onnx, guard = s["models"]["onnx_moderation"], s["models"]["guard"]
        assert onnx["at_shipped_threshold"]["threshold"] == 0.5 and guard["at_default_threshold"]["threshold"] == 0.5
        for figures in (onnx, guard):
            assert 0.0 <= figures["auprc"] <= 1.0 and 0.0 <= figures["roc_auc"] <= 1.0
            assert set(figures) >= {"at_fpr_1pct", "at_fpr_5pct", "latency_ms"}
            assert figures["latency_ms"]["p50"] <= figures["latency_ms"]["p99"]
        assert guard["answers_not_a_verdict"] <= 3
        m = s["matched_fpr"]
        assert m["fpr"] == onnx["at_shipped_threshold"]["fpr"]
        assert (
            m["guard"]["fp"] <= m["false_positives_allowed"]
            and m["onnx_moderation"]["fp"] <= m["false_positives_allowed"]
        )
        assert sum(v["n"] for v in s["per_source"].values()) == 3
    assert set(sets["cross_source_requests"]["per_source"]) == {"unsafe_casual", "harmless_sense"}
    target = report["issue_16_target"]
    assert set(target) == {"target", "heldout_answers", "cross_source_answers"}
