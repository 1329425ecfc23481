"""The networked audit store: PostgreSQL, for several proxy replicas sharing one audit log.

Same protocol and semantics as the SQLite store (`guardproxy.audit.sqlite`): records oldest first by
`ts` then insertion (an identity column plays SQLite's rowid), feedback and preferences by `ts` then id,
`UnknownRequest` for feedback on an unknown request. JSON columns are jsonb (searchable with the jsonb
operators); they are written and read as JSON text through the same encoders as SQLite, so both stores
round-trip a record identically.

Thread model, as SQLite's: the writer connection belongs to the thread that first calls `write_batch` (the
audit sink's writer thread); reads, feedback and preferences open a short-lived connection in the calling
thread. A broken writer connection (server restarted, network cut) is dropped and the next `write_batch`
reconnects, so the sink's retries recover by themselves once the server is back.

Needs the `postgres` extra (psycopg 3), imported only when a `postgresql://` URL is opened.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg.rows import dict_row

from guardproxy.audit.feedback import FEEDBACK_LABELS, Feedback
from guardproxy.audit.preferences import Preference
from guardproxy.audit.records import AuditRecord, UnknownRequest
from guardproxy.audit.search import OutcomeCount, PageCursor, RecordFilter, RecordOutline, StepMatch
from guardproxy.audit.sql_common import (
    META_JSON,
    OUTLINE_COLUMNS,
    SEGMENTS_DECODER,
    STEPS_JSON,
    SearchDialect,
    feedback_from_row,
    feedback_query,
    outcome_count_from_row,
    outcome_counts_query,
    outline_from_row,
    preference_from_row,
    preferences_query,
    records_query,
    search_query,
    segments_json,
)
from guardproxy.errors import AuditUnavailable

# A refused connection fails at once; an unreachable host must not hang the sink's writer for minutes.
_CONNECT_TIMEOUT_S = 5
_T = TypeVar("_T")
# Any constant shared by every guardproxy: serialises concurrent openers' migrations (replicas starting together).
_MIGRATION_LOCK = 0x67756172  # "guar"

# Migration N (1-based) takes the schema from version N-1 to N; each is recorded as a row of
# guardproxy_migrations in the transaction that applies it. SQLite needed four steps (and a Python
# function converting pre-segment rows) to reach this schema; a PostgreSQL database starts at it, so its
# history begins here. Later migrations may be SQL or functions of the connection, as in the SQLite store.
_Migration = tuple[str | Callable[[psycopg.Connection[Any]], None], ...]
_MIGRATIONS: tuple[_Migration, ...] = (
    (
        """CREATE TABLE IF NOT EXISTS audit_records (
            seq BIGINT GENERATED ALWAYS AS IDENTITY,  -- insertion order: ties on ts keep it, like SQLite's rowid
            request_id TEXT PRIMARY KEY,
            ts DOUBLE PRECISION NOT NULL,
            client TEXT NOT NULL,
            endpoint TEXT NOT NULL,
            model TEXT NOT NULL,
            backend TEXT NOT NULL,
            stream BOOLEAN NOT NULL,
            outcome TEXT NOT NULL,
            status INTEGER NOT NULL,
            latency_ms DOUBLE PRECISION NOT NULL,
            upstream_latency_ms DOUBLE PRECISION,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            steps JSONB NOT NULL,
            input_text TEXT NOT NULL,
            output_text TEXT NOT NULL,
            error TEXT,
            meta JSONB NOT NULL,
            input_segments JSONB NOT NULL DEFAULT '[]',
            output_segments JSONB NOT NULL DEFAULT '[]'
        )""",
        "CREATE INDEX IF NOT EXISTS audit_records_ts ON audit_records (ts, seq)",
        "CREATE INDEX IF NOT EXISTS audit_records_outcome_ts ON audit_records (outcome, ts, seq)",
        f"""CREATE TABLE IF NOT EXISTS feedback (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            request_id TEXT NOT NULL,
            label TEXT NOT NULL CHECK (label IN ({", ".join(repr(label) for label in FEEDBACK_LABELS)})),
            actor TEXT NOT NULL,
            ts DOUBLE PRECISION NOT NULL,
            note TEXT NOT NULL,
            stage TEXT CHECK (stage IN ('input', 'output')),
            step TEXT
        )""",
        "CREATE INDEX IF NOT EXISTS feedback_request ON feedback (request_id, id)",
        "CREATE INDEX IF NOT EXISTS feedback_ts ON feedback (ts, id)",
        # No FOREIGN KEY: the triple is stored before its request's audit record is written.
        """CREATE TABLE IF NOT EXISTS preferences (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            request_id TEXT NOT NULL,
            ts DOUBLE PRECISION NOT NULL,
            model TEXT NOT NULL,
            step TEXT NOT NULL,
            prompt JSONB NOT NULL,
            rejected TEXT NOT NULL,
            chosen TEXT NOT NULL,
            critique TEXT NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS preferences_ts ON preferences (ts, id)",
        "CREATE INDEX IF NOT EXISTS preferences_request ON preferences (request_id, id)",
    ),
    (
        # The review console's step filters (`steps @> '[{"fired": true, "detector": ...}]'`).
        "CREATE INDEX IF NOT EXISTS audit_records_steps ON audit_records USING GIN (steps jsonb_path_ops)",
    ),
)
SCHEMA_VERSION = len(_MIGRATIONS)

_RECORD_FIELDS = (
    "request_id",
    "ts",
    "client",
    "endpoint",
    "model",
    "backend",
    "stream",
    "outcome",
    "status",
    "latency_ms",
    "upstream_latency_ms",
    "prompt_tokens",
    "completion_tokens",
    "steps",
    "input_text",
    "output_text",
    "error",
    "meta",
    "input_segments",
    "output_segments",
)
_JSON_FIELDS = frozenset({"steps", "meta", "input_segments", "output_segments"})
# PostgreSQL text and jsonb cannot hold NUL (a client may send "\u0000" in a message): it is stored as U+FFFD,
# the one way this store's records differ from SQLite's. Without it the record would be refused and quarantined.
_NUL_REPLACEMENT = "\ufffd"
# A \u0000 escape in JSON text, not preceded by an odd number of backslashes (that would be a literal "\u0000").
_JSON_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")
# JSON goes in and out as text (COPY's text format parses it as jsonb): the encoders SQLite uses write it,
# msgspec decodes the segments typed.
_COPY = f"COPY audit_records ({', '.join(_RECORD_FIELDS)}) FROM STDIN"
_SELECT = "SELECT " + ", ".join(f"{f}::text AS {f}" if f in _JSON_FIELDS else f for f in _RECORD_FIELDS)
_FEEDBACK_COLUMNS = "request_id, label, actor, ts, note, stage, step"
_PREFERENCE_COLUMNS = "request_id, ts, model, step, prompt::text AS prompt, rejected, chosen, critique"


class PostgresAuditStore:
    """`AuditStore` on a PostgreSQL database named by a libpq URL. The schema is created or migrated on open."""

    def __init__(self, url: str) -> None:
        self._url = url  # may hold a password: never logged nor put in an error message
        self._writer: psycopg.Connection[Any] | None = None
        self._writer_thread: int | None = None
        self._closed = False
        self._migrate()

    # -- writing (writer thread only) -------------------------------------------------------

    def write_batch(self, records: Sequence[AuditRecord]) -> None:
        if not records:
            return
        rows = [_row(record) for record in records]
        conn = self._writer_connection()
        try:
            # COPY, not executemany: 22,800 records/s against 18,000 (pipelined INSERTs), batches of 256,
            # interleaved runs on a local server with fsync on; a duplicate id fails the whole batch alike.
            with conn.cursor() as cursor, cursor.copy(_COPY) as copy:
                for row in rows:
                    copy.write_row(row)
            conn.commit()
        except BaseException:
            self._abort(conn)
            raise

    def add_feedback(self, fb: Feedback) -> int:
        """Any thread: a short-lived connection of its own. The existence check and the insert are one statement."""
        self._check_open()
        if fb.label not in FEEDBACK_LABELS:
            raise ValueError(f"feedback label must be one of {', '.join(FEEDBACK_LABELS)}, got {fb.label!r}")
        with _unreachable_as_unavailable(), self._connect() as conn:
            row = conn.execute(
                f"INSERT INTO feedback ({_FEEDBACK_COLUMNS})"
                " SELECT %s, %s, %s, %s, %s, %s, %s"
                " WHERE EXISTS (SELECT 1 FROM audit_records WHERE request_id = %s) RETURNING id",
                (
                    _text(fb.request_id),
                    fb.label,
                    _text(fb.actor),
                    fb.ts,
                    _text(fb.note),
                    fb.stage,
                    None if fb.step is None else _text(fb.step),
                    _text(fb.request_id),
                ),
            ).fetchone()
        if row is None:
            raise UnknownRequest(fb.request_id)
        return int(row[0])

    def add_preference(self, pref: Preference) -> int:
        """Any thread, like `add_feedback`."""
        self._check_open()
        prompt = [{"role": t.role, "content": t.content} for t in pref.prompt]
        with _unreachable_as_unavailable(), self._connect() as conn:
            row = conn.execute(
                "INSERT INTO preferences (request_id, ts, model, step, prompt, rejected, chosen, critique)"
                " VALUES (%s, %s, %s, %s, %s::jsonb, %s, %s, %s) RETURNING id",
                (
                    _text(pref.request_id),
                    pref.ts,
                    _text(pref.model),
                    _text(pref.step),
                    _json(META_JSON.encode(prompt)),
                    _text(pref.rejected),
                    _text(pref.chosen),
                    _text(pref.critique),
                ),
            ).fetchone()
        assert row is not None
        return int(row[0])

    def close(self) -> None:
        if self._writer is not None:
            self._check_owner("close()")
            self._writer.close()
            self._writer = None
        self._closed = True

    # -- reading (any thread; one connection per call) ------------------------------------------

    def query(
        self, *, blocked_only: bool = False, since: float | None = None, limit: int | None = None
    ) -> Iterator[AuditRecord]:
        self._check_open()
        sql, params = records_query(_SELECT, "%s", "seq", blocked_only=blocked_only, since=since, limit=limit)
        return self._iter(sql, params, _record)

    def search(
        self, where: RecordFilter, *, before: PageCursor | None = None, limit: int | None = None
    ) -> Iterator[AuditRecord]:
        self._check_open()
        sql, params = search_query(_SELECT, _DIALECT, where, before=before, limit=limit)
        return self._iter(sql, params, _record)

    def outlines(self, where: RecordFilter, *, limit: int | None = None) -> Iterator[RecordOutline]:
        self._check_open()
        columns = ", ".join(f"{c}::text AS {c}" if c in _JSON_FIELDS else c for c in OUTLINE_COLUMNS)
        sql, params = search_query(f"SELECT {columns}", _DIALECT, where, before=None, limit=limit)
        return self._iter(sql, params, outline_from_row)

    def outcome_counts(self, where: RecordFilter, *, start: float, bucket_s: float) -> list[OutcomeCount]:
        self._check_open()
        sql, params = outcome_counts_query(_DIALECT, where, start=start, bucket_s=bucket_s)
        return list(self._iter(sql, params, outcome_count_from_row))

    def get(self, request_id: str) -> AuditRecord | None:
        self._check_open()
        with self._connect() as conn, conn.cursor(row_factory=dict_row) as cursor:
            row = cursor.execute(f"{_SELECT} FROM audit_records WHERE request_id = %s", (request_id,)).fetchone()
        return None if row is None else _record(row)

    def feedback(
        self,
        *,
        since: float | None = None,
        request_id: str | None = None,
        request_ids: Collection[str] | None = None,
    ) -> Iterator[Feedback]:
        self._check_open()
        sql, params = feedback_query(
            _FEEDBACK_COLUMNS, "%s", since=since, request_id=request_id, request_ids=request_ids
        )
        return self._iter(sql, params, feedback_from_row)

    def preferences(self, *, since: float | None = None) -> Iterator[Preference]:
        self._check_open()
        sql, params = preferences_query(_PREFERENCE_COLUMNS, "%s", since=since)
        return self._iter(sql, params, preference_from_row)

    def _iter(self, sql: str, params: list[Any], convert: Callable[[dict[str, Any]], _T]) -> Iterator[_T]:
        # A named (server-side) cursor streams rows in chunks: an export of millions of records stays in
        # constant memory, as SQLite's cursor does.
        with self._connect() as conn, conn.transaction(), conn.cursor("guardproxy_read", row_factory=dict_row) as cur:
            cur.execute(sql, params)
            for row in cur:
                yield convert(row)

    # -- connections ----------------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        with _unreachable_as_unavailable():
            return psycopg.connect(self._url, connect_timeout=_CONNECT_TIMEOUT_S, application_name="guardproxy")

    def _writer_connection(self) -> psycopg.Connection[Any]:
        self._check_open()
        if self._writer is None:
            if self._writer_thread is None:
                self._writer_thread = threading.get_ident()
            else:
                self._check_owner("write_batch()")
            self._writer = self._connect()
        else:
            self._check_owner("write_batch()")
        return self._writer

    def _check_owner(self, what: str) -> None:
        if self._writer_thread != threading.get_ident():
            raise RuntimeError(
                f"PostgresAuditStore.{what} called from a thread that does not own the writer connection"
            )

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("PostgreSQL audit store is closed")

    def _abort(self, conn: psycopg.Connection[Any]) -> None:
        with contextlib.suppress(psycopg.Error):
            conn.rollback()
        if conn.broken or conn.closed:
            # The server went away: drop the connection, the next write reconnects.
            with contextlib.suppress(psycopg.Error):
                conn.close()
            self._writer = None

    def _migrate(self) -> None:
        with self._connect() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS guardproxy_migrations"
                " (version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"
            )
            row = conn.execute("SELECT coalesce(max(version), 0) FROM guardproxy_migrations").fetchone()
            version = int(row[0]) if row is not None else 0
            if version > SCHEMA_VERSION:
                raise RuntimeError(
                    f"the PostgreSQL audit database has schema version {version}; this guardproxy knows up to"
                    f" {SCHEMA_VERSION}. Upgrade guardproxy."
                )
            for number, statements in enumerate(_MIGRATIONS[version:], start=version + 1):
                for statement in statements:
                    if isinstance(statement, str):
                        conn.execute(statement)  # our own literals, not user input
                    else:
                        statement(conn)
                conn.execute(
                    "INSERT INTO guardproxy_migrations (version, applied_at) VALUES (%s, %s)", (number, time.time())
                )


@contextlib.contextmanager
def _unreachable_as_unavailable() -> Iterator[None]:
    """A server that is down or unreachable becomes our `AuditUnavailable` (503 on POST /v1/feedback; the
    audit sink retries records whatever the error). The message names no URL: it may hold a password."""
    try:
        yield
    except psycopg.OperationalError as exc:
        raise AuditUnavailable(f"the PostgreSQL audit store is unreachable ({type(exc).__name__})") from exc


def _fired_step(match: StepMatch) -> tuple[str, list[Any]]:
    """jsonb containment: an element of `steps` that fired and has the asked attributes (the GIN index serves it)."""
    element: dict[str, Any] = {"fired": True}
    for key, value in (("stage", match.stage), ("name", match.name), ("detector", match.detector)):
        if value is not None:
            element[key] = _text(value)
    if match.label is not None:
        element["labels"] = [_text(match.label)]
    return "steps @> %s::jsonb", [json.dumps([element])]


_DIALECT = SearchDialect(
    mark="%s",
    like="ILIKE",
    fired_step=_fired_step,
    meta_text=lambda field: f"(meta ->> '{field}')",
    int_floor=lambda expr: f"floor({expr})::integer",
)


def _row(record: AuditRecord) -> tuple[Any, ...]:
    return (
        _text(record.request_id),
        record.ts,
        _text(record.client),
        _text(record.endpoint),
        _text(record.model),
        _text(record.backend),
        record.stream,
        record.outcome.value,
        record.status,
        record.latency_ms,
        record.upstream_latency_ms,
        record.prompt_tokens,
        record.completion_tokens,
        _json(STEPS_JSON.encode([step.to_dict() for step in record.steps])),
        _text(record.input_text),
        _text(record.output_text),
        None if record.error is None else _text(record.error),
        _json(META_JSON.encode(record.meta)),
        _json(segments_json(record.input_segments)),
        _json(segments_json(record.output_segments)),
    )


def _text(value: str) -> str:
    return value.replace("\x00", _NUL_REPLACEMENT) if "\x00" in value else value


def _json(text: str) -> str:
    return _JSON_NUL.sub(r"\1\\ufffd", text) if "\\u0000" in text else text


def _record(row: dict[str, Any]) -> AuditRecord:
    data = dict(row)
    data["steps"] = json.loads(data["steps"])
    data["meta"] = json.loads(data["meta"])
    data["input_segments"] = SEGMENTS_DECODER.decode(data["input_segments"])
    data["output_segments"] = SEGMENTS_DECODER.decode(data["output_segments"])
    return AuditRecord.from_dict(data)
