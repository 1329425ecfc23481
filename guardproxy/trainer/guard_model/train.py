"""One guard-model SFT run: read rows, prune the base, train with shared prefixes, export GGUF, card, report."""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from guardproxy.detectors.model_files import CARD_FILE
from guardproxy.trainer.guard_model.base_model import load_pruned, resolve_base
from guardproxy.trainer.guard_model.batching import Encoded, encode, target_loss, unsafe_probabilities
from guardproxy.trainer.guard_model.card import guard_model_card
from guardproxy.trainer.guard_model.config import GuardSFTConfig
from guardproxy.trainer.guard_model.examples import GuardRow, batches, read_rows, split_prompt
from guardproxy.trainer.guard_model.gguf_export import export_gguf
from guardproxy.trainer.guard_model.metrics import binary_scores

GGUF_FILE = "model.gguf"


def run(config: GuardSFTConfig, config_file: str | None = None) -> dict[str, Any]:
    import torch

    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    train_rows = [_cut(r, config) for r in read_rows(Path(config.train))]
    heldout_rows = [_cut(r, config) for r in read_rows(Path(config.heldout))]
    base_path = resolve_base(config.base_model)
    loaded = load_pruned(base_path, config.blocks)
    model, tokenizer = loaded.model, loaded.tokenizer
    pad_id, safe_id, unsafe_id = _special_ids(tokenizer)
    train = encode([split_prompt(r) for r in train_rows], tokenizer)
    heldout = encode([split_prompt(r) for r in heldout_rows], tokenizer)
    before = (
        _evaluate(model, heldout, heldout_rows, pad_id, safe_id, unsafe_id, config.batch_size)
        if config.evaluate_base
        else None
    )
    model = _trainable(model, config.lora_r, config.train_blocks)
    started = time.perf_counter()
    # The adapters sit inside the base model's modules; the forward pass needs its decoder (`.model`), which a
    # PeftModel's own `.model` attribute is not.
    losses = _train(model.get_base_model() if config.lora_r else model, train, pad_id, config)
    train_s = time.perf_counter() - started
    if config.lora_r:
        model = model.merge_and_unload()
    model.eval()
    after = _evaluate(model, heldout, heldout_rows, pad_id, safe_id, unsafe_id, config.batch_size)
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    c = model.config
    export_gguf(
        model.state_dict(),
        base_gguf=base_path,
        out=out / GGUF_FILE,
        keep_layers=int(c.num_hidden_layers),
        n_head=int(c.num_attention_heads),
        n_head_kv=int(c.num_key_value_heads),
        name=config.name,
        extra_metadata={"guardproxy.guard.protocol": "llama_guard_3", "guardproxy.guard.prompt_wrapper": "chatml"},
        block_type=config.block_type,
    )
    report: dict[str, Any] = {
        "base_model": {"file": str(base_path), "sha256": _sha256(base_path), "blocks_total": loaded.layers_total},
        "blocks_kept": config.blocks or list(range(loaded.layers_total)),
        "config": asdict(config),
        "data": {
            "train": _data_facts(Path(config.train), train_rows),
            "heldout": _data_facts(Path(config.heldout), heldout_rows),
        },
        "train_seconds": round(train_s, 1),
        "steps": len(losses),
        "losses": losses[:: max(1, len(losses) // 50)],
        "heldout_before": before,
        "heldout_after": after,
        "gguf": {"file": GGUF_FILE, "sha256": _sha256(out / GGUF_FILE), "bytes": (out / GGUF_FILE).stat().st_size},
    }
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    card = guard_model_card(
        report,
        name=config.name,
        version=out.name,
        reproduce=f"guardproxy trainer sft --config {config_file or '<config>'}",
    )
    (out / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")
    return report


def _cut(row: GuardRow, config: GuardSFTConfig) -> GuardRow:
    answer = row.answer[: config.max_answer_chars] if row.answer else row.answer
    return replace(row, user=row.user[: config.max_user_chars], answer=answer)


def _special_ids(tokenizer: Any) -> tuple[int, int, int]:
    safe = tokenizer("safe", add_special_tokens=False).input_ids
    unsafe = tokenizer("unsafe", add_special_tokens=False).input_ids
    if safe[0] == unsafe[0]:
        raise ValueError("the tokenizer starts 'safe' and 'unsafe' with the same token: cannot score the verdict")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return int(pad), int(safe[0]), int(unsafe[0])


def _trainable(model: Any, lora_r: int, train_blocks: int) -> Any:
    for parameter in model.model.embed_tokens.parameters():
        parameter.requires_grad_(False)  # tied to the output head, copied verbatim into the GGUF
    layers = model.model.layers
    frozen = len(layers) - train_blocks if 0 < train_blocks < len(layers) else 0
    for layer in layers[:frozen]:
        # Frozen lower blocks: autograd never reaches them, so the backward pass costs only the trained ones.
        for parameter in layer.parameters():
            parameter.requires_grad_(False)
    if not lora_r:
        return model
    from peft import LoraConfig, get_peft_model

    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    names = [f"layers.{i}.{kind}" for i in range(frozen, len(layers)) for kind in ("self_attn", "mlp")]
    modules = [n for n, _ in model.named_modules() if n.endswith(tuple(targets)) and any(k + "." in n for k in names)]
    return get_peft_model(model, LoraConfig(r=lora_r, lora_alpha=2 * lora_r, target_modules=modules, lora_dropout=0.0))


def _train(model: Any, data: Sequence[Encoded], pad_id: int, config: GuardSFTConfig) -> list[float]:
    import torch

    rng = random.Random(config.seed)
    plan: list[list[int]] = []
    passes = math.ceil(config.epochs)
    for _ in range(passes):
        order = list(range(len(data)))
        rng.shuffle(order)
        epoch = batches([e.prefix for e in data], config.batch_size, order)
        rng.shuffle(epoch)
        plan.extend(epoch)
    plan = plan[: max(1, round(len(plan) * config.epochs / passes))]
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=0.0)
    total = len(plan)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / max(1, config.warmup_steps)) * max(0.05, 1 - s / total)
    )
    model.train()
    losses: list[float] = []
    for step, indices in enumerate(plan):
        loss = target_loss(model, [data[i] for i in indices], pad_id)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimiser.step()
        schedule.step()
        optimiser.zero_grad()
        losses.append(round(float(loss.detach()), 4))
        if step % 10 == 0:
            print(json.dumps({"step": step, "of": total, "loss": losses[-1]}), flush=True)
    return losses


def _evaluate(
    model: Any, data: Sequence[Encoded], rows: Sequence[GuardRow], pad_id: int, safe_id: int, unsafe_id: int, size: int
) -> dict[str, Any]:
    scores = [0.0] * len(data)
    for indices in batches([e.prefix for e in data], size, range(len(data))):
        for i, p in zip(
            indices, unsafe_probabilities(model, [data[i] for i in indices], pad_id, safe_id, unsafe_id), strict=True
        ):
            scores[i] = p
    result: dict[str, Any] = {}
    for role in ("User", "Agent", None):
        picked = [(s, r.label == "unsafe") for s, r in zip(scores, rows, strict=True) if role is None or r.role == role]
        if picked:
            result[role or "all"] = binary_scores([s for s, _ in picked], [y for _, y in picked]).to_dict()
    return result


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _data_facts(path: Path, rows: Sequence[GuardRow]) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for r in rows:
        key = f"{r.role}/{r.label}"
        counts[key] = counts.get(key, 0) + 1
    return {"file": path.name, "sha256": _sha256(path), "rows": len(rows), "by_role_label": counts}
