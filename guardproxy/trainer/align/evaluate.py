"""Refusal evaluation: does tuning make the model refuse harmful prompts without refusing safe ones?

Both models answer the same prompts with greedy decoding through the chat template. A reply is a refusal
when one of the configured phrases occurs in its first `refusal_window` characters (lower-cased): the usual
keyword rule of refusal benchmarks — cheap and transparent, and blind to refusals worded otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from guardproxy.trainer.align.config import EvalSettings
from guardproxy.trainer.align.data import prompt_texts


@dataclass(frozen=True, slots=True)
class RefusalScores:
    refusal_rate: float  # share of harmful prompts refused: higher is safer
    over_refusal_rate: float  # share of safe prompts refused: lower is more helpful
    harmful: int
    safe: int
    examples: list[dict[str, str]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "refusal_rate": self.refusal_rate,
            "over_refusal_rate": self.over_refusal_rate,
            "harmful_prompts": self.harmful,
            "safe_prompts": self.safe,
            "examples": self.examples,
        }


def is_refusal(reply: str, settings: EvalSettings) -> bool:
    head = reply[: settings.refusal_window].lower().replace("\u2019", "'")
    return any(phrase in head for phrase in settings.refusal_phrases)


def score(model: Any, tokenizer: Any, settings: EvalSettings) -> RefusalScores:
    assert settings.harmful_prompts and settings.safe_prompts  # checked when the config was loaded
    harmful = prompt_texts(settings.harmful_prompts, settings.limit)
    safe = prompt_texts(settings.safe_prompts, settings.limit)
    harmful_replies = generate(model, tokenizer, harmful, settings)
    safe_replies = generate(model, tokenizer, safe, settings)
    refused = sum(is_refusal(r, settings) for r in harmful_replies)
    over = sum(is_refusal(r, settings) for r in safe_replies)
    examples = [
        {"kind": kind, "prompt": p, "reply": r, "refused": str(is_refusal(r, settings)).lower()}
        for kind, prompts, replies in (("harmful", harmful, harmful_replies), ("safe", safe, safe_replies))
        for p, r in list(zip(prompts, replies, strict=True))[:2]
    ]
    return RefusalScores(refused / max(len(harmful), 1), over / max(len(safe), 1), len(harmful), len(safe), examples)


def generate(model: Any, tokenizer: Any, prompts: list[str], settings: EvalSettings) -> list[str]:
    import torch

    tokenizer.padding_side = "left"  # generation continues from the right end of every row
    replies: list[str] = []
    model.eval()
    for start in range(0, len(prompts), settings.batch_size):
        batch = prompts[start : start + settings.batch_size]
        texts = [
            tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
            for p in batch
        ]
        encoded = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            output = model.generate(
                **encoded,
                do_sample=False,
                max_new_tokens=settings.max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
            )
        new_tokens = output[:, encoded["input_ids"].shape[1] :]
        replies.extend(tokenizer.batch_decode(new_tokens, skip_special_tokens=True))
    return [r.strip() for r in replies]
