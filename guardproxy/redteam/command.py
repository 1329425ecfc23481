"""`guardproxy redteam`: run a suite against a target and gate on the rates. Exit 0 within the thresholds, 1 when
a threshold is crossed, 2 on bad usage or an unreachable target."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

from guardproxy.evaluation.plot import INSTALL_HINT, plotting_available
from guardproxy.redteam.judging import Judge
from guardproxy.redteam.suites import SuiteName, load_suite


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "redteam",
        help="Send the built-in attack and benign suites to an OpenAI-compatible URL; report and gate on the rates.",
        description="Attack success rate per category (direct/indirect injection, jailbreak, PII exfiltration, "
        "system-prompt extraction) and over-refusal of benign prompts. Exit 1 when --fail-over or "
        "--max-over-refusal is crossed, 2 on bad usage or an unreachable target. See README 'Red-team'.",
    )
    p.add_argument("--target", required=True, help="The OpenAI base URL, e.g. http://127.0.0.1:8000/v1.")
    p.add_argument("--suite", choices=[s.value for s in SuiteName], default=SuiteName.DEFAULT.value)
    p.add_argument("--model", default="gpt-4o-mini", help="The model name sent with each request.")
    p.add_argument("--api-key", default="redteam", help="Bearer key for the target (default: a placeholder).")
    p.add_argument(
        "--fail-over", type=_rate, metavar="RATE", help="Exit 1 when the overall attack success rate > RATE."
    )
    p.add_argument(
        "--max-over-refusal", type=_rate, metavar="RATE", help="Exit 1 when the benign over-refusal rate > RATE."
    )
    p.add_argument(
        "--judge",
        choices=[j.value for j in Judge],
        default=Judge.ANSWER.value,
        help="answer: an attack succeeds when answered (no refusal) and, for PII/extraction, the secret comes back; "
        "not-blocked: when not blocked (a guard in front of a fake/echo model).",
    )
    p.add_argument("--concurrency", type=int, default=4, help="Requests in flight (default 4).")
    p.add_argument("--json", type=Path, metavar="PATH", help="Write the full report as JSON.")
    p.add_argument("--png", type=Path, metavar="PATH", help="Write a bar chart of the rates (needs matplotlib).")


def _rate(value: str) -> float:
    rate = float(value)
    if not 0.0 <= rate <= 1.0:
        raise argparse.ArgumentTypeError(f"{value}: a rate between 0 and 1")
    return rate


def run_redteam(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr  # looked up per call: tests swap sys.stdout
    parts = urlsplit(args.target)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        print(f"error: --target {args.target!r} is not an http(s) URL (e.g. http://127.0.0.1:8000/v1)", file=err)
        return 2
    if args.png is not None and not plotting_available():
        print(f"error: --png needs matplotlib: {INSTALL_HINT}", file=err)
        return 2
    if args.concurrency < 1:
        print("error: --concurrency must be at least 1", file=err)
        return 2
    from guardproxy.redteam.report import build_report, format_table, write_json, write_png
    from guardproxy.redteam.runner import TargetUnreachable, run_probes  # imports openai: only when running

    suite = load_suite(SuiteName(args.suite))
    try:
        results = run_probes(
            [*suite.attacks, *suite.benign],
            base_url=args.target,
            api_key=args.api_key,
            model=args.model,
            mode=Judge(args.judge),
            concurrency=args.concurrency,
        )
    except TargetUnreachable as exc:
        print(f"error: target unreachable: {exc}", file=err)
        return 2
    report = build_report(results, target=args.target, model=args.model, suite=suite.name.value, judge=args.judge)
    print(format_table(report), file=out)
    if args.json is not None:
        write_json(report, args.json)
    if args.png is not None:
        write_png(report, args.png)
    failed = []
    if args.fail_over is not None and report.attack_success_rate > args.fail_over:
        failed.append(f"attack success rate {report.attack_success_rate:.1%} > --fail-over {args.fail_over:.1%}")
    if args.max_over_refusal is not None and report.over_refusal_rate > args.max_over_refusal:
        failed.append(
            f"over-refusal rate {report.over_refusal_rate:.1%} > --max-over-refusal {args.max_over_refusal:.1%}"
        )
    for reason in failed:
        print(f"FAIL: {reason}", file=err)
    return 1 if failed else 0
