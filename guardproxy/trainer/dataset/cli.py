"""`guardproxy trainer dataset build|list|diff|export` (also `python -m guardproxy.trainer.dataset`)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from guardproxy.audit.store import UnsupportedStore
from guardproxy.trainer.dataset.build import build
from guardproxy.trainer.dataset.config import DatasetBuildConfig, load_config
from guardproxy.trainer.dataset.export import export
from guardproxy.trainer.dataset.snapshot import SnapshotInfo, SnapshotNotFound, diff, list_snapshots, resolve

EXIT_OK = 0
EXIT_USAGE = 2
_PROG = "guardproxy trainer dataset"
# Top-level scalars a build may override on the command line (paths are then relative to the cwd).
_BUILD_OVERRIDES = ("since", "output_dir", "audit_store", "benign_ratio", "max_records")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=_PROG, description="Versioned training-data snapshots from the audit log.")
    sub = parser.add_subparsers(dest="command", required=True)

    p_build = sub.add_parser("build", help=DatasetBuildConfig.__doc__)
    p_build.add_argument("--config", required=True, help="YAML file with the DatasetBuildConfig fields.")
    p_build.add_argument("--since", help="Override `since` (30m, 7d, ISO-8601).")
    p_build.add_argument("--output_dir", help="Override `output_dir` (the snapshot registry).")
    p_build.add_argument("--audit_store", help="Override `audit_store`.")
    p_build.add_argument("--benign_ratio", type=float, help="Override `benign_ratio`.")
    p_build.add_argument("--max_records", type=int, help="Override `max_records`.")

    p_list = sub.add_parser("list", help="Snapshots with their counts.")
    p_list.add_argument("--root", default="datasets", help="Snapshot registry directory.")
    p_list.add_argument("--json", action="store_true", help="One JSON object per snapshot.")

    p_diff = sub.add_parser("diff", help="Texts added/removed/relabelled from snapshot A to B; label counts.")
    p_diff.add_argument("a", help="Snapshot: a directory, <name>/<sNNN>, or <name> (its latest).")
    p_diff.add_argument("b", help="Snapshot, as A.")
    p_diff.add_argument("--root", default="datasets", help="Snapshot registry directory.")
    p_diff.add_argument("--json", action="store_true", help="The whole diff as JSON, texts included.")
    p_diff.add_argument("--show", type=int, default=5, help="Texts listed per change kind in the summary.")

    p_export = sub.add_parser("export", help="A snapshot as JSONL, or as an Argilla v2 dataset directory.")
    p_export.add_argument("snapshot", help="Snapshot: a directory, <name>/<sNNN>, or <name> (its latest).")
    p_export.add_argument("--format", choices=("jsonl", "argilla"), default="jsonl")
    p_export.add_argument("--out", required=True, help="jsonl: a file; argilla: a new directory.")
    p_export.add_argument("--root", default="datasets", help="Snapshot registry directory.")
    p_export.add_argument("--include-candidates", action="store_true", help="Add the output-feedback candidates.")
    return parser


def cli_main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    args = build_parser().parse_args(argv)
    try:
        if args.command == "build":
            return _build(args, out)
        if args.command == "list":
            return _list(args, out)
        if args.command == "diff":
            return _diff(args, out)
        return _export(args, out)
    except (ValueError, FileNotFoundError, FileExistsError, SnapshotNotFound, UnsupportedStore) as exc:
        print(f"{_PROG} {args.command}: {exc}", file=err)
        return EXIT_USAGE


def _build(args: argparse.Namespace, out: TextIO) -> int:
    overrides = {k: getattr(args, k) for k in _BUILD_OVERRIDES if getattr(args, k) is not None}
    info = build(load_config(args.config, overrides))
    m = info.manifest
    print(
        f"{info.ref}: {m['counts']['records']} records ({_labels(m)}), {m['counts']['candidates']} candidates", file=out
    )
    balance = m["balance"]
    if balance["shortfall"]:
        print(f"  warning: {balance['shortfall']} negatives short of benign_ratio (add base datasets)", file=out)
    print(f"  dropped: {m['dropped']}", file=out)
    print(f"  written to {info.path}", file=out)
    return EXIT_OK


def _labels(manifest: dict[str, Any]) -> str:
    return ", ".join(f"{label} {n}" for label, n in manifest["counts"]["by_label"].items()) or "none"


def _list(args: argparse.Namespace, out: TextIO) -> int:
    for info in list_snapshots(Path(args.root)):
        m = info.manifest
        if args.json:
            row = {"ref": info.ref, "path": str(info.path), "created": m.get("created"), "parent": m.get("parent")}
            print(json.dumps({**row, "counts": m.get("counts", {})}), file=out)
        else:
            parent = m.get("parent") or "-"
            records, candidates = m["counts"]["records"], m["counts"]["candidates"]
            print(f"{info.ref}\t{m.get('created')}\tparent {parent}\t{records} records ({_labels(m)})"
                  f"\t{candidates} candidates", file=out)  # fmt: skip
    return EXIT_OK


def _diff(args: argparse.Namespace, out: TextIO) -> int:
    root = Path(args.root)
    result = diff(resolve(args.a, root), resolve(args.b, root))
    if args.json:
        print(json.dumps(result.as_json(), ensure_ascii=False), file=out)
        return EXIT_OK
    print(f"{result.a} -> {result.b}: +{len(result.added)} -{len(result.removed)} "
          f"~{len(result.relabelled)} relabelled", file=out)  # fmt: skip
    for label, delta in result.label_delta.items():
        print(f"  {label}: {result.labels_a.get(label, 0)} -> {result.labels_b.get(label, 0)} ({delta:+d})", file=out)
    for mark, rows in (("+", result.added), ("-", result.removed), ("~", result.relabelled)):
        for row in rows[: args.show]:
            print(f"  {mark} {row['hash'][:12]} [{row['label']}] {_preview(str(row['text']))}", file=out)
    return EXIT_OK


def _preview(text: str, width: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _export(args: argparse.Namespace, out: TextIO) -> int:
    info: SnapshotInfo = resolve(args.snapshot, Path(args.root))
    count = export(info, args.format, Path(args.out), include_candidates=args.include_candidates)
    print(f"{info.ref}: {count} records -> {args.out} ({args.format})", file=out)
    return EXIT_OK
