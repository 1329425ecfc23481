"""`trainer sft|dpo` on a tiny random Llama: trains, checkpoints, resumes, evaluates, reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from guardproxy.audit.preferences import ChatTurn, Preference
from guardproxy.audit.sqlite import SQLiteAuditStore
from guardproxy.trainer.align.cli import cli_main
from guardproxy.trainer.align.config import ConfigError, DPORunConfig, EvalSettings, SFTRunConfig, load_config
from guardproxy.trainer.align.data import DataError, dpo_rows, sft_rows
from guardproxy.trainer.align.evaluate import is_refusal
from tests.tiny_models import write_tiny_transformers

DATA = Path(__file__).resolve().parent.parent / "configs/train/data/moderation"
REFUSAL = "I can't help with that."


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_transformers(tmp_path_factory.mktemp("tiny-llama"))


def write_config(path: Path, model: Path, body: str) -> Path:
    path.write_text(
        f"""model: {model}
output_dir: run
batch_size: 2
max_length: 64
save_steps: 1
logging_steps: 1
activation_checkpointing: false
lora: {{r: 4, alpha: 8}}
evaluation:
  harmful_prompts: {DATA / "handwritten_unsafe.jsonl"}
  safe_prompts: {DATA / "safe_but_sounds_dangerous.jsonl"}
  limit: 2
  max_new_tokens: 6
{body}"""
    )
    return path


def test_sft_trains_checkpoints_resumes_and_reports(tiny_model: Path, tmp_path: Path) -> None:
    data = tmp_path / "safety.jsonl"
    lines = [
        {
            "messages": [
                {"role": "user", "content": "How do I build a pipe bomb?"},
                {"role": "assistant", "content": REFUSAL},
            ]
        },
        {"prompt": "How do I kill a stuck Python process?", "completion": "Run kill with its process id."},
    ]
    data.write_text("\n".join(json.dumps(line) for line in lines * 3) + "\n")
    config = write_config(tmp_path / "sft.yaml", tiny_model, "dataset: safety.jsonl\nmerge: false\n")

    assert cli_main(["sft", "--config", str(config), "--max-steps", "2"]) == 0
    run = tmp_path / "run"
    assert sorted(p.name for p in (run / "checkpoints").glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    first = json.loads((run / "report.json").read_text())
    assert first["global_step"] == 2 and first["resumed_from"] is None
    assert (run / "adapter" / "adapter_config.json").is_file()

    assert cli_main(["sft", "--config", str(config), "--max-steps", "3"]) == 0
    report = json.loads((run / "report.json").read_text())
    assert report["resumed_from"] == str(run / "checkpoints" / "checkpoint-2")
    assert report["global_step"] == 3
    assert [e["step"] for e in report["losses"]] == [1, 2, 3]  # the history comes back with the checkpoint
    evaluation = report["evaluation"]
    for model in ("base", "tuned"):
        assert evaluation[model]["harmful_prompts"] == evaluation[model]["safe_prompts"] == 2
        assert 0.0 <= evaluation[model]["refusal_rate"] <= 1.0
    assert "Refusals" in (run / "report.md").read_text()


def test_dpo_trains_on_stored_revise_triples_and_writes_a_merged_model(tiny_model: Path, tmp_path: Path) -> None:
    store = SQLiteAuditStore(tmp_path / "audit.db")
    for n in range(4):
        store.add_preference(
            Preference(
                request_id=f"gp-{n}",
                ts=float(n),
                model="m",
                step="output.0.harm",
                prompt=(ChatTurn("user", f"How do I make a weapon, version {n}?"),),
                rejected="Sure, here is how you make it.",
                chosen=REFUSAL,
            )
        )
    config = write_config(tmp_path / "dpo.yaml", tiny_model, "audit_db: audit.db\nmax_steps: 2\n")

    assert cli_main(["dpo", "--config", str(config)]) == 0
    run = tmp_path / "run"
    report = json.loads((run / "report.json").read_text())
    assert report["method"] == "dpo" and report["examples"] == 4 and report["global_step"] == 2
    assert (run / "checkpoints" / "checkpoint-2").is_dir()
    assert (run / "merged" / "config.json").is_file()
    assert not (run / "merged" / "adapter_config.json").exists()
    assert report["evaluation"]["tuned"]["examples"]


def test_dpo_with_qlora_trains_over_a_4bit_base_and_merges_into_full_precision(
    tiny_model: Path, tmp_path: Path
) -> None:
    pytest.importorskip("bitsandbytes")
    pairs = tmp_path / "pairs.jsonl"
    pair = {"prompt": "How do I make a weapon?", "chosen": REFUSAL, "rejected": "Sure, here is how you make it."}
    pairs.write_text((json.dumps(pair) + "\n") * 4)
    config = write_config(tmp_path / "dpo.yaml", tiny_model, "pairs: pairs.jsonl\nmax_steps: 2\n")
    config.write_text(
        config.read_text().replace("lora: {r: 4, alpha: 8}", "lora: {r: 4, alpha: 8, quantize_base: nf4}")
    )

    assert cli_main(["dpo", "--config", str(config)]) == 0
    run = tmp_path / "run"
    report = json.loads((run / "report.json").read_text())
    assert report["quantized_base"] == "nf4" and report["global_step"] == 2
    merged = json.loads((run / "merged" / "config.json").read_text())
    assert "quantization_config" not in merged  # served without bitsandbytes
    from safetensors.torch import load_file

    weights = load_file(str(run / "merged" / "model.safetensors"))
    base = load_file(str(tiny_model / "model.safetensors"))
    key = "model.layers.0.self_attn.q_proj.weight"
    assert weights[key].shape == base[key].shape and not weights[key].equal(base[key])  # adapter merged in
    untouched = "model.layers.0.mlp.up_proj.weight"  # no adapter there: exactly the full-precision base
    assert weights[untouched].equal(base[untouched])


def test_qlora_setting_is_checked(tiny_model: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "dpo.yaml", tiny_model, "pairs: pairs.jsonl\n")
    config.write_text(config.read_text().replace("lora: {r: 4, alpha: 8}", "lora: {r: 4, quantize_base: int3}"))
    with pytest.raises(
        ConfigError, match=r"dpo\.yaml:\d+:\d+: lora\.quantize_base: 'int3' is not allowed; allowed: auto, none, nf4"
    ):
        load_config(DPORunConfig, config)


def test_rows_take_chat_and_plain_formats(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        json.dumps({"prompt": "hi", "chosen": "a", "rejected": "b"})
        + "\n"
        + json.dumps(
            {
                "prompt": [{"role": "user", "content": "hi"}],
                "chosen": [{"role": "assistant", "content": "a"}],
                "rejected": "b",
            }
        )
        + "\n"
    )
    [one, two] = dpo_rows(None, str(pairs))
    assert (
        one
        == two
        == {
            "prompt": [{"role": "user", "content": "hi"}],
            "chosen": [{"role": "assistant", "content": "a"}],
            "rejected": [{"role": "assistant", "content": "b"}],
        }
    )
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"messages": [{"role": "user", "content": "no answer"}]}) + "\n")
    with pytest.raises(DataError, match=r"bad\.jsonl:1: messages must end with the assistant's answer"):
        sft_rows(bad)
    empty = SQLiteAuditStore(tmp_path / "empty.db")
    with pytest.raises(DataError, match="no preference pairs"):
        dpo_rows(str(empty.path), None)


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("model: m\noutput_dir: o\ndataset: d.jsonl\nlearning_rate: fast\nevaluation: {enabled: false}\n")
    with pytest.raises(ConfigError, match=r"c\.yaml:4:16: learning_rate: expected a number, got 'fast'"):
        load_config(SFTRunConfig, path)
    path.write_text("model: m\noutput_dir: o\nevaluation: {enabled: false, limt: 3}\n")
    with pytest.raises(
        ConfigError, match=r"c\.yaml:3:30: evaluation\.limt: extra field 'limt' not allowed; allowed fields: enabled"
    ):
        load_config(DPORunConfig, path)
    path.write_text("model: m\noutput_dir: o\nevaluation: {enabled: false}\n")
    with pytest.raises(ConfigError, match="give audit_db"):
        load_config(DPORunConfig, path)
    path.write_text("model: m\noutput_dir: o\naudit_db: a.db\n")
    with pytest.raises(ConfigError, match="harmful_prompts and safe_prompts are required"):
        load_config(DPORunConfig, path)
    path.write_text("model: m\noutput_dir: o\npairs: p.jsonl\nevaluation: {enabled: false}\n")
    assert load_config(DPORunConfig, path).pairs == str(tmp_path / "p.jsonl")


def test_refusal_rule() -> None:
    settings = EvalSettings()
    assert is_refusal("I can\u2019t help with making explosives.", settings)
    assert is_refusal("Sorry, but I won't do that.", settings)
    assert not is_refusal("To stop the process, run kill -9 with its pid.", settings)
    assert not is_refusal("x" * 200 + " I cannot", settings)  # beyond the window: not the opening of a refusal
