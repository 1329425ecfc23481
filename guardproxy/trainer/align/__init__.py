"""Alignment training of a local chat model: SFT on a safety dataset, DPO on `revise` preference pairs.

`guardproxy trainer sft|dpo --config FILE.yaml` (needs the `trainer` extra). Both fine-tune a LoRA adapter
with TRL, checkpoint and resume, then compare the tuned model with its base on refusals.
"""
