"""The model registry: versions of one model in `models/<name>/vN/`, the promoted one named by `CURRENT`.

Promotion and rollback only move the pointer (one atomic rename), so every replica reading the directory
switches at once and an earlier version is always one command away; the versions themselves are never
touched. Every move is appended to `HISTORY.jsonl` (when, what, from, to, why, who). A running proxy
notices the pointer move and swaps the model in without dropping requests (`guardproxy.policies.watcher`).
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from guardproxy.core import JSON
from guardproxy.detectors.model_card import ModelCard
from guardproxy.detectors.model_files import (
    CARD_FILE,
    CURRENT_FILE,
    read_pointer,
    resolve_model_dir,
    version_dirs,
    version_number,
)
from guardproxy.errors import DetectorFailed

HISTORY_FILE = "HISTORY.jsonl"
_LOCK_FILE = ".registry.lock"
_SUMMARY_METRICS = ("precision", "recall", "f1", "fpr", "roc_auc")
Action = Literal["promote", "rollback"]


class RegistryError(Exception):
    """A registry operation that cannot be done; the message says why, for the command line."""


@dataclass(frozen=True, slots=True)
class VersionInfo:
    version: str  # "v3"
    path: Path
    created: str  # ISO-8601: the card's `created`, else the directory's modification time
    metrics: dict[str, dict[str, float]]  # {"overall": {...}} (softmax) or {group: {...}} (sigmoid)
    current: bool  # the version a proxy serves now

    def to_dict(self) -> JSON:
        return {
            "version": self.version,
            "path": str(self.path),
            "created": self.created,
            "metrics": self.metrics,
            "current": self.current,
        }


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    ts: float
    action: Action
    from_version: str | None
    to_version: str
    reason: str
    actor: str

    def to_dict(self) -> JSON:
        return {
            "ts": self.ts,
            "action": self.action,
            "from": self.from_version,
            "to": self.to_version,
            "reason": self.reason,
            "actor": self.actor,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> HistoryEntry:
        return cls(raw["ts"], raw["action"], raw["from"], raw["to"], raw.get("reason", ""), raw.get("actor", ""))


def current_version(registry: str | Path) -> str | None:
    """The version a proxy would serve now (the pointer, else the newest), or None for an empty registry."""
    try:
        return resolve_model_dir(Path(registry)).name
    except DetectorFailed:
        return None


def list_versions(registry: str | Path) -> list[VersionInfo]:
    registry = Path(registry)
    current = current_version(registry)
    return [
        VersionInfo(path.name, path, *_card_summary(path), current=path.name == current)
        for path in version_dirs(registry)
    ]


def history(registry: str | Path) -> list[HistoryEntry]:
    path = Path(registry) / HISTORY_FILE
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [HistoryEntry.from_dict(json.loads(line)) for line in lines if line.strip()]


def promote(registry: str | Path, version: str, *, reason: str = "", actor: str | None = None) -> HistoryEntry:
    """Make `version` the one proxies serve."""
    registry = _existing(registry)
    with _locked(registry):
        return _move(registry, version, "promote", reason, actor)


def rollback(
    registry: str | Path, to: str | None = None, *, reason: str = "", actor: str | None = None
) -> HistoryEntry:
    """Back to `to`, or to the version that was promoted before the current one."""
    registry = _existing(registry)
    with _locked(registry):
        return _move(registry, to or _previous_version(registry), "rollback", reason, actor)


def _existing(registry: str | Path) -> Path:
    registry = Path(registry)
    if not registry.is_dir():
        raise RegistryError(f"{registry}: no such registry directory")
    return registry


def _move(registry: Path, version: str, action: Action, reason: str, actor: str | None) -> HistoryEntry:
    """Point `CURRENT` at `version` and record it. The caller holds the registry lock."""
    if version_number(version) is None:
        raise RegistryError(f"{version!r} is not a version name (v1, v2, ...)")
    if not (registry / version / CARD_FILE).is_file():
        known = ", ".join(p.name for p in version_dirs(registry)) or "none"
        raise RegistryError(f"{registry}: no version {version} with a {CARD_FILE} (versions: {known})")
    before = current_version(registry)
    if before == version and read_pointer(registry) == version:
        raise RegistryError(f"{registry}: {version} is already the current version")
    _write_pointer(registry, version)
    entry = HistoryEntry(time.time(), action, before, version, reason, actor or _whoami())
    _append_history(registry, entry)
    return entry


def _previous_version(registry: Path) -> str:
    """Replays the history as a stack of promotions: a rollback pops back to where it went."""
    stack: list[str] = []
    for entry in history(registry):
        if not stack and entry.from_version is not None:
            stack.append(entry.from_version)
        if entry.action == "rollback" and entry.to_version in stack:
            del stack[stack.index(entry.to_version) + 1 :]
        else:
            stack.append(entry.to_version)
    current = current_version(registry)
    while stack and stack[-1] == current:
        stack.pop()
    if not stack:
        raise RegistryError(f"{registry}: no earlier promoted version to roll back to; name one with --to")
    return stack[-1]


def _write_pointer(registry: Path, version: str) -> None:
    # Write-then-rename: a reader sees the old pointer or the new one, never a half-written file.
    tmp = registry / f".{CURRENT_FILE}.{os.getpid()}.tmp"
    with tmp.open("w", encoding="utf-8") as f:
        f.write(version + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, registry / CURRENT_FILE)
    _fsync_dir(registry)


def _append_history(registry: Path, entry: HistoryEntry) -> None:
    with (registry / HISTORY_FILE).open("a", encoding="utf-8") as f:
        f.write(json.dumps(entry.to_dict(), sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _locked(registry: Path) -> Iterator[None]:
    """One writer at a time (two trainers, or a trainer and an operator), across processes."""
    with (registry / _LOCK_FILE).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _whoami() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return f"uid:{os.getuid()}"


def _card_summary(path: Path) -> tuple[str, dict[str, dict[str, float]]]:
    try:
        card = ModelCard.load(path)
    except (OSError, ValueError):  # unreadable, not JSON, or a typed field of the wrong shape (ModelCardInvalid)
        card = ModelCard()
    created = card.created or datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat(timespec="seconds")
    evaluation = card.evaluation
    sections: dict[str, Any] = {"overall": evaluation.get("overall")}
    if isinstance(evaluation.get("groups"), dict):
        sections = {group: g.get("overall") for group, g in evaluation["groups"].items() if isinstance(g, dict)}
    metrics = {
        name: {k: float(m[k]) for k in _SUMMARY_METRICS if isinstance(m.get(k), int | float)}
        for name, m in sections.items()
        if isinstance(m, dict)
    }
    return str(created), metrics
