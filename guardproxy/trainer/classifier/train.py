"""Fine-tuning loop (torch): length-grouped batches, AdamW + linear schedule, checkpoints and resume."""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm  # type: ignore[import-untyped]
from transformers import AutoModelForSequenceClassification

from guardproxy.trainer.classifier.config import ClassifierTrainConfig
from guardproxy.trainer.classifier.data import Window

log = logging.getLogger(__name__)
_CHECKPOINT_PREFIX = "checkpoint-"


@dataclass(frozen=True, slots=True)
class TrainResult:
    model_dir: Path  # a plain (LoRA merged) Hugging Face model directory
    steps: int
    seconds: float  # training time over all runs of a resumed job
    final_loss: float


def epoch_batches(windows: list[Window], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Shuffled batches of similar lengths (less padding), the same for a given (seed, epoch) so resume works."""
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(windows)))
    rng.shuffle(order)
    mega = batch_size * 50
    batches: list[list[int]] = []
    for i in range(0, len(order), mega):
        chunk = sorted(order[i : i + mega], key=lambda j: len(windows[j].ids), reverse=True)
        batches.extend(chunk[k : k + batch_size] for k in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def linear_warmup_decay(warmup_ratio: float, total_steps: int) -> Callable[[int], float]:
    """Learning-rate factor: linear warm-up, then linear decay to zero at the last step."""
    warmup = max(1, int(warmup_ratio * total_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return step / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return factor


def collate(windows: list[Window], batch: list[int]) -> dict[str, torch.Tensor]:
    width = max(len(windows[i].ids) for i in batch)
    ids = torch.zeros((len(batch), width), dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, i in enumerate(batch):
        seq = windows[i].ids
        ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    if windows[batch[0]].targets:  # sigmoid head: float targets, -1 = unknown
        labels = torch.tensor([windows[i].targets for i in batch], dtype=torch.float)
    else:
        labels = torch.tensor([windows[i].label for i in batch], dtype=torch.long)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def masked_bce(logits: torch.Tensor, targets: torch.Tensor, pos_weight: torch.Tensor | None) -> torch.Tensor:
    """Binary cross-entropy per label, averaged over the known (target >= 0) entries only."""
    known = (targets >= 0).float()
    losses = torch.nn.functional.binary_cross_entropy_with_logits(
        logits, targets.clamp(min=0.0), pos_weight=pos_weight, reduction="none"
    )
    return (losses * known).sum() / known.sum().clamp(min=1.0)


def build_model(cfg: ClassifierTrainConfig, base_dir: Path) -> torch.nn.Module:
    model: torch.nn.Module = AutoModelForSequenceClassification.from_pretrained(
        str(base_dir),
        num_labels=len(cfg.labels),
        id2label=dict(enumerate(cfg.labels)),
        label2id={label: i for i, label in enumerate(cfg.labels)},
        problem_type="multi_label_classification" if cfg.head == "sigmoid" else "single_label_classification",
        attn_implementation="eager",
    )
    if cfg.finetune == "lora":
        from peft import LoraConfig, TaskType, get_peft_model

        lora = LoraConfig(
            task_type=TaskType.SEQ_CLS,
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout,
            target_modules=cfg.lora_target_modules,
        )
        with warnings.catch_warnings():
            # peft still asks transformers 5 for a renamed attribute; harmless until transformers 6.
            warnings.filterwarnings(
                "ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning
            )
            model = get_peft_model(model, lora)  # the classifier head stays trainable (modules_to_save)
    return model


def _checkpoints(work_dir: Path) -> list[Path]:
    found = [p for p in work_dir.glob(f"{_CHECKPOINT_PREFIX}*") if (p / "state.json").is_file()]
    return sorted(found, key=lambda p: int(p.name.removeprefix(_CHECKPOINT_PREFIX)))


def _save_checkpoint(work_dir: Path, step: int, loss: float, state: dict[str, Any], keep: int) -> None:
    target = work_dir / f"{_CHECKPOINT_PREFIX}{step}"
    tmp = work_dir / f".tmp-{step}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.save(state, tmp / "training_state.pt")
    # state.json last: a checkpoint without it is incomplete and ignored on resume.
    (tmp / "state.json").write_text(json.dumps({"step": step, "loss": loss}), encoding="utf-8")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    for old in _checkpoints(work_dir)[:-keep]:
        shutil.rmtree(old)


def train(cfg: ClassifierTrainConfig, base_dir: Path, windows: list[Window]) -> TrainResult:
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    work_dir = Path(cfg.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)

    model = build_model(cfg, base_dir)
    steps_per_epoch = math.ceil(len(windows) / cfg.batch_size)
    total_steps = cfg.max_steps or math.ceil(steps_per_epoch * cfg.epochs)
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.learning_rate,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, linear_warmup_decay(cfg.warmup_ratio, total_steps))
    weights = torch.tensor(cfg.class_weights, dtype=torch.float) if cfg.class_weights else None
    cross_entropy = torch.nn.CrossEntropyLoss(weight=weights)

    def loss_fn(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        # sigmoid: class_weights are per-label positive weights
        return masked_bce(logits, labels, weights) if cfg.head == "sigmoid" else cross_entropy(logits, labels)

    step, running, earlier_seconds = 0, 0.0, 0.0
    existing = _checkpoints(work_dir) if cfg.resume else []
    if existing:
        state = torch.load(existing[-1] / "training_state.pt", weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        step, running = int(state["step"]), float(state["loss"])
        earlier_seconds = float(state.get("seconds", 0.0))
        log.info("resumed from %s at step %d", existing[-1], step)

    model.train()
    started = time.monotonic()
    bar = tqdm(total=total_steps, initial=step, desc=f"train {cfg.name}", unit="step", dynamic_ncols=True)
    while step < total_steps:
        epoch, offset = divmod(step, steps_per_epoch)
        for batch in epoch_batches(windows, cfg.batch_size, cfg.seed, epoch)[offset:]:
            inputs = collate(windows, batch)
            labels = inputs.pop("labels")
            logits = model(**inputs).logits
            loss = loss_fn(logits, labels)
            loss.backward()  # type: ignore[no-untyped-call]
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            running = loss.item() if step == 1 else 0.98 * running + 0.02 * loss.item()
            bar.update(1)
            bar.set_postfix(loss=f"{running:.4f}", epoch=epoch + 1, lr=f"{scheduler.get_last_lr()[0]:.1e}")
            if step % cfg.save_steps == 0 or step == total_steps:
                state = {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "torch_rng": torch.get_rng_state(),
                    "step": step,
                    "loss": running,
                    "seconds": earlier_seconds + time.monotonic() - started,
                }
                _save_checkpoint(work_dir, step, running, state, cfg.keep_checkpoints)
            if step >= total_steps:
                break
    bar.close()
    seconds = earlier_seconds + time.monotonic() - started

    final_dir = work_dir / "final"
    shutil.rmtree(final_dir, ignore_errors=True)
    merged: Any = model.merge_and_unload() if cfg.finetune == "lora" else model  # type: ignore[operator]
    merged.save_pretrained(str(final_dir))
    return TrainResult(model_dir=final_dir, steps=step, seconds=seconds, final_loss=running)
