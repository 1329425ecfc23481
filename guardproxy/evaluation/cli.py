"""`guardproxy eval`: measure a policy's detectors on labeled JSONL data.

Wired into the main command line by `add_eval_parser(subparsers)` + `run_eval(args)`; also runs
alone as `python -m guardproxy.evaluation.cli ...`. Exit 0 when the evaluation ran (even if a
detector failed on some records: the report counts them), 2 on bad arguments, policy or data.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_DESCRIPTION = """\
Run the named detectors of a policy over a JSONL dataset and report how well they do.

Records are {"text", "label", ...} (label mode) or, for PII, {"text", "spans": [{"start", "end",
"entity_type"}, ...]} (span mode). A detector is judged at its configured threshold: the threshold
of the policy step that uses it (the lowest one if several steps do; 0.5 if no step does), and
flagged = any named detector fires there. Scores also give ROC-AUC and PR-AUC.
"""


def _epilog() -> str:
    from guardproxy.evaluation.data import DEFAULT_POSITIVE_LABELS

    by_labels: dict[str, list[str]] = {}
    for detector_type, labels in DEFAULT_POSITIVE_LABELS.items():
        by_labels.setdefault(",".join(labels) if labels else "(span mode)", []).append(detector_type)
    defaults = "; ".join(f"{labels} for {', '.join(types)}" for labels, types in by_labels.items())
    return textwrap.fill(
        f"Default positive labels by detector type: {defaults}. Other types need --positive-labels. "
        "Every label that is not positive counts as negative, and the report gives each label's flag rate. "
        "Exit 0 when the evaluation ran, 2 on bad arguments, policy or data. See docs/eval.md.",
        width=100,
    )


def add_eval_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `eval` to a subparsers object (the result of `ArgumentParser.add_subparsers()`)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "eval",
        help="Measure detectors on labeled JSONL data (precision, recall, F1, FPR, AUC, latency).",
        description=_DESCRIPTION,
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_arguments(parser)
    return parser


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--policy", required=True, type=Path, help="Policy YAML that defines the detectors.")
    p.add_argument("--detector", required=True, metavar="NAME[,NAME...]", help="Keys of the policy's `detectors:`.")
    p.add_argument("--data", required=True, type=Path, metavar="FILE.jsonl", help="Labeled records, one per line.")
    p.add_argument("--stage", choices=["input", "output"], default="input", help="Checked as a prompt or an answer.")
    p.add_argument(
        "--role", help="Role of the checked text (default: user for input, assistant for output; e.g. tool)."
    )
    p.add_argument(
        "--predictions", required=True, type=Path, metavar="OUT.jsonl", help="One prediction per record, in order."
    )
    p.add_argument("--report", type=Path, metavar="OUT.json", help="Write the full metrics report here.")
    p.add_argument("--plot", type=Path, metavar="OUT.png", help='PR curves + latency histogram (needs ".[eval]").')
    p.add_argument("--positive-labels", metavar="A,B", help="Labels that count as positive (label mode).")
    p.add_argument(
        "--entity-map",
        metavar="A=B,...",
        help="Span mode: rename the dataset's entity types to the detector's (e.g. IBAN=IBAN_CODE).",
    )
    p.add_argument(
        "--entities",
        metavar="A,B",
        help="Span mode: entity types to score (default: those the detectors' configs list, else all).",
    )
    p.add_argument("--group-by", metavar="FIELD", help="Also break metrics down by this record field (e.g. source).")
    p.add_argument(
        "--concurrency",
        type=int,
        default=4,
        metavar="N",
        help="Records in flight at once (default 4). Latency is each detect call's wall time, so above 1 it "
        "includes waiting for CPU shared with the other records; use 1 for isolated latency.",
    )


def run_eval(args: argparse.Namespace) -> int:
    """Run `guardproxy eval` for parsed arguments; returns the exit code."""
    from guardproxy.errors import GuardproxyError
    from guardproxy.evaluation.command import run
    from guardproxy.evaluation.data import DataError
    from guardproxy.evaluation.runner import SetupError

    try:
        return asyncio.run(run(args))
    except (DataError, SetupError) as exc:
        print(f"guardproxy eval: {exc}", file=sys.stderr)
        return 2
    except GuardproxyError as exc:
        print(f"guardproxy eval: {exc.message}", file=sys.stderr)
        return 2


def eval_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="guardproxy eval",
        description=_DESCRIPTION,
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_arguments(parser)
    return run_eval(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(eval_main())
