"""`guardproxy trainer sft|dpo --config FILE.yaml [--max-steps N] [--output-dir DIR] [--no-resume]`.

Exit codes: 0 trained and reported, 2 a config or data error (message on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from guardproxy.trainer.align.config import ConfigError, DPORunConfig, SFTRunConfig, help_text, load_config
from guardproxy.trainer.align.data import DataError

_CONFIGS: dict[str, type[SFTRunConfig] | type[DPORunConfig]] = {"sft": SFTRunConfig, "dpo": DPORunConfig}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="guardproxy trainer", description="Align a local chat model: SFT on a safety set, DPO on preference pairs."
    )
    parser.add_argument("method", choices=sorted(_CONFIGS), help="sft: supervised; dpo: preference pairs.")
    parser.add_argument("--config", help="YAML config (see --help-config).")
    parser.add_argument("--max-steps", type=int, help="Override max_steps (a short pilot run).")
    parser.add_argument("--output-dir", help="Override output_dir.")
    parser.add_argument("--no-resume", action="store_true", help="Start over even if checkpoints exist.")
    parser.add_argument("--help-config", action="store_true", help="List every config key with its meaning.")
    return parser


def cli_main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cls = _CONFIGS[args.method]
    if args.help_config:
        print("\n".join(help_text(cls)))
        return 0
    if not args.config:
        print("guardproxy trainer: --config is required", file=sys.stderr)
        return 2
    overrides = {
        "max_steps": args.max_steps,
        "output_dir": args.output_dir,
        "resume": False if args.no_resume else None,
    }
    if args.method == "sft" and _is_guard_config(args.config):
        return _guard_sft(args.config, args.output_dir)
    try:
        config: SFTRunConfig | DPORunConfig = load_config(cls, args.config, overrides)
        from guardproxy.trainer.align.train import run  # torch, transformers, trl: only when training

        report = run(config)
    except (ConfigError, DataError) as exc:
        print(f"guardproxy trainer {args.method}: {exc}", file=sys.stderr)
        return 2
    summary = {k: report[k] for k in ("method", "global_step", "resumed_from", "adapter_dir", "merged_dir")}
    if report["evaluation"]:
        summary["refusal_rate"] = {k: report["evaluation"][k]["refusal_rate"] for k in ("base", "tuned")}
        summary["over_refusal_rate"] = {k: report["evaluation"][k]["over_refusal_rate"] for k in ("base", "tuned")}
    print(json.dumps(summary, indent=2))
    return 0


def _is_guard_config(path: str) -> bool:
    """`format: llama_guard` at the top of the YAML selects the guard-model trainer (trainer/guard_model)."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False  # the regular loader reports the problem with its file:line message
    return isinstance(data, dict) and data.get("format") == "llama_guard"


def _guard_sft(path: str, output_dir: str | None) -> int:
    from guardproxy.trainer.guard_model.base_model import BaseModelError
    from guardproxy.trainer.guard_model.config import load_guard_config
    from guardproxy.trainer.guard_model.examples import GuardDataError

    try:
        config = load_guard_config(path, {"output_dir": output_dir})
        from guardproxy.trainer.guard_model.train import run  # torch and transformers: only when training

        report = run(config, path)
    except (ConfigError, GuardDataError, BaseModelError) as exc:
        print(f"guardproxy trainer sft: {exc}", file=sys.stderr)
        return 2
    print(
        json.dumps(
            {k: report[k] for k in ("steps", "train_seconds", "heldout_before", "heldout_after", "gguf")}, indent=2
        )
    )
    return 0
