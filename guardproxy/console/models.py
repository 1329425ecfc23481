"""The models page: the registries the running detectors serve from, each version's card, the sidecar's
report beside it, a shadow report of a candidate step, and promote / rollback (admins, after a confirmation).

Only registries a running detector loads from can be moved from the console: a form cannot name an arbitrary
directory on the server.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from guardproxy.audit.store import AuditStore, latest_feedback
from guardproxy.detectors.model_files import CARD_FILE, detector_model_dirs
from guardproxy.proxy.runtime import Runtime
from guardproxy.trainer.registry import (
    HistoryEntry,
    RegistryError,
    VersionInfo,
    history,
    list_versions,
    promote,
    rollback,
)
from guardproxy.trainer.shadow_report import ShadowReport, compare

# What the sidecar trainer leaves beside a version it trained (`guardproxy trainer run`), shown when present.
REPORT_FILES = ("report.md", "README.md")
MAX_SHOWN_BYTES = 64 * 1024
SHADOW_RECORDS = 50_000


class MoveInvalid(ValueError):
    """A promote/rollback form that names no known registry or version."""


@dataclass(frozen=True, slots=True)
class VersionView:
    info: VersionInfo
    card: str  # the model card, pretty JSON
    report: str | None  # the sidecar's report beside it, if any


@dataclass(frozen=True, slots=True)
class Registry:
    path: Path
    versions: tuple[VersionView, ...]
    history: tuple[HistoryEntry, ...]


@dataclass(frozen=True, slots=True)
class Move:
    action: str  # "promote" | "rollback"
    registry: Path
    version: str | None  # promote: the version; rollback: None = the previous one
    reason: str


def registries(runtime: Runtime) -> list[Registry]:
    found: dict[Path, None] = {}
    for model_dir in detector_model_dirs(runtime.detectors.values()):
        source = model_dir.source
        registry = source if not (source / CARD_FILE).is_file() else source.parent
        found.setdefault(registry.resolve(), None)
    return [_registry(path) for path in found]


def _registry(path: Path) -> Registry:
    views = tuple(VersionView(info, _card(info.path), _report(info.path)) for info in list_versions(path))
    return Registry(path, views, tuple(history(path)))


def _card(version: Path) -> str:
    try:
        return json.dumps(json.loads((version / CARD_FILE).read_text(encoding="utf-8")), indent=2)
    except (OSError, ValueError) as exc:
        return f"(unreadable card: {exc})"


def _report(version: Path) -> str | None:
    for name in REPORT_FILES:
        path = version / name
        if path.is_file():
            return path.read_bytes()[:MAX_SHOWN_BYTES].decode("utf-8", errors="replace")
    return None


def parse_move(form: Mapping[str, str], known: list[Registry]) -> Move:
    action = form.get("action", "")
    if action not in ("promote", "rollback"):
        raise MoveInvalid(f"action: promote or rollback, got {action!r}")
    chosen = next((r for r in known if str(r.path) == form.get("registry")), None)
    if chosen is None:
        raise MoveInvalid("registry: not a registry the running policy serves from")
    version = form.get("version", "").strip() or None
    if action == "promote" and version not in {v.info.version for v in chosen.versions}:
        raise MoveInvalid(f"version: {version!r} is not a version of {chosen.path}")
    return Move(action, chosen.path, version, form.get("reason", "").strip()[:500])


def apply_move(move: Move, actor: str) -> str:
    try:
        if move.action == "promote":
            assert move.version is not None
            entry = promote(move.registry, move.version, reason=move.reason, actor=f"console:{actor}")
        else:
            entry = rollback(move.registry, move.version, reason=move.reason, actor=f"console:{actor}")
    except RegistryError as exc:
        raise MoveInvalid(str(exc)) from None
    return f"{entry.action}: {move.registry.name} {entry.from_version or '–'} → {entry.to_version}"


def shadow(store: AuditStore, current: str, candidate: str) -> ShadowReport:
    """`guardproxy trainer shadow-report` over the newest SHADOW_RECORDS records (read without their texts)."""
    from guardproxy.audit.search import RecordFilter

    records = list(store.outlines(RecordFilter(), limit=SHADOW_RECORDS))
    return compare(reversed(records), latest_feedback(store.feedback()), current=current, candidate=candidate)
