"""`guardproxy trainer versions|promote|rollback ...`: the model registry from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TextIO

from guardproxy.trainer.registry import RegistryError, list_versions, promote, rollback

EXIT_OK, EXIT_FAILED = 0, 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="guardproxy trainer", description="Model registry versions and promotion.")
    sub = parser.add_subparsers(dest="command", required=True)
    versions = sub.add_parser("versions", help="List a registry's versions; * marks the one proxies serve.")
    versions.add_argument("registry", help="A registry directory, e.g. models/guard-classifier.")
    versions.add_argument("--json", action="store_true", help="One JSON object per line instead of a table.")
    prom = sub.add_parser("promote", help="Make VERSION the one proxies serve (they pick it up while running).")
    prom.add_argument("registry")
    prom.add_argument("version", help="e.g. v4")
    prom.add_argument("--reason", default="", help="Why, for HISTORY.jsonl.")
    prom.add_argument("--actor", help="Who, for HISTORY.jsonl (default: the OS user).")
    back = sub.add_parser("rollback", help="Back to the previously promoted version, or to --to VERSION.")
    back.add_argument("registry")
    back.add_argument("--to", help="A version to go back to (default: the one promoted before the current).")
    back.add_argument("--reason", default="")
    back.add_argument("--actor")
    return parser


def cli_main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    args = build_parser().parse_args(argv)
    try:
        if args.command == "versions":
            return _print_versions(args.registry, as_json=args.json, out=out, err=err)
        if args.command == "promote":
            entry = promote(args.registry, args.version, reason=args.reason, actor=args.actor)
        else:
            entry = rollback(args.registry, args.to, reason=args.reason, actor=args.actor)
    except RegistryError as exc:
        print(f"guardproxy trainer {args.command}: {exc}", file=err)
        return EXIT_FAILED
    print(json.dumps(entry.to_dict(), sort_keys=True), file=out)
    return EXIT_OK


def _print_versions(registry: str, *, as_json: bool, out: TextIO, err: TextIO) -> int:
    versions = list_versions(registry)
    if not versions:
        print(f"guardproxy trainer versions: no versions in {registry}", file=err)
        return EXIT_FAILED
    for info in versions:
        if as_json:
            print(json.dumps(info.to_dict(), sort_keys=True), file=out)
            continue
        summary = "; ".join(
            f"{name} " + " ".join(f"{k}={v:.3f}" for k, v in m.items()) for name, m in info.metrics.items() if m
        )
        print(f"{'*' if info.current else ' '} {info.version:<5} {info.created:<25} {summary}", file=out)
    return EXIT_OK
