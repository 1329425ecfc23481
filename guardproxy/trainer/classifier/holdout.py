"""`guardproxy train holdout --config FILE.yaml --out FILE.jsonl`: the held-out records a training config set
aside, as `guardproxy eval` input — so anyone can re-measure a shipped model without retraining it.

The split is a stable hash of each record (or its group), so the same config always yields the same records.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from guardproxy.trainer.classifier.config import load_config
from guardproxy.trainer.classifier.data import load_examples
from guardproxy.trainer.config_load import ConfigError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="guardproxy train holdout", description=__doc__)
    parser.add_argument("--config", required=True, help="The training config (YAML) whose split to export.")
    parser.add_argument("--out", required=True, help="JSONL file to write ('-' for standard output).")
    parser.add_argument(
        "--part",
        choices=["test", "calibration", "heldout"],
        default="test",
        help="test: the half the model card reports; calibration: the half thresholds were chosen on; heldout: both.",
    )
    parser.add_argument(
        "--group",
        default=None,
        help="sigmoid models: keep only records whose labels in this group are known, labelled "
        "`unsafe`/`safe` by whether any of them is true (e.g. --group moderation).",
    )
    return parser


def cli_main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"guardproxy train holdout: {exc}", file=sys.stderr)
        return 2
    examples, _ = load_examples(cfg)
    parts = {"test", "calibration"} if args.part == "heldout" else {args.part}
    members: list[int] = []
    if args.group is not None:
        if args.group not in cfg.groups:
            print(f"--group {args.group!r}: the config's groups are {sorted(cfg.groups)}", file=sys.stderr)
            return 2
        members = [cfg.labels.index(m) for m in cfg.groups[args.group]]
    out = sys.stdout if args.out == "-" else open(args.out, "w", encoding="utf-8")  # noqa: SIM115
    written = 0
    try:
        for e in examples:
            if e.split not in parts:
                continue
            record: dict[str, object] = {"text": e.text, "label": e.source_label, "dataset": e.dataset}
            if members:
                if any(e.targets[i] < 0 for i in members):
                    continue
                true = [cfg.labels[i] for i in members if e.targets[i] == 1]
                record |= {"label": "unsafe" if true else "safe", "source_label": e.source_label, "categories": true}
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            written += 1
    finally:
        if out is not sys.stdout:
            out.close()
    print(f"wrote {written} records", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(cli_main())
