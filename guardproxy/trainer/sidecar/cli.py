"""`guardproxy trainer run --config FILE [--watch]` (also `python -m guardproxy.trainer.sidecar`)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import TextIO

from guardproxy.audit.store import UnsupportedStore
from guardproxy.trainer.registry import RegistryError
from guardproxy.trainer.sidecar.config import SidecarConfig, load_config
from guardproxy.trainer.sidecar.report import RunReport

EXIT_OK = 0
EXIT_USAGE = 2
_PROG = "guardproxy trainer run"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=_PROG, description=SidecarConfig.__doc__)
    parser.add_argument("--config", required=True, help="YAML file with the SidecarConfig fields.")
    parser.add_argument("--watch", action="store_true", help="Keep running: a pass every poll_interval seconds.")
    parser.add_argument("--max-runs", type=int, default=None, help="--watch: stop after this many passes.")
    parser.add_argument("--min_new_events", type=int, help="Override `min_new_events`.")
    parser.add_argument("--poll_interval", type=float, help="Override `poll_interval` (seconds).")
    return parser


def _line(report: RunReport) -> str:
    where = f" -> {report.report_dir}" if report.report_dir else ""
    if report.status == "skipped":
        return f"{report.run_id}: skipped ({report.new_events} new events){where}"
    reasons = "; ".join(report.gate.get("reasons", []))
    return (
        f"{report.run_id}: {report.status} {report.candidate_version} "
        f"(current {report.current_version}){': ' + reasons if reasons else ''}{where}"
    )


def cli_main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    from guardproxy.trainer.sidecar.run import run_once, watch

    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    overrides = {k: getattr(args, k) for k in ("min_new_events", "poll_interval") if getattr(args, k) is not None}
    try:
        cfg = load_config(args.config, overrides)
        reports = watch(cfg, max_runs=args.max_runs) if args.watch else [run_once(cfg)]
    except (ValueError, FileNotFoundError, UnsupportedStore, RegistryError) as exc:
        print(f"{_PROG}: {exc}", file=err)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{_PROG}: interrupted; an unfinished run resumes next time", file=err)
        return 130
    for report in reports:
        print(_line(report), file=out)
    return EXIT_OK
