"""Tokenised prompts and the forward pass that shares one prefix across a batch (training and scoring)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from guardproxy.trainer.guard_model.examples import SplitPrompt


@dataclass(frozen=True, slots=True)
class Encoded:
    prefix: tuple[int, ...]
    rest: tuple[int, ...]
    target: tuple[int, ...]


class TokenisationMismatch(ValueError):
    """The whole prompt does not start with the prefix's own tokens: sharing the prefix would train on
    token sequences the model never sees at inference."""


def encode(prompts: Sequence[SplitPrompt], tokenizer: Any) -> list[Encoded]:
    """Token ids of the whole prompt as inference tokenises it, cut where the prefix's tokens end."""
    cache: dict[str, tuple[int, ...]] = {}
    out: list[Encoded] = []
    for p in prompts:
        if p.prefix not in cache:
            cache[p.prefix] = tuple(tokenizer(p.prefix, add_special_tokens=False).input_ids)
        prefix = cache[p.prefix]
        whole = tuple(tokenizer(p.prefix + p.rest, add_special_tokens=False).input_ids)
        if whole[: len(prefix)] != prefix:
            raise TokenisationMismatch(f"prompt tokens do not start with the prefix tokens: {p.rest[:80]!r}")
        target = tuple(tokenizer(p.target, add_special_tokens=False).input_ids)
        out.append(Encoded(prefix, whole[len(prefix) :], target))
    return out


def shared_prefix_hidden(model: Any, batch: Sequence[Encoded], pad_id: int, with_target: bool) -> tuple[Any, list[int]]:
    """Final hidden states (after the last norm) of rest (+ target) for each row, the prefix run once.

    Returns (hidden [B, S, H], lengths): row b's own tokens are hidden[b, :lengths[b]]; padding sits at the
    end, so causal attention keeps it from touching any real token and no attention mask is needed.
    """
    import torch

    prefix = batch[0].prefix
    assert all(e.prefix == prefix for e in batch), "a batch shares one prefix"
    seqs = [e.rest + (e.target if with_target else ()) for e in batch]
    lengths = [len(s) for s in seqs]
    width = max(lengths)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    for b, seq in enumerate(seqs):
        ids[b, : len(seq)] = torch.tensor(seq, dtype=torch.long)
    cache = model.model(input_ids=torch.tensor([prefix]), use_cache=True).cache
    cache.batch_repeat_interleave(len(batch))
    positions = torch.arange(len(prefix), len(prefix) + width).unsqueeze(0).expand(len(batch), -1)
    hidden = model.model(input_ids=ids, cache=cache, position_ids=positions, use_cache=True)
    return hidden.last_hidden_state, lengths


def target_loss(model: Any, batch: Sequence[Encoded], pad_id: int) -> Any:
    """Mean over rows of the mean cross-entropy of each row's answer tokens."""
    import torch

    hidden, _ = shared_prefix_hidden(model, batch, pad_id, with_target=True)
    rows, positions, labels, owners = [], [], [], []
    for b, e in enumerate(batch):
        for j, token in enumerate(e.target):
            rows.append(b)
            positions.append(len(e.rest) + j - 1)  # the hidden state that predicts target token j
            labels.append(token)
            owners.append(b)
    logits = model.lm_head(hidden[torch.tensor(rows), torch.tensor(positions)])
    per_token = torch.nn.functional.cross_entropy(logits, torch.tensor(labels), reduction="none")
    owner = torch.tensor(owners)
    per_row = torch.zeros(len(batch)).index_add(0, owner, per_token) / torch.bincount(owner, minlength=len(batch))
    return per_row.mean()


def unsafe_probabilities(
    model: Any, batch: Sequence[Encoded], pad_id: int, safe_id: int, unsafe_id: int
) -> list[float]:
    """P(unsafe) / (P(unsafe) + P(safe)) at the answer's first token, as the llama_guard detector scores it."""
    import torch

    with torch.no_grad():
        hidden, lengths = shared_prefix_hidden(model, batch, pad_id, with_target=False)
        last = hidden[torch.arange(len(batch)), torch.tensor(lengths) - 1]
        logits = model.lm_head(last)[:, [safe_id, unsafe_id]]
        return [float(p) for p in torch.softmax(logits, dim=-1)[:, 1]]
