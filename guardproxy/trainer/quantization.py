"""QLoRA: the frozen base model loaded in 4-bit NF4 by bitsandbytes, with LoRA adapters trained on top.

Shared by the classifier trainer (the sidecar's detectors) and the SFT/DPO runs. The adapters always train in
full precision; merging them happens into a full-precision copy of the base (see the callers), so the served
model never carries 4-bit rounding of the base weights.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import typing
import warnings
from typing import Any, Literal

QuantizeBase = Literal["auto", "none", "nf4"]
QUANTIZE_HELP = (
    "QLoRA (only with LoRA): load the frozen base in 4-bit NF4 with bitsandbytes. auto: when a CUDA GPU and "
    "bitsandbytes are present; nf4: always (works on a CPU too, slowly: tests use it); none: never."
)
# Adapter and head weights: what a QLoRA run trains and what its merge needs from the trained model.
ADAPTER_KEY_PARTS = ("lora_", "modules_to_save")


def parse_quantize_base(value: str) -> QuantizeBase:
    """The setting, checked; the ValueError names the value and what is allowed (callers add the field)."""
    for allowed in typing.get_args(QuantizeBase):
        if value == allowed:
            return allowed  # type: ignore[no-any-return]
    raise ValueError(f"{value!r}; allowed: {', '.join(typing.get_args(QuantizeBase))}")


def bitsandbytes_available() -> bool:
    return importlib.util.find_spec("bitsandbytes") is not None


def use_4bit(mode: QuantizeBase, finetune: str) -> bool:
    """Whether this run quantizes its base. Raises ValueError when `nf4` is asked for and cannot be had."""
    if finetune != "lora":
        if mode == "nf4":
            raise ValueError(f"quantize_base: nf4 needs LoRA (finetune: lora), not finetune: {finetune}")
        return False
    if mode == "none":
        return False
    if mode == "nf4":
        if not bitsandbytes_available():
            raise ValueError("quantize_base: nf4 needs bitsandbytes: pip install bitsandbytes")
        return True
    import torch

    return torch.cuda.is_available() and bitsandbytes_available()


def _import_bitsandbytes() -> None:
    """Import bitsandbytes without it reaching for the network.

    On CPUs with AVX512-BF16 its CPU backend tries to download a kernel from the Hugging Face Hub at import time;
    guardproxy never downloads at run time, so the Hub is offline unless the user says otherwise, and the
    resulting "failed to load" warning (it falls back to its built-in kernel) is not shown.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    cpu_ops = logging.getLogger("bitsandbytes.backends.cpu.ops")
    level = cpu_ops.level
    cpu_ops.setLevel(logging.ERROR)
    try:
        import bitsandbytes  # noqa: F401
    finally:
        cpu_ops.setLevel(level)


def nf4_config(skip_modules: list[str] | None = None) -> Any:
    """transformers' BitsAndBytesConfig of QLoRA: NF4, double quantisation, bf16 compute on a GPU that has it."""
    import torch
    from transformers import BitsAndBytesConfig

    _import_bitsandbytes()
    bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return BitsAndBytesConfig(  # type: ignore[no-untyped-call]
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16 if bf16 else torch.float32,
        # Heads stay in full precision: they are trained (modules_to_save), not adapted.
        llm_int8_skip_modules=skip_modules,
    )


def prepare_for_training(model: Any) -> Any:
    """peft's k-bit preparation: norms in fp32, input gradients on (the adapters need them)."""
    from peft import prepare_model_for_kbit_training

    with warnings.catch_warnings():
        # peft still asks transformers 5 for a renamed attribute; harmless until transformers 6.
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)  # type: ignore[no-untyped-call]


def adapter_state(state_dict: dict[str, Any]) -> dict[str, Any]:
    """The trained part of a QLoRA model's state dict (the 4-bit base and its quantisation state left out)."""
    return {k: v for k, v in state_dict.items() if any(part in k for part in ADAPTER_KEY_PARTS)}
