"""One SFT or DPO run: LoRA with TRL, checkpoints and resume, adapter (and merged model), refusal report."""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any, Literal

from guardproxy.trainer.align.config import AlignConfig, DPORunConfig, SFTRunConfig
from guardproxy.trainer.align.data import Row, dpo_rows, sft_rows
from guardproxy.trainer.align.evaluate import score
from guardproxy.trainer.align.report import write_report
from guardproxy.trainer.quantization import nf4_config, parse_quantize_base, prepare_for_training, use_4bit

Method = Literal["sft", "dpo"]
_V6_DEPRECATION = r".* is deprecated and will be removed in v6"


def run(config: SFTRunConfig | DPORunConfig) -> dict[str, Any]:
    """Train, save, evaluate; returns the report (also written to output_dir/report.json and .md)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    method: Method = "sft" if isinstance(config, SFTRunConfig) else "dpo"
    rows = (
        sft_rows(config.dataset)
        if isinstance(config, SFTRunConfig)
        else dpo_rows(config.audit_db, config.pairs, config.since)
    )
    out = Path(config.output_dir)
    checkpoints = out / "checkpoints"
    tokenizer = AutoTokenizer.from_pretrained(config.model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    quantize = use_4bit(parse_quantize_base(config.lora.quantize_base), "lora")
    if quantize:
        from accelerate import PartialState  # type: ignore[import-untyped]

        # QLoRA: bitsandbytes quantizes the frozen base while loading it onto this process's device.
        model = AutoModelForCausalLM.from_pretrained(
            config.model, quantization_config=nf4_config(), device_map={"": PartialState().device}
        )
        model = prepare_for_training(model)
    else:
        model = AutoModelForCausalLM.from_pretrained(config.model, dtype=torch.float32)
    resumed_from = _last_checkpoint(checkpoints) if config.resume else None
    started = time.perf_counter()
    with warnings.catch_warnings():
        # peft and trl still call transformers-4 names that transformers 5 deprecates; nothing we can change here.
        warnings.filterwarnings("ignore", message=_V6_DEPRECATION, category=FutureWarning)
        trainer = _trainer(method, config, model, tokenizer, rows, checkpoints)
        result = trainer.train(resume_from_checkpoint=resumed_from)
    train_s = time.perf_counter() - started
    adapter_dir = out / "adapter"
    trainer.save_model(str(adapter_dir))
    tokenizer.save_pretrained(str(adapter_dir))
    tuned = trainer.model
    evaluation: dict[str, Any] | None = None
    if config.evaluation.enabled:
        with tuned.disable_adapter():  # the base model is the same weights with the adapter switched off
            base_scores = score(tuned, tokenizer, config.evaluation)
        tuned_scores = score(tuned, tokenizer, config.evaluation)
        evaluation = {
            "base": base_scores.to_dict(),
            "tuned": tuned_scores.to_dict(),
            "refusal_rate_change": tuned_scores.refusal_rate - base_scores.refusal_rate,
            "over_refusal_rate_change": tuned_scores.over_refusal_rate - base_scores.over_refusal_rate,
            "rule": {"phrases": config.evaluation.refusal_phrases, "window_chars": config.evaluation.refusal_window},
        }
    merged_dir = None
    if config.merge:  # after the evaluation: merging folds the adapter into the base weights for good
        merged_dir = out / "merged"
        if quantize:
            _merge_into_full_precision(config.model, adapter_dir, merged_dir)
        else:
            tuned.merge_and_unload().save_pretrained(str(merged_dir))
        tokenizer.save_pretrained(str(merged_dir))
    report: dict[str, Any] = {
        "method": method,
        "base_model": config.model,
        "examples": len(rows),
        "global_step": trainer.state.global_step,
        "max_steps": config.max_steps,
        "resumed_from": resumed_from,
        "train_seconds": round(train_s, 2),
        "train_metrics": result.metrics,
        "losses": [
            {"step": e["step"], "loss": e["loss"]} for e in trainer.state.log_history if "loss" in e and "step" in e
        ],
        "adapter_dir": str(adapter_dir),
        "merged_dir": None if merged_dir is None else str(merged_dir),
        "checkpoints_dir": str(checkpoints),
        "lora": vars(config.lora),
        "quantized_base": "nf4" if quantize else None,
        "evaluation": evaluation,
    }
    write_report(out, report)
    return report


def _merge_into_full_precision(base: str, adapter_dir: Path, merged_dir: Path) -> None:
    """QLoRA's merge: the adapter onto a full-precision copy of the base, not onto its 4-bit training copy."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    full = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_V6_DEPRECATION, category=FutureWarning)  # peft, as in run()
        adapted = PeftModel.from_pretrained(full, str(adapter_dir))
    adapted.merge_and_unload().save_pretrained(str(merged_dir))


def _trainer(
    method: Method, config: AlignConfig, model: Any, tokenizer: Any, rows: list[Row], checkpoints: Path
) -> Any:
    import torch
    from datasets import Dataset  # type: ignore[import-untyped]
    from peft import LoraConfig
    from trl.trainer.dpo_config import DPOConfig
    from trl.trainer.dpo_trainer import DPOTrainer
    from trl.trainer.sft_config import SFTConfig
    from trl.trainer.sft_trainer import SFTTrainer

    lora = LoraConfig(
        r=config.lora.r,
        lora_alpha=config.lora.alpha,
        lora_dropout=config.lora.dropout,
        target_modules=config.lora.target_modules,
        task_type="CAUSAL_LM",
    )
    common: dict[str, Any] = {
        "output_dir": str(checkpoints),
        "max_steps": config.max_steps,
        "learning_rate": config.learning_rate,
        "per_device_train_batch_size": config.batch_size,
        "gradient_accumulation_steps": config.gradient_accumulation_steps,
        "max_length": config.max_length,
        "save_strategy": "steps",
        "save_steps": config.save_steps,
        "save_total_limit": config.save_total_limit,
        "logging_steps": config.logging_steps,
        "seed": config.seed,
        "report_to": "none",
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        "dataloader_pin_memory": torch.cuda.is_available(),  # pinning without a GPU only warns
        # TRL defaults to the deprecated name (a FutureWarning in transformers 5): set the new one, clear the old.
        "gradient_checkpointing": None,
        "activation_checkpointing": config.activation_checkpointing,
        # TRL turns bf16 on by default, which transformers refuses without a bf16-capable GPU.
        "bf16": torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
    }
    dataset = Dataset.from_list(rows)
    if method == "sft":
        sft_args = SFTConfig(**common, completion_only_loss=True)
        return SFTTrainer(
            model=model, args=sft_args, train_dataset=dataset, processing_class=tokenizer, peft_config=lora
        )
    assert isinstance(config, DPORunConfig)
    dpo_args = DPOConfig(**common, beta=config.beta)
    return DPOTrainer(model=model, args=dpo_args, train_dataset=dataset, processing_class=tokenizer, peft_config=lora)


def _last_checkpoint(checkpoints: Path) -> str | None:
    """The newest `checkpoint-N` directory (the rule of transformers' get_last_checkpoint, typed)."""
    found = [p for p in checkpoints.glob("checkpoint-*") if p.is_dir() and p.name.removeprefix("checkpoint-").isdigit()]
    return str(max(found, key=lambda p: int(p.name.removeprefix("checkpoint-")))) if found else None
