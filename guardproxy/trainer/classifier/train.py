"""Fine-tuning loop under Hugging Face `accelerate`: length-grouped batches, AdamW + linear schedule,
checkpoints and resume.

The same loop runs as one CPU process (tests, this machine) and under `accelerate launch` on several GPUs or
machines, including DeepSpeed ZeRO-3 (configs/accelerate/). With N processes each optimizer step takes N
batches, one per process, so a step means the same thing at any scale and `max_steps` stays comparable.
Checkpoints are `accelerator.save_state` folders plus our `state.json` (step, loss, seconds); the directory of a
multi-machine run must be on a shared filesystem.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tqdm.auto import tqdm  # type: ignore[import-untyped]
from transformers import AutoModelForSequenceClassification

from guardproxy.trainer.classifier.config import ClassifierTrainConfig
from guardproxy.trainer.classifier.data import Window
from guardproxy.trainer.quantization import adapter_state, nf4_config, prepare_for_training, use_4bit

if TYPE_CHECKING:
    from accelerate import Accelerator  # type: ignore[import-untyped]

log = logging.getLogger(__name__)
_CHECKPOINT_PREFIX = "checkpoint-"


@dataclass(frozen=True, slots=True)
class TrainResult:
    model_dir: Path  # a plain (LoRA merged) Hugging Face model directory
    steps: int
    seconds: float  # training time over all runs of a resumed job
    final_loss: float
    is_main_process: bool = True  # under `accelerate launch`, only the main process exports and evaluates
    resumed_from_step: int = 0  # 0: started fresh
    quantized_base: str | None = None  # "nf4": QLoRA (the adapters trained over a 4-bit base)


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


def build_model(
    cfg: ClassifierTrainConfig, base_dir: Path, *, nf4_device: torch.device | None = None
) -> torch.nn.Module:
    """The model to train: full, LoRA, or LoRA over a 4-bit NF4 base (QLoRA) when `nf4_device` is given."""
    quantized: dict[str, Any] = {}
    if nf4_device is not None:
        # bitsandbytes quantizes while loading onto the device; the head is trained, so it stays full precision.
        quantized = {"quantization_config": nf4_config(["classifier"]), "device_map": {"": nf4_device}}
    model: torch.nn.Module = AutoModelForSequenceClassification.from_pretrained(
        str(base_dir),
        num_labels=len(cfg.labels),
        id2label=dict(enumerate(cfg.labels)),
        label2id={label: i for i, label in enumerate(cfg.labels)},
        problem_type="multi_label_classification" if cfg.head == "sigmoid" else "single_label_classification",
        attn_implementation="eager",
        **quantized,
    )
    if nf4_device is not None:
        model = prepare_for_training(model)
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


def _save_checkpoint(accelerator: Accelerator, work_dir: Path, progress: dict[str, Any], keep: int) -> None:
    """Every process writes its part (DeepSpeed shards, RNG state); the main process commits the folder."""
    step = int(progress["step"])
    target = work_dir / f"{_CHECKPOINT_PREFIX}{step}"
    tmp = work_dir / f".tmp-{step}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        # state.json last: a checkpoint without it is incomplete and ignored on resume.
        (tmp / "state.json").write_text(json.dumps(progress), encoding="utf-8")
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
        for old in _checkpoints(work_dir)[:-keep]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()


def _load_legacy_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Checkpoints written before the loop ran under accelerate: one `training_state.pt` (single process)."""
    state: dict[str, Any] = torch.load(path / "training_state.pt", weights_only=False)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])  # its scheduler state is not needed: the rate follows the step
    torch.set_rng_state(state["torch_rng"])
    return state


def make_accelerator(cfg: ClassifierTrainConfig) -> Accelerator:
    """One CPU process here; under `accelerate launch` the launcher's config (GPUs, DeepSpeed) decides."""
    from accelerate import Accelerator

    # accelerate never enables DeepSpeed when told `cpu=True`: under a DeepSpeed launch, DeepSpeed's own
    # accelerator picks the device (DS_ACCELERATOR=cpu runs ZeRO-3 on CPUs over gloo).
    deepspeed = os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"
    if deepspeed and not torch.cuda.is_available():
        from accelerate import PartialState

        # accelerate knows no process-group backend for DeepSpeed without a GPU and would run each process
        # alone; gloo is the one DeepSpeed's CPU accelerator uses. The state is shared with the Accelerator.
        PartialState(cpu=False, backend="gloo")
    accelerator = Accelerator(cpu=not torch.cuda.is_available() and not deepspeed)
    plugin = accelerator.state.deepspeed_plugin
    if plugin is not None:
        # We feed batches ourselves (no DataLoader), so DeepSpeed cannot infer its micro-batch size.
        plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = cfg.batch_size
    return accelerator


def finish_distributed() -> None:
    """Every process leaves together, once the main one has written the version; then the group is closed.

    A process that left early (DeepSpeed on CPUs) could abort at exit and make the launcher kill the main one
    in the middle of its export.
    """
    from accelerate import PartialState

    state = PartialState()
    state.wait_for_everyone()
    state.destroy_process_group()


def train(cfg: ClassifierTrainConfig, base_dir: Path, windows: list[Window]) -> TrainResult:
    """Fine-tune the model in `base_dir` (a base encoder, or an earlier version's torch weights)."""
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    accelerator = make_accelerator(cfg)
    work_dir = Path(cfg.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)

    quantize = use_4bit(cfg.quantize_base, cfg.finetune)
    if quantize and accelerator.state.deepspeed_plugin is not None:
        # ZeRO-3 shards parameters it can partition; bitsandbytes' packed 4-bit weights are not among them.
        if cfg.quantize_base == "nf4":
            raise ValueError("quantize_base: nf4 (QLoRA) does not combine with DeepSpeed: use none or auto")
        quantize = False  # auto: under DeepSpeed the sharding is the memory saving
    model = build_model(cfg, base_dir, nf4_device=accelerator.device if quantize else None)
    processes = accelerator.num_processes
    batches_per_epoch = math.ceil(len(windows) / cfg.batch_size)
    steps_per_epoch = math.ceil(batches_per_epoch / processes)
    total_steps = cfg.max_steps or math.ceil(steps_per_epoch * cfg.epochs)
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.learning_rate,
    )
    # The rate is a function of the step, set before each update: no scheduler object to checkpoint, and it
    # holds however ZeRO-3 regroups the parameters (it may merge or drop the two weight-decay groups).
    rate = linear_warmup_decay(cfg.warmup_ratio, total_steps)
    weights = (
        torch.tensor(cfg.class_weights, dtype=torch.float, device=accelerator.device) if cfg.class_weights else None
    )
    cross_entropy = torch.nn.CrossEntropyLoss(weight=weights)

    def loss_fn(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        # sigmoid: class_weights are per-label positive weights
        return masked_bce(logits, labels, weights) if cfg.head == "sigmoid" else cross_entropy(logits, labels)

    step, running, earlier_seconds = 0, 0.0, 0.0
    existing = _checkpoints(work_dir) if cfg.resume else []
    legacy = bool(existing) and (existing[-1] / "training_state.pt").is_file()
    if legacy:
        _load_legacy_checkpoint(existing[-1], model, optimizer)
    model, optimizer = accelerator.prepare(model, optimizer)
    if existing:
        if not legacy:
            # QLoRA: the frozen 4-bit base is re-quantized from the same weights at every start; its saved
            # quantisation state is redundant and does not load strictly. The adapters and head load as saved.
            accelerator.load_state(str(existing[-1]), **({"strict": False} if quantize else {}))
        progress = json.loads((existing[-1] / "state.json").read_text(encoding="utf-8"))
        step, running = int(progress["step"]), float(progress["loss"])
        earlier_seconds = float(progress.get("seconds", 0.0))
        log.info("resumed from %s at step %d", existing[-1], step)
    resumed_from = step

    model.train()
    started = time.monotonic()
    bar = tqdm(
        total=total_steps,
        initial=step,
        desc=f"train {cfg.name}",
        unit="step",
        dynamic_ncols=True,
        disable=not accelerator.is_local_main_process,
    )
    while step < total_steps:
        epoch, offset = divmod(step, steps_per_epoch)
        batches = epoch_batches(windows, cfg.batch_size, cfg.seed, epoch)
        for index in range(offset, steps_per_epoch):
            # Process r takes batch index*N + r; the last step of an epoch wraps so every process steps together.
            batch = batches[(index * processes + accelerator.process_index) % len(batches)]
            inputs = {k: v.to(accelerator.device) for k, v in collate(windows, batch).items()}
            labels = inputs.pop("labels")
            logits = model(**inputs).logits
            loss = loss_fn(logits, labels)
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(model.parameters(), 1.0)
            lr = cfg.learning_rate * rate(step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            running = loss.item() if step == 1 else 0.98 * running + 0.02 * loss.item()
            bar.update(1)
            bar.set_postfix(loss=f"{running:.4f}", epoch=epoch + 1, lr=f"{lr:.1e}")
            if step % cfg.save_steps == 0 or step == total_steps:
                progress = {"step": step, "loss": running, "seconds": earlier_seconds + time.monotonic() - started}
                _save_checkpoint(accelerator, work_dir, progress, cfg.keep_checkpoints)
            if step >= total_steps:
                break
    bar.close()
    seconds = earlier_seconds + time.monotonic() - started

    final_dir = work_dir / "final"
    # Gathered on every process (ZeRO-3 shards the weights), written by the main one into a fresh CPU copy, so
    # the saved model is a plain Hugging Face model whatever wrapped it during training.
    state_dict = accelerator.get_state_dict(model)
    if accelerator.is_main_process:
        shutil.rmtree(final_dir, ignore_errors=True)
        if accelerator.state.deepspeed_plugin is not None:
            from transformers.integrations.deepspeed import unset_hf_deepspeed_config

            # Training is over: without this, from_pretrained would partition the copy with ZeRO-3's init, a
            # collective that only this process joins (a deadlock).
            unset_hf_deepspeed_config()  # type: ignore[no-untyped-call]
        plain = build_model(cfg, base_dir)
        if quantize:
            # QLoRA: the adapters and the head go onto a full-precision copy of the base, which they then merge
            # into, so the served model has none of the 4-bit rounding the base had during training.
            trained = adapter_state(state_dict)
            missing = set(adapter_state(plain.state_dict())) - set(trained)
            if missing:
                raise RuntimeError(f"QLoRA merge: trained weights missing for {sorted(missing)[:3]}")
            plain.load_state_dict(trained, strict=False)
        else:
            plain.load_state_dict(state_dict)
        merged: Any = plain.merge_and_unload() if cfg.finetune == "lora" else plain  # type: ignore[operator]
        merged.save_pretrained(str(final_dir))
    accelerator.wait_for_everyone()
    return TrainResult(
        model_dir=final_dir,
        steps=step,
        seconds=seconds,
        final_loss=running,
        is_main_process=accelerator.is_main_process,
        resumed_from_step=resumed_from,
        quantized_base="nf4" if quantize else None,
    )
