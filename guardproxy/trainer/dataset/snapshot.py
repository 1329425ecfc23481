"""The snapshot registry: `<root>/<name>/sNNN/` directories with `data.jsonl`, `candidates.jsonl` and
`manifest.json`. Snapshots are immutable: a build writes a temporary directory and renames it into place,
so a reader never sees half a snapshot and two builds cannot take the same number.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from guardproxy.trainer.classifier.data import file_sha256
from guardproxy.trainer.dataset.dedup import text_key

DATA_FILE = "data.jsonl"
CANDIDATES_FILE = "candidates.jsonl"
MANIFEST_FILE = "manifest.json"
_VERSION = re.compile(r"s(\d{3,})")


class SnapshotNotFound(LookupError):
    """A snapshot reference that names no snapshot directory."""


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    name: str
    version: str
    path: Path
    manifest: dict[str, Any]

    @property
    def ref(self) -> str:
        return f"{self.name}/{self.version}"


def versions(series: Path) -> list[str]:
    """Snapshot versions of one series, oldest first."""
    if not series.is_dir():
        return []
    found = [p.name for p in series.iterdir() if _VERSION.fullmatch(p.name) and (p / MANIFEST_FILE).is_file()]
    return sorted(found, key=lambda v: int(v[1:]))


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    count = 0
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")))
            fh.write("\n")
            count += 1
    return count


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:  # not str.splitlines(): texts may hold U+2028 and friends
        for line in fh:
            if line.strip():
                row = json.loads(line)
                if isinstance(row, dict):
                    yield row


def commit_snapshot(
    series: Path, data: list[dict[str, Any]], candidates: list[dict[str, Any]], manifest: dict[str, Any]
) -> SnapshotInfo:
    """Write a new snapshot as the next version of `series`; fills in the manifest's version, parent and files."""
    series.mkdir(parents=True, exist_ok=True)
    staging = series / f".staging-{os.getpid()}"
    staging.mkdir()
    try:
        return _commit(series, staging, data, candidates, manifest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _commit(
    series: Path, staging: Path, data: list[dict[str, Any]], candidates: list[dict[str, Any]], manifest: dict[str, Any]
) -> SnapshotInfo:
    files: dict[str, Any] = {}
    for filename, rows in ((DATA_FILE, data), (CANDIDATES_FILE, candidates)):
        count = write_jsonl(staging / filename, rows)
        files[filename] = {"records": count, "sha256": file_sha256(staging / filename)}
    while True:
        existing = versions(series)
        version = f"s{(int(existing[-1][1:]) + 1) if existing else 1:03d}"
        manifest = {**manifest, "version": version, "parent": existing[-1] if existing else None, "files": files}
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        try:
            staging.rename(series / version)  # atomic; fails if another build took the number first
        except OSError:
            if (series / version).exists():
                continue
            raise
        return SnapshotInfo(series.name, version, series / version, manifest)


def load_info(path: Path) -> SnapshotInfo:
    manifest = json.loads((path / MANIFEST_FILE).read_text(encoding="utf-8"))
    return SnapshotInfo(path.parent.name, path.name, path, manifest)


def list_snapshots(root: Path) -> list[SnapshotInfo]:
    """Every snapshot under `root`, by series name then version."""
    if not root.is_dir():
        return []
    found: list[SnapshotInfo] = []
    for series in sorted(p for p in root.iterdir() if p.is_dir()):
        found.extend(load_info(series / v) for v in versions(series))
    return found


def resolve(ref: str, root: Path) -> SnapshotInfo:
    """`ref` is a snapshot directory, `<name>/<sNNN>` under root, or `<name>` (its latest snapshot)."""
    for candidate in (Path(ref), root / ref):
        if (candidate / MANIFEST_FILE).is_file():
            return load_info(candidate)
        latest = versions(candidate)
        if latest:
            return load_info(candidate / latest[-1])
    raise SnapshotNotFound(f"no snapshot {ref!r} (looked for a directory and under {root})")


def verify(info: SnapshotInfo) -> list[str]:
    """Files whose content no longer matches the manifest's sha256 (empty: intact)."""
    return [
        name
        for name, meta in info.manifest.get("files", {}).items()
        if not (info.path / name).is_file() or file_sha256(info.path / name) != meta.get("sha256")
    ]


@dataclass
class SnapshotDiff:
    """What changed from snapshot `a` to `b`, keyed by the hash of each normalised text."""

    a: str
    b: str
    added: list[dict[str, Any]] = field(default_factory=list)
    removed: list[dict[str, Any]] = field(default_factory=list)
    relabelled: list[dict[str, Any]] = field(default_factory=list)  # same text, other label
    labels_a: dict[str, int] = field(default_factory=dict)
    labels_b: dict[str, int] = field(default_factory=dict)

    @property
    def label_delta(self) -> dict[str, int]:
        names = sorted(set(self.labels_a) | set(self.labels_b))
        return {n: self.labels_b.get(n, 0) - self.labels_a.get(n, 0) for n in names}

    def as_json(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "added": self.added,
            "removed": self.removed,
            "relabelled": self.relabelled,
            "labels_a": self.labels_a,
            "labels_b": self.labels_b,
            "label_delta": self.label_delta,
        }


def _by_key(info: SnapshotInfo) -> dict[str, dict[str, Any]]:
    return {text_key(str(row["text"])): row for row in read_jsonl(info.path / DATA_FILE)}


def diff(a: SnapshotInfo, b: SnapshotInfo) -> SnapshotDiff:
    rows_a, rows_b = _by_key(a), _by_key(b)
    result = SnapshotDiff(a=a.ref, b=b.ref)

    def entry(key: str, row: dict[str, Any]) -> dict[str, Any]:
        return {"hash": key, "label": row.get("label"), "source": row.get("source"), "text": row.get("text")}

    result.added = [entry(k, rows_b[k]) for k in sorted(rows_b.keys() - rows_a.keys())]
    result.removed = [entry(k, rows_a[k]) for k in sorted(rows_a.keys() - rows_b.keys())]
    result.relabelled = [
        {**entry(k, rows_b[k]), "label_was": rows_a[k].get("label")}
        for k in sorted(rows_a.keys() & rows_b.keys())
        if rows_a[k].get("label") != rows_b[k].get("label")
    ]
    result.labels_a = dict(sorted(Counter(str(r.get("label")) for r in rows_a.values()).items()))
    result.labels_b = dict(sorted(Counter(str(r.get("label")) for r in rows_b.values()).items()))
    return result
