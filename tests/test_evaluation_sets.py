"""The over-refusal training data and the out-of-family evaluation sets of issue 11 stay apart and reproducible.

The evaluation sets (bench/data/ood/, bench/data/first_run/) are only worth something while no training config
holds their texts; the hard negatives must be what their generator writes (no hand edits that the README does
not describe).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from guardproxy.trainer.classifier.config import load_config
from guardproxy.trainer.classifier.data import load_examples, normalise

ROOT = Path(__file__).resolve().parents[1]
HARD_NEGATIVES = ROOT / "configs" / "train" / "data" / "hard_negatives"
EVAL_FILES = [
    *sorted((ROOT / "bench" / "data" / "ood").glob("*.jsonl")),
    ROOT / "bench" / "data" / "first_run" / "benign_suite.jsonl",
]


def _records(path: Path) -> list[dict[str, object]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def test_hard_negatives_are_exactly_what_the_generator_writes(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_hard_negatives.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    written = sorted(p.name for p in tmp_path.glob("*.jsonl"))
    assert written == sorted(p.name for p in HARD_NEGATIVES.glob("*.jsonl"))
    for name in written:
        assert (tmp_path / name).read_text(encoding="utf-8") == (HARD_NEGATIVES / name).read_text(encoding="utf-8")


def test_every_contrast_seed_with_a_harmful_twin_keeps_both_in_one_group() -> None:
    records = _records(HARD_NEGATIVES / "moderation_contrast.jsonl")
    by_group: dict[str, set[str]] = {}
    for r in records:
        meta = r["meta"]
        assert isinstance(meta, dict)
        by_group.setdefault(str(meta["group"]), set()).add(str(r["label"]))
        if r["label"] == "unsafe":
            assert r["categories"], r["text"]  # an unsafe record names its harm
        else:
            assert r["categories"] == []
    assert sum(1 for labels in by_group.values() if labels == {"safe", "unsafe"}) >= 20  # real contrast pairs


@pytest.mark.parametrize("config", ["guard.yaml", "guard_v4.yaml"])
def test_no_evaluation_text_is_in_a_training_config(config: str) -> None:
    examples, _ = load_examples(load_config(str(ROOT / "configs" / "train" / config)))
    training = {normalise(e.text) for e in examples}
    leaked = [
        (path.name, r["text"]) for path in EVAL_FILES for r in _records(path) if normalise(str(r["text"])) in training
    ]
    assert leaked == []


def test_the_first_run_suite_is_large_enough_and_every_prompt_has_an_answer() -> None:
    records = _records(ROOT / "bench" / "data" / "first_run" / "benign_suite.jsonl")
    assert len(records) >= 200
    assert len({r["id"] for r in records}) == len(records)
    assert all(str(r["text"]).strip() and str(r["answer"]).strip() for r in records)
