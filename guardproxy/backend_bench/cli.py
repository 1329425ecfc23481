"""Command-line wiring of `guardproxy bench backends` (needs the `bench` extra: httpx, matplotlib)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any


def add_bench_parser(subparsers: Any) -> None:
    """Adds `bench backends` to the `guardproxy` command's subparsers."""
    bench = subparsers.add_parser("bench", help="Benchmarks.").add_subparsers(dest="bench_command", required=True)
    backends = bench.add_parser(
        "backends",
        help="Per model: time to first token, tokens/s, latency p50/p99 at concurrency 1 and 4, guard overhead.",
    )
    backends.add_argument("--policy", required=True, type=Path, help="Policy whose models are measured.")
    backends.add_argument("--models", help="Comma-separated model names (default: every model of the policy).")
    backends.add_argument("--prompts", type=Path, help="Prompts: JSONL with a 'prompt' field, or one per line.")
    backends.add_argument("--requests", type=int, default=8, help="Requests per model, mode and concurrency.")
    backends.add_argument("--max-tokens", type=int, default=64, help="max_tokens of every request.")
    backends.add_argument("--concurrency", type=int, nargs="+", default=[1, 4], help="Concurrency levels.")
    backends.add_argument("--json", type=Path, default=Path("bench-backends.json"), help="Where to write the JSON.")
    backends.add_argument("--plot", type=Path, default=Path("bench-backends.png"), help="Where to write the chart.")


# What `guardproxy bench` imports beyond the serving stack: the `bench` extra.
_BENCH_EXTRA = frozenset({"httpx", "matplotlib"})


def run_bench(args: argparse.Namespace) -> int:
    try:
        import matplotlib  # noqa: F401 - checked before the benchmark runs, not after it

        from guardproxy.backend_bench.backends import (
            BenchSettings,
            load_prompts,
            render_table,
            run_backends_bench,
            write_plot,
        )
    except ModuleNotFoundError as exc:
        if exc.name not in _BENCH_EXTRA:
            raise
        print(
            f"guardproxy bench: needs the `bench` extra ({exc.name} is not installed): pip install 'guardproxy[bench]'",
            file=sys.stderr,
        )
        return 2
    from guardproxy.errors import PolicyInvalid

    settings = BenchSettings(
        policy_path=args.policy,
        models=[m.strip() for m in args.models.split(",") if m.strip()] if args.models else None,
        prompts=load_prompts(args.prompts),
        requests=args.requests,
        max_tokens=args.max_tokens,
        concurrency=tuple(args.concurrency),
    )
    try:
        report = asyncio.run(run_backends_bench(settings))
    except PolicyInvalid as exc:
        print(f"guardproxy: {exc}", file=sys.stderr)
        return 2
    print(render_table(report))
    args.json.write_text(report.to_json())
    write_plot(report, args.plot)
    print(f"\nwrote {args.json} and {args.plot}")
    return 0 if report.ok else 1
