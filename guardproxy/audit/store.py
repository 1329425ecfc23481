"""The audit store seam. SQLite is the embedded default; a networked store (PostgreSQL) for
stateless replicas implements the same protocol, so callers never change."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from typing import Protocol, runtime_checkable

from guardproxy.audit.feedback import Feedback
from guardproxy.audit.preferences import Preference
from guardproxy.audit.records import AuditRecord
from guardproxy.audit.search import OutcomeCount, PageCursor, RecordFilter, RecordOutline

__all__ = ["AuditStore", "UnsupportedStore", "latest_feedback", "open_store"]


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

    def search(
        self, where: RecordFilter, *, before: PageCursor | None = None, limit: int | None = None
    ) -> Iterator[AuditRecord]:
        """Records matching `where`, newest first (by `ts`, then request id); `before` continues a page.

        The rules are `guardproxy.audit.sql_common.search_query`'s. Streams like `query`.
        """
        ...

    def outlines(self, where: RecordFilter, *, limit: int | None = None) -> Iterator[RecordOutline]:
        """As `search`, without the texts (id, time, outcome, steps): for aggregates over many records."""
        ...

    def outcome_counts(self, where: RecordFilter, *, start: float, bucket_s: float) -> list[OutcomeCount]:
        """How many records matching `where` had each outcome, per time bucket: bucket i holds
        `start + i * bucket_s <= ts < start + (i + 1) * bucket_s` (give `where.since` >= `start`)."""
        ...

    def get(self, request_id: str) -> AuditRecord | None: ...

    def add_feedback(self, fb: Feedback) -> int:
        """Store one feedback row (several per request are kept: history) and return its id.

        Stores what it is given: PII is scrubbed before any store, in `guardproxy.audit.scrub` (the
        sink's `add_feedback` does it). Raises `UnknownRequest` when `fb.request_id` is not in the
        audit log. Synchronous and safe from any thread: call it via `asyncio.to_thread` from the event loop.
        """
        ...

    def feedback(
        self,
        *,
        since: float | None = None,
        request_id: str | None = None,
        request_ids: Collection[str] | None = None,
    ) -> Iterator[Feedback]:
        """Feedback oldest first (by `ts`, then insertion); `since` is a unix timestamp (inclusive);
        `request_ids`: only feedback on these requests (a page of the review console)."""
        ...

    def add_preference(self, pref: Preference) -> int:
        """Store one (prompt, rejected, chosen) triple of a `revise` step and return its id.

        Stores what it is given (scrubbed before, like feedback). The audit record need not exist yet (the
        proxy stores the triple before the request's record is queued). Synchronous, any thread.
        """
        ...

    def preferences(self, *, since: float | None = None) -> Iterator[Preference]:
        """Triples oldest first (by `ts`, then insertion); `since` is a unix timestamp (inclusive)."""
        ...

    def close(self) -> None: ...


def latest_feedback(items: Iterable[Feedback]) -> dict[str, Feedback]:
    """The feedback that counts for each request id: the latest one (items given oldest first)."""
    latest: dict[str, Feedback] = {}
    for fb in items:
        latest[fb.request_id] = fb
    return latest


class UnsupportedStore(ValueError):
    """`open_store` got a URL whose scheme has no implementation."""


def open_store(path_or_url: str) -> AuditStore:
    """Open (creating if needed) the audit store named by a file path or URL.

    A plain path or `sqlite:///path` opens the embedded SQLite store; `postgresql://` (or `postgres://`)
    a PostgreSQL database (libpq URL; needs the `postgres` extra).
    """
    # Imported here: the implementation imports this module's types, the protocol needs none of it.
    from guardproxy.audit.sqlite import SQLiteAuditStore

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
        try:
            from guardproxy.audit.postgres import PostgresAuditStore
        except ImportError as exc:
            raise UnsupportedStore(
                "a postgresql:// audit store needs psycopg: pip install 'guardproxy[postgres]'"
            ) from exc
        return PostgresAuditStore(path_or_url)
    raise UnsupportedStore(
        f"audit store URL scheme {scheme!r} is not supported; use a SQLite file path or postgresql://"
    )
