"""What the SQL audit stores (SQLite, PostgreSQL) share: the reading queries and the row conversions.

Each store passes its driver's parameter mark (`?` for sqlite3, `%s` for psycopg), its column lists and
its insertion-order column; the filters, their order and the row -> value conversions are written once,
so the two stores cannot drift apart (their contract tests run on both: tests/test_audit_store.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from guardproxy.audit.feedback import FEEDBACK_LABELS, Feedback, FeedbackLabel
from guardproxy.audit.preferences import ChatTurn, Preference
from guardproxy.audit.records import BLOCKED_OUTCOMES, Outcome, Segment, StepRecord
from guardproxy.audit.search import OutcomeCount, PageCursor, RecordFilter, RecordOutline, StepMatch

# Built once: json.dumps with non-default options constructs an encoder on every call.
STEPS_JSON = json.JSONEncoder(separators=(",", ":"))
META_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)
# Segments through msgspec, typed both ways: encoding 1.2 us and decoding 1.2 us for a 3-text request, against
# 5 us and 9 us with the json module (bench/bench_audit_store.py measures the whole write and read).
_SEGMENTS_ENCODER = msgspec.json.Encoder()
SEGMENTS_DECODER = msgspec.json.Decoder(tuple[Segment, ...])
# Steps straight into `StepRecord`s (5 us for a 4-step record): the overview reads tens of thousands of them.
_STEPS_DECODER = msgspec.json.Decoder(tuple[StepRecord, ...])
OUTLINE_COLUMNS = ("request_id", "ts", "outcome", "steps")


def segments_json(segments: tuple[Segment, ...]) -> str:
    return _SEGMENTS_ENCODER.encode(segments).decode()


class Row(Protocol):
    """A result row read by column name: sqlite3.Row, or psycopg's dict rows."""

    def __getitem__(self, key: str, /) -> Any: ...


def _where(conditions: list[str]) -> str:
    return " WHERE " + " AND ".join(conditions) if conditions else ""


def records_query(
    select: str, mark: str, order_column: str, *, blocked_only: bool, since: float | None, limit: int | None
) -> tuple[str, list[Any]]:
    """`select` is the store's `SELECT <columns>`; records come oldest first, ties in insertion order."""
    conditions: list[str] = []
    params: list[Any] = []
    if blocked_only:
        outcomes = sorted(o.value for o in BLOCKED_OUTCOMES)
        conditions.append(f"outcome IN ({', '.join([mark] * len(outcomes))})")
        params.extend(outcomes)
    if since is not None:
        conditions.append(f"ts >= {mark}")
        params.append(since)
    sql = f"{select} FROM audit_records{_where(conditions)} ORDER BY ts, {order_column}"
    if limit is not None:
        sql += f" LIMIT {mark}"
        params.append(limit)
    return sql, params


@dataclass(frozen=True, slots=True)
class SearchDialect:
    """The parts of `search_query` each SQL store writes in its own dialect."""

    mark: str  # the driver's parameter mark
    like: str  # a case-insensitive LIKE: SQLite's LIKE (ASCII), PostgreSQL's ILIKE
    fired_step: Callable[[StepMatch], tuple[str, list[Any]]]  # a condition: one fired step matches
    meta_text: Callable[[str], str]  # the SQL expression of a `meta` field as text
    int_floor: Callable[[str], str]  # a non-negative number expression rounded down to an integer


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# Requests whose latest feedback (as `latest_feedback` picks it: by ts, then insertion) has the label. Driven by
# the feedback table, which is small: a rare label's page does not read the whole log.
_LATEST_REVIEW = (
    "request_id IN (SELECT f.request_id FROM feedback f WHERE f.label = {mark} AND NOT EXISTS (SELECT 1 FROM feedback g"
    " WHERE g.request_id = f.request_id AND (g.ts > f.ts OR (g.ts = f.ts AND g.id > f.id))))"
)


def search_query(
    select: str, dialect: SearchDialect, where: RecordFilter, *, before: PageCursor | None, limit: int | None
) -> tuple[str, list[Any]]:
    """Records matching `where`, newest first (ts, then request id, both descending), after `before`.

    Ordered by the `ts` index, so a page stops reading as soon as it is full: the first page of a common
    filter is fast on any size of log; a rare one reads back until it finds a page (bench/bench_console_events.py).
    """
    conditions, params = _filter(dialect, where, before)
    sql = f"{select} FROM audit_records{_where(conditions)} ORDER BY ts DESC, request_id DESC"
    if limit is not None:
        sql += f" LIMIT {dialect.mark}"
        params.append(limit)
    return sql, params


def outcome_counts_query(
    dialect: SearchDialect, where: RecordFilter, *, start: float, bucket_s: float
) -> tuple[str, list[Any]]:
    """(outcome, bucket, n) of the records matching `where`; bucket = floor((ts - start) / bucket_s)."""
    conditions, params = _filter(dialect, where, None)
    mark = dialect.mark
    if where.outcome is None:
        # Every outcome, named: the (outcome, ts) index then answers alone (SQLite read the table through the ts
        # index instead: 6.0 s against 2.2 s for a month of 1M records, bench/bench_console_events.py's database).
        outcomes = [o.value for o in Outcome]
        conditions.insert(0, f"outcome IN ({', '.join([mark] * len(outcomes))})")
        params[:0] = outcomes
    bucket = dialect.int_floor(f"(ts - {mark}) / {mark}")
    sql = f"SELECT outcome, {bucket} AS bucket, count(*) AS n FROM audit_records{_where(conditions)} GROUP BY 1, 2"
    return sql, [start, bucket_s, *params]


def _filter(dialect: SearchDialect, where: RecordFilter, before: PageCursor | None) -> tuple[list[str], list[Any]]:
    """The conditions (and their parameters) of one filter: the one rule set of `search` and its aggregates."""
    mark = dialect.mark
    conditions: list[str] = []
    params: list[Any] = []

    def add(condition: str, *values: Any) -> None:
        conditions.append(condition)
        params.extend(values)

    if where.outcome is not None:
        add(f"outcome = {mark}", where.outcome.value)
    if where.since is not None:
        add(f"ts >= {mark}", where.since)
    if where.until is not None:
        add(f"ts < {mark}", where.until)
    if before is not None:
        add(f"(ts < {mark} OR (ts = {mark} AND request_id < {mark}))", before.ts, before.ts, before.request_id)
    if where.model is not None:
        add(f"model = {mark}", where.model)
    if where.client is not None:
        add(f"client {dialect.like} {mark} ESCAPE '\\'", _like_pattern(where.client))
    if where.profile is not None:
        add(f"{dialect.meta_text('profile')} = {mark}", where.profile)
    if where.review is not None:
        add(_LATEST_REVIEW.format(mark=mark), where.review)
    if where.unlabelled:
        add("NOT EXISTS (SELECT 1 FROM feedback f WHERE f.request_id = audit_records.request_id)")
    if where.text is not None:
        pattern = _like_pattern(where.text)
        add(
            f"(input_text {dialect.like} {mark} ESCAPE '\\' OR output_text {dialect.like} {mark} ESCAPE '\\')",
            pattern,
            pattern,
        )
    if where.labelled:
        add("request_id IN (SELECT request_id FROM feedback)")
    match = where.step_match
    if match is not None:
        condition, values = dialect.fired_step(match)
        add(condition, *values)
    return conditions, params


def feedback_query(
    columns: str, mark: str, *, since: float | None, request_id: str | None, request_ids: Collection[str] | None = None
) -> tuple[str, list[Any]]:
    conditions: list[str] = []
    params: list[Any] = []
    if request_ids is not None:
        ids = sorted(set(request_ids))
        conditions.append(f"request_id IN ({', '.join([mark] * len(ids))})" if ids else "1 = 0")
        params.extend(ids)
    if since is not None:
        conditions.append(f"ts >= {mark}")
        params.append(since)
    if request_id is not None:
        conditions.append(f"request_id = {mark}")
        params.append(request_id)
    return f"SELECT {columns} FROM feedback{_where(conditions)} ORDER BY ts, id", params


def preferences_query(columns: str, mark: str, *, since: float | None) -> tuple[str, list[Any]]:
    conditions = [] if since is None else [f"ts >= {mark}"]
    params: list[Any] = [] if since is None else [since]
    return f"SELECT {columns} FROM preferences{_where(conditions)} ORDER BY ts, id", params


def outline_from_row(row: Row) -> RecordOutline:
    steps = row["steps"]
    return RecordOutline(row["request_id"], float(row["ts"]), Outcome(row["outcome"]), _STEPS_DECODER.decode(steps))


def outcome_count_from_row(row: Row) -> OutcomeCount:
    return OutcomeCount(Outcome(row["outcome"]), int(row["bucket"]), int(row["n"]))


def label_of(value: str) -> FeedbackLabel:
    for label in FEEDBACK_LABELS:
        if value == label:
            return label
    raise ValueError(f"feedback table holds an unknown label {value!r}")


def feedback_from_row(row: Row) -> Feedback:
    stage = row["stage"]
    return Feedback(
        request_id=row["request_id"],
        label=label_of(row["label"]),
        actor=row["actor"],
        ts=float(row["ts"]),
        note=row["note"],
        stage="input" if stage == "input" else "output" if stage == "output" else None,
        step=row["step"],
    )


def preference_from_row(row: Row) -> Preference:
    return Preference(
        request_id=row["request_id"],
        ts=float(row["ts"]),
        model=row["model"],
        step=row["step"],
        prompt=tuple(ChatTurn(str(t["role"]), str(t["content"])) for t in json.loads(row["prompt"])),
        rejected=row["rejected"],
        chosen=row["chosen"],
        critique=row["critique"],
    )
