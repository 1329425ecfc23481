"""bench/cross_source.py: its threshold and metric helpers on hand-made scores, and one real `shipped` probe."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.bench_scripts import load_bench_script

REPO = Path(__file__).resolve().parents[1]


cs = load_bench_script("cross_source")

NEGATIVES = np.array([0.9, 0.7, 0.5, 0.3, 0.1, 0.05, 0.04, 0.03, 0.02, 0.01])


@pytest.mark.parametrize(("target_fpr", "fired"), [(0.0, 0), (0.1, 1), (0.25, 2), (1.0, 10)])
def test_the_threshold_lets_at_most_the_target_share_of_negatives_fire(target_fpr: float, fired: int) -> None:
    threshold = cs._threshold_for_fpr(NEGATIVES, target_fpr)
    assert int((threshold <= NEGATIVES).sum()) == fired


def test_source_metrics_count_what_fires() -> None:
    scores = np.array([0.9, 0.8, 0.2, 0.7, 0.1, 0.05])
    y = np.array([1, 1, 1, 0, 0, 0])
    m = cs._source_metrics(scores, y, threshold=0.5)
    assert (m["pos"], m["neg"]) == (3, 3)
    assert m["recall"] == round(2 / 3, 4)
    assert m["fpr"] == round(1 / 3, 4)
    assert m["f1"] == round(2 * (2 / 3) * (2 / 3) / (4 / 3), 4)  # precision 2/3, recall 2/3
    assert m["roc_auc"] == round(8 / 9, 4)  # 0.2 is below 0.7: one of nine pairs ordered wrong


def test_a_source_with_one_class_has_no_auc_and_no_f1() -> None:
    only_negatives = cs._source_metrics(np.array([0.9, 0.1]), np.array([0, 0]), threshold=0.5)
    assert only_negatives["recall"] is None and only_negatives["roc_auc"] is None
    assert only_negatives["fpr"] == 0.5


def test_the_summary_names_the_worst_source() -> None:
    per_source = {
        "a": {"recall": 0.9, "fpr": 0.01},
        "b": {"recall": 0.5, "fpr": None},
        "c": {"recall": None, "fpr": 0.2},
    }
    summary = cs._summary(per_source)
    assert summary["worst_recall"] == ["b", 0.5]
    assert summary["worst_fpr"] == ["c", 0.2]
    assert summary["mean_recall"] == 0.7


def test_the_shipped_code_answer_probe_runs_the_real_output_step(tmp_path: Path) -> None:
    """The code answers carry no label: the probe counts them as safe, so what it reports is a false-positive
    rate over all 20, measured by `guardproxy eval` on the shipped model at the output stage."""
    out = cs.shipped([REPO / "models" / "guard-classifier" / "v3"], only="code_answers/")
    (tmp_path / "out.json").write_text(json.dumps(out))
    [rows] = out["models"].values()
    probe = rows["code_answers/moderation(output)"]
    assert probe["n"] == 20 and probe["measures"] == "false positives"
    assert 0 <= probe["flagged"] < 20
    assert rows["summary"]["benign_n"] == 20
    assert "harmful_recall_mean" not in rows["summary"]  # no harmful probe was run
