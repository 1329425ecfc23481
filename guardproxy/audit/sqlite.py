"""The embedded audit store: one SQLite file in WAL mode.

Thread model: the connection that writes belongs to the thread that first calls `write_batch`
(the audit sink's writer thread), and only that thread may write or `close()`. Reads open their own
short-lived connection in the calling thread, so readers (export, trainer) never share the writer's.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from guardproxy.audit.feedback import FEEDBACK_LABELS, Feedback
from guardproxy.audit.preferences import Preference
from guardproxy.audit.records import (
    AuditRecord,
    UnknownRequest,
    legacy_input_segments,
    legacy_output_segments,
)
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

_BATCH_ROWS = 1000


def _add_segments(conn: sqlite3.Connection) -> None:
    """Records keep their checked texts as JSON arrays of {role, index, text}; old rows are converted once.

    `input_text`/`output_text` stay, derived from the segments, for full-text search. Old rows' input was
    "role: text" lines: split here on role lines (the ambiguity segments remove from now on).
    """
    columns = {row[1] for row in conn.execute("PRAGMA table_info(audit_records)")}
    for column in ("input_segments", "output_segments"):
        if column not in columns:
            conn.execute(f"ALTER TABLE audit_records ADD COLUMN {column} TEXT NOT NULL DEFAULT '[]'")
    last = 0
    while True:  # in rowid batches: constant memory, and no update under an open SELECT
        rows = conn.execute(
            "SELECT rowid, endpoint, input_text, output_text FROM audit_records WHERE rowid > ? ORDER BY rowid LIMIT ?",
            (last, _BATCH_ROWS),
        ).fetchall()
        if not rows:
            return
        conn.executemany(
            "UPDATE audit_records SET input_segments = ?, output_segments = ? WHERE rowid = ?",
            [
                (
                    segments_json(legacy_input_segments(input_text, endpoint)),
                    segments_json(legacy_output_segments(output_text)),
                    rowid,
                )
                for rowid, endpoint, input_text, output_text in rows
            ],
        )
        last = rows[-1][0]


def _backfill_fired(conn: sqlite3.Connection) -> None:
    """`audit_fired` rows for the records written before the table existed, as `_fired_rows` makes them (once: a
    re-run after a crash starts over)."""
    conn.execute("DELETE FROM audit_fired")
    conn.execute(
        """INSERT INTO audit_fired (request_id, ts, stage, step, detector, label)
        SELECT r.request_id, r.ts, json_extract(s.value, '$.stage'), json_extract(s.value, '$.name'),
               json_extract(s.value, '$.detector'), coalesce(l.value, '')
        FROM audit_records AS r, json_each(r.steps) AS s LEFT JOIN json_each(s.value, '$.labels') AS l
        WHERE json_extract(s.value, '$.fired') = 1"""
    )


def _fired_rows(records: Sequence[AuditRecord]) -> list[tuple[str, float, str, str, str, str]]:
    """One `audit_fired` row per fired step and label ('' for a step without labels)."""
    return [
        (record.request_id, record.ts, step.stage, step.name, step.detector, label)
        for record in records
        for step in record.steps
        if step.fired
        for label in step.labels or ("",)
    ]


# Migration N (1-based) takes the schema from version N-1 to N; `PRAGMA user_version` records it. Each
# runs in the opener's transaction; statements are idempotent (IF NOT EXISTS) and functions check first,
# so a half-applied migration from a crash re-runs cleanly.
_Migration = tuple[str | Callable[[sqlite3.Connection], None], ...]
_MIGRATIONS: tuple[_Migration, ...] = (
    (
        """CREATE TABLE audit_records (
            request_id TEXT PRIMARY KEY,
            ts REAL NOT NULL,
            client TEXT NOT NULL,
            endpoint TEXT NOT NULL,
            model TEXT NOT NULL,
            backend TEXT NOT NULL,
            stream INTEGER NOT NULL,
            outcome TEXT NOT NULL,
            status INTEGER NOT NULL,
            latency_ms REAL NOT NULL,
            upstream_latency_ms REAL,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            steps TEXT NOT NULL,  -- JSON array of StepRecord, searchable with json_each()
            input_text TEXT NOT NULL,
            output_text TEXT NOT NULL,
            error TEXT,
            meta TEXT NOT NULL  -- JSON object
        )""",
        "CREATE INDEX audit_records_ts ON audit_records (ts)",
        "CREATE INDEX audit_records_outcome_ts ON audit_records (outcome, ts)",
    ),
    (
        # Reviewer/client labels. Several rows per request (history); consumers take the latest.
        # No FOREIGN KEY clause: SQLite does not enforce it by default; add_feedback checks in its transaction.
        f"""CREATE TABLE IF NOT EXISTS feedback (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            request_id TEXT NOT NULL,
            label TEXT NOT NULL CHECK (label IN ({", ".join(repr(label) for label in FEEDBACK_LABELS)})),
            actor TEXT NOT NULL,
            ts REAL NOT NULL,
            note TEXT NOT NULL,
            stage TEXT CHECK (stage IN ('input', 'output')),
            step TEXT
        )""",
        "CREATE INDEX IF NOT EXISTS feedback_request ON feedback (request_id, id)",
        "CREATE INDEX IF NOT EXISTS feedback_ts ON feedback (ts, id)",
    ),
    (
        # (prompt, rejected, chosen) triples of `revise` steps: DPO pairs. No FOREIGN KEY: the triple is
        # stored before its request's audit record is written.
        """CREATE TABLE IF NOT EXISTS preferences (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            request_id TEXT NOT NULL,
            ts REAL NOT NULL,
            model TEXT NOT NULL,
            step TEXT NOT NULL,
            prompt TEXT NOT NULL,  -- JSON array of {"role", "content"}
            rejected TEXT NOT NULL,
            chosen TEXT NOT NULL,
            critique TEXT NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS preferences_ts ON preferences (ts, id)",
        "CREATE INDEX IF NOT EXISTS preferences_request ON preferences (request_id, id)",
    ),
    (_add_segments,),
    (
        # The review console's step filters (detector, step, label, stage of a *fired* step): one row per fired
        # step and label ('' for none), written with the record (`write_batch`), indexed by each attribute.
        # Without it a rare detector's page read the whole log (bench/bench_console_events.py); written from
        # Python it costs the writer less than a trigger parsing the steps' JSON again (same bench).
        """CREATE TABLE IF NOT EXISTS audit_fired (
            request_id TEXT NOT NULL,
            ts REAL NOT NULL,
            stage TEXT NOT NULL,
            step TEXT NOT NULL,
            detector TEXT NOT NULL,
            label TEXT NOT NULL
        )""",
        _backfill_fired,
        "CREATE INDEX IF NOT EXISTS audit_fired_detector ON audit_fired (detector, ts)",
        "CREATE INDEX IF NOT EXISTS audit_fired_step ON audit_fired (step, ts)",
        "CREATE INDEX IF NOT EXISTS audit_fired_label ON audit_fired (label, ts)",
        "CREATE INDEX IF NOT EXISTS audit_fired_request ON audit_fired (request_id)",
    ),
)
SCHEMA_VERSION = len(_MIGRATIONS)

_COLUMNS = (
    "request_id, ts, client, endpoint, model, backend, stream, outcome, status, latency_ms, upstream_latency_ms,"
    " prompt_tokens, completion_tokens, steps, input_text, output_text, error, meta, input_segments, output_segments"
)
_INSERT = f"INSERT INTO audit_records ({_COLUMNS}) VALUES ({', '.join('?' * len(_COLUMNS.split(',')))})"
_INSERT_FIRED = "INSERT INTO audit_fired (request_id, ts, stage, step, detector, label) VALUES (?, ?, ?, ?, ?, ?)"
_FEEDBACK_COLUMNS = "id, request_id, label, actor, ts, note, stage, step"
_PREFERENCE_COLUMNS = "request_id, ts, model, step, prompt, rejected, chosen, critique"
_BUSY_TIMEOUT_S = 5.0
_T = TypeVar("_T")


class SQLiteAuditStore:
    """`AuditStore` on a SQLite file. The schema is created or migrated on open."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._writer: sqlite3.Connection | None = None
        self._writer_thread: int | None = None
        self._closed = False
        self._migrate()

    # -- writing (writer thread only) -------------------------------------------------------

    def write_batch(self, records: Sequence[AuditRecord]) -> None:
        if not records:
            return
        rows = [_row(record) for record in records]
        fired = _fired_rows(records)
        conn = self._writer_connection()
        try:
            # IMMEDIATE takes the write lock up front, so a busy database fails here, not mid-batch.
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(_INSERT, rows)
            conn.executemany(_INSERT_FIRED, fired)
            conn.execute("COMMIT")
        except BaseException:
            self._abort(conn)
            raise

    def add_feedback(self, fb: Feedback) -> int:
        """Any thread: a short-lived connection of its own, so it never touches the sink's writer."""
        self._check_open()
        if fb.label not in FEEDBACK_LABELS:
            raise ValueError(f"feedback label must be one of {', '.join(FEEDBACK_LABELS)}, got {fb.label!r}")
        row = (
            fb.request_id,
            fb.label,
            fb.actor,
            fb.ts,
            fb.note,
            fb.stage,
            fb.step,
        )
        with contextlib.closing(self._connect()) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                if (
                    conn.execute("SELECT 1 FROM audit_records WHERE request_id = ?", (fb.request_id,)).fetchone()
                    is None
                ):
                    raise UnknownRequest(fb.request_id)
                cursor = conn.execute(
                    "INSERT INTO feedback (request_id, label, actor, ts, note, stage, step) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    row,
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def add_preference(self, pref: Preference) -> int:
        """Any thread, like `add_feedback`."""
        self._check_open()
        prompt = [{"role": t.role, "content": t.content} for t in pref.prompt]
        row = (
            pref.request_id,
            pref.ts,
            pref.model,
            pref.step,
            META_JSON.encode(prompt),
            pref.rejected,
            pref.chosen,
            pref.critique,
        )
        with contextlib.closing(self._connect()) as conn:
            cursor = conn.execute(
                f"INSERT INTO preferences ({_PREFERENCE_COLUMNS}) VALUES ({', '.join('?' * len(row))})", row
            )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

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
        sql, params = records_query(
            f"SELECT {_COLUMNS}", "?", "rowid", blocked_only=blocked_only, since=since, limit=limit
        )
        return self._iter(sql, params, _record)

    def search(
        self, where: RecordFilter, *, before: PageCursor | None = None, limit: int | None = None
    ) -> Iterator[AuditRecord]:
        self._check_open()
        sql, params = search_query(f"SELECT {_COLUMNS}", self._dialect_for(where), where, before=before, limit=limit)
        return self._iter(sql, params, _record)

    def outlines(self, where: RecordFilter, *, limit: int | None = None) -> Iterator[RecordOutline]:
        self._check_open()
        sql, params = search_query(
            f"SELECT {', '.join(OUTLINE_COLUMNS)}", self._dialect_for(where), where, before=None, limit=limit
        )
        return self._iter(sql, params, outline_from_row)

    def outcome_counts(self, where: RecordFilter, *, start: float, bucket_s: float) -> list[OutcomeCount]:
        self._check_open()
        sql, params = outcome_counts_query(self._dialect_for(where), where, start=start, bucket_s=bucket_s)
        return list(self._iter(sql, params, outcome_count_from_row))

    def _dialect_for(self, where: RecordFilter) -> SearchDialect:
        match = where.step_match
        return _LIST if match is not None and self._fires_at_most(match, RARE_FIRES) else _SCAN

    def _fires_at_most(self, match: StepMatch, bound: int) -> bool:
        conditions, params = _fired_conditions(match)
        with contextlib.closing(self._reader()) as conn:
            sql = f"SELECT count(*) FROM (SELECT 1 FROM audit_fired WHERE {conditions} LIMIT {bound + 1})"
            return int(conn.execute(sql, params).fetchone()[0]) <= bound

    def get(self, request_id: str) -> AuditRecord | None:
        self._check_open()
        with contextlib.closing(self._reader()) as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM audit_records WHERE request_id = ?", (request_id,)).fetchone()
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
            _FEEDBACK_COLUMNS, "?", since=since, request_id=request_id, request_ids=request_ids
        )
        return self._iter(sql, params, feedback_from_row)

    def preferences(self, *, since: float | None = None) -> Iterator[Preference]:
        self._check_open()
        sql, params = preferences_query(_PREFERENCE_COLUMNS, "?", since=since)
        return self._iter(sql, params, preference_from_row)

    def _iter(self, sql: str, params: list[Any], convert: Callable[[sqlite3.Row], _T]) -> Iterator[_T]:
        # Rows stream from the cursor: an export of millions of records stays in constant memory.
        with contextlib.closing(self._reader()) as conn:
            for row in conn.execute(sql, params):
                yield convert(row)

    # -- connections ----------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves instead of the module's implicit ones.
        conn = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
        conn.execute("PRAGMA synchronous=NORMAL")  # with WAL: durable across crashes of the process
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn = self._connect()
        conn.execute("PRAGMA query_only=ON")
        conn.row_factory = sqlite3.Row
        return conn

    def _writer_connection(self) -> sqlite3.Connection:
        self._check_open()
        if self._writer is None:
            self._writer = self._connect()
            self._writer_thread = threading.get_ident()
        else:
            self._check_owner("write_batch()")
        return self._writer

    def _check_owner(self, what: str) -> None:
        if self._writer_thread != threading.get_ident():
            raise RuntimeError(f"SQLiteAuditStore.{what} called from a thread that does not own the writer connection")

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"audit store {self.path} is closed")

    def _abort(self, conn: sqlite3.Connection) -> None:
        with contextlib.suppress(sqlite3.Error):
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        if conn.in_transaction:
            # A rollback that failed leaves the connection unusable: drop it, the next write reconnects.
            with contextlib.suppress(sqlite3.Error):
                conn.close()
            self._writer = None

    def _migrate(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(self._connect()) as conn:
            conn.execute("PRAGMA journal_mode=WAL")  # persistent in the file; must be outside a transaction
            conn.execute("BEGIN IMMEDIATE")  # serialise concurrent openers (several replicas on one file)
            try:
                version = int(conn.execute("PRAGMA user_version").fetchone()[0])
                if version > SCHEMA_VERSION:
                    raise RuntimeError(
                        f"audit database {self.path} has schema version {version}; this guardproxy knows up to"
                        f" {SCHEMA_VERSION}. Upgrade guardproxy."
                    )
                for number, statements in enumerate(_MIGRATIONS[version:], start=version + 1):
                    for statement in statements:
                        if isinstance(statement, str):
                            conn.execute(statement)
                        else:
                            statement(conn)
                    conn.execute(f"PRAGMA user_version = {number}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise


def _fired_conditions(match: StepMatch) -> tuple[str, list[Any]]:
    """The `audit_fired` rows (one fired step and one of its labels) with all the asked attributes."""
    conditions: list[str] = []
    params: list[Any] = []
    for column, value in (
        ("stage", match.stage),
        ("step", match.name),
        ("detector", match.detector),
        ("label", match.label),
    ):
        if value is not None:
            conditions.append(f"{column} = ?")
            params.append(value)
    return " AND ".join(conditions), params


def _fired_step_scan(match: StepMatch) -> tuple[str, list[Any]]:
    """For a common match: records are read newest first and each is looked up in `audit_fired` (a page fills fast)."""
    conditions, params = _fired_conditions(match)
    return (
        f"EXISTS (SELECT 1 FROM audit_fired f WHERE f.request_id = audit_records.request_id AND {conditions})",
        params,
    )


def _fired_step_list(match: StepMatch) -> tuple[str, list[Any]]:
    """For a rare match: the matching requests come from `audit_fired`'s index, then are fetched and sorted."""
    conditions, params = _fired_conditions(match)
    return f"request_id IN (SELECT request_id FROM audit_fired WHERE {conditions})", params


def _dialect(fired_step: Callable[[StepMatch], tuple[str, list[Any]]]) -> SearchDialect:
    return SearchDialect(
        mark="?",
        like="LIKE",
        fired_step=fired_step,
        meta_text=lambda field: f"json_extract(meta, '$.{field}')",
        int_floor=lambda expr: f"CAST({expr} AS INTEGER)",  # truncation: the floor of the non-negative
    )


# SQLite plans both forms the same way whatever the numbers; which is fast depends on how many fires match
# (bench/bench_console_events.py on 1M records: a 7% detector 10 ms scanning vs 1 s listing, a 0.1% one 300 ms
# scanning vs 32 ms listing). `search` counts the matches, at most RARE_FIRES + 1 of them, and picks.
_SCAN = _dialect(_fired_step_scan)
_LIST = _dialect(_fired_step_list)
RARE_FIRES = 5000


def _row(record: AuditRecord) -> tuple[Any, ...]:
    return (
        record.request_id,
        record.ts,
        record.client,
        record.endpoint,
        record.model,
        record.backend,
        int(record.stream),
        record.outcome.value,
        record.status,
        record.latency_ms,
        record.upstream_latency_ms,
        record.prompt_tokens,
        record.completion_tokens,
        STEPS_JSON.encode([step.to_dict() for step in record.steps]),
        record.input_text,
        record.output_text,
        record.error,
        META_JSON.encode(record.meta),
        segments_json(record.input_segments),
        segments_json(record.output_segments),
    )


def _record(row: sqlite3.Row) -> AuditRecord:
    data = dict(zip(row.keys(), row, strict=True))
    data["steps"] = json.loads(data["steps"])
    data["meta"] = json.loads(data["meta"])
    data["input_segments"] = SEGMENTS_DECODER.decode(data["input_segments"])
    data["output_segments"] = SEGMENTS_DECODER.decode(data["output_segments"])
    return AuditRecord.from_dict(data)
