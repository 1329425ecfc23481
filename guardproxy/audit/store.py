"""The audit store seam. SQLite is the embedded default; a networked store (PostgreSQL) for
stateless replicas implements the same protocol, so callers never change."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

from guardproxy.audit.records import AuditRecord
from guardproxy.audit.sqlite import SQLiteAuditStore


@runtime_checkable
class AuditStore(Protocol):
    def write_batch(self, records: Sequence[AuditRecord]) -> None:
        """Write all records in one transaction, or none of them (raise on failure).

        Synchronous: called from the audit sink's writer thread, never from the event loop.
        """
        ...

    def query(
        self, *, blocked_only: bool = False, since: float | None = None, limit: int | None = None
    ) -> Iterator[AuditRecord]:
        """Records oldest first; `since` is a unix timestamp (inclusive)."""
        ...

    def get(self, request_id: str) -> AuditRecord | None: ...

    def close(self) -> None: ...


class UnsupportedStore(ValueError):
    """`open_store` got a URL whose scheme has no implementation."""


def open_store(path_or_url: str) -> AuditStore:
    """Open (creating if needed) the audit store named by a file path or URL.

    A plain path or `sqlite:///path` opens the embedded SQLite store.
    """
    scheme, sep, rest = path_or_url.partition("://")
    if not sep:
        return SQLiteAuditStore(path_or_url)
    scheme = scheme.lower()
    if scheme == "sqlite":
        # sqlite:///relative.db and sqlite:////abs/path.db, as in SQLAlchemy URLs.
        if not rest.startswith("/"):
            raise UnsupportedStore(f"audit store URL {path_or_url!r}: expected sqlite:///path/to/audit.db")
        return SQLiteAuditStore(rest[1:])
    if scheme in {"postgres", "postgresql"}:
        raise UnsupportedStore(
            f"audit store {scheme}:// is not implemented yet; use a SQLite file path (audit.path) for now"
        )
    raise UnsupportedStore(f"audit store URL scheme {scheme!r} is not supported; use a SQLite file path")
