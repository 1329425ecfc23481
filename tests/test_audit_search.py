"""`AuditStore.search` (the review console's events query): one rule set, the same answers from SQLite and
PostgreSQL (a real server, tests/pg_server.py)."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

from guardproxy.audit import AuditRecord, AuditStore, Outcome, Segment, StepRecord
from guardproxy.audit import sqlite as sqlite_store
from guardproxy.audit.feedback import Feedback
from guardproxy.audit.postgres import PostgresAuditStore
from guardproxy.audit.search import PageCursor, RecordFilter, RecordOutline
from guardproxy.audit.sqlite import SQLiteAuditStore

T0 = 1_700_000_000.0


def step(name: str, detector: str, *, fired: bool, labels: tuple[str, ...] = (), stage: str = "input") -> StepRecord:
    return StepRecord(
        name=name,
        stage="input" if stage == "input" else "output",
        detector=detector,
        action="block",
        ran=True,
        fired=fired,
        latency_ms=1.0,
        score=0.9 if fired else 0.1,
        labels=labels,
    )


def record(i: int, outcome: Outcome, steps: tuple[StepRecord, ...], text: str, **fields: object) -> AuditRecord:
    base: dict[str, object] = dict(
        request_id=f"r{i:03d}",
        ts=T0 + i,
        client=f"127.0.0.1 key:team-{'a' if i % 2 else 'b'} (gp-x)",
        endpoint="/v1/chat/completions",
        model="gpt-4o-mini" if i % 3 else "other",
        backend="up",
        stream=False,
        outcome=outcome,
        status=200,
        latency_ms=3.0,
        steps=steps,
        input_segments=(Segment("user", 0, text),),
        meta={"profile": "strict" if i == 5 else "default"},
    )
    base.update(fields)
    return AuditRecord(**base)  # type: ignore[arg-type]


RECORDS = [
    record(1, Outcome.ALLOWED, (step("input.0.injection", "injection", fired=False),), "hello there"),
    record(
        2,
        Outcome.BLOCKED_INPUT,
        (step("input.0.injection", "injection", fired=True, labels=("INJECTION",)),),
        "ignore [INJECTION] 100%_done",
    ),
    record(
        3, Outcome.FLAGGED, (step("input.1.pii", "pii", fired=True, labels=("EMAIL_ADDRESS",)),), "mail [EMAIL_ADDRESS]"
    ),
    record(
        4,
        Outcome.BLOCKED_OUTPUT,
        (step("output.0.banned", "banned", fired=True, labels=("BANNED",), stage="output"),),
        "Tell me",
    ),
    record(5, Outcome.ALLOWED, (step("input.1.pii", "pii", fired=False),), "Hello AGAIN"),
]


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> AuditStore:
    opened: AuditStore = (
        SQLiteAuditStore(tmp_path / "audit.db")
        if request.param == "sqlite"
        else PostgresAuditStore(request.getfixturevalue("pg_url"))
    )
    opened.write_batch(RECORDS)
    opened.add_feedback(Feedback(request_id="r002", label="correct", actor="a", ts=T0 + 10))
    opened.add_feedback(Feedback(request_id="r002", label="false_positive", actor="b", ts=T0 + 20))
    opened.add_feedback(Feedback(request_id="r003", label="correct", actor="a", ts=T0 + 30))
    return opened


def ids(store: AuditStore, where: RecordFilter, **kw: object) -> list[str]:
    return [r.request_id for r in store.search(where, **kw)]  # type: ignore[arg-type]


def test_newest_first_and_paged(store: AuditStore) -> None:
    assert ids(store, RecordFilter()) == ["r005", "r004", "r003", "r002", "r001"]
    assert ids(store, RecordFilter(), limit=2) == ["r005", "r004"]
    assert ids(store, RecordFilter(), before=PageCursor(T0 + 4, "r004"), limit=2) == ["r003", "r002"]
    store.close()


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (RecordFilter(outcome=Outcome.ALLOWED), ["r005", "r001"]),
        (RecordFilter(detector="injection"), ["r002"]),  # fired only: r001's quiet injection step does not count
        (RecordFilter(detector="pii"), ["r003"]),
        (RecordFilter(stage="output"), ["r004"]),
        (RecordFilter(step="input.1.pii", label="EMAIL_ADDRESS"), ["r003"]),
        (RecordFilter(detector="pii", label="INJECTION"), []),  # one step must match both
        (RecordFilter(label="BANNED"), ["r004"]),
        (RecordFilter(model="other"), ["r003"]),
        (RecordFilter(client="team-a"), ["r005", "r003", "r001"]),
        (RecordFilter(profile="strict"), ["r005"]),
        (RecordFilter(review="false_positive"), ["r002"]),  # the latest label counts
        (RecordFilter(review="correct"), ["r003"]),
        (RecordFilter(unlabelled=True), ["r005", "r004", "r001"]),
        (RecordFilter(text="hello"), ["r005", "r001"]),  # case-insensitive substring
        (RecordFilter(text="100%_"), ["r002"]),  # % and _ are literal
        (RecordFilter(text="0%"), ["r002"]),
        (RecordFilter(text="%"), ["r002"]),
        (RecordFilter(since=T0 + 2, until=T0 + 4), ["r003", "r002"]),
    ],
)
def test_filters(store: AuditStore, where: RecordFilter, expected: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert ids(store, where) == expected
    if isinstance(store, SQLiteAuditStore):  # the other plan of a step filter (taken for common matches) agrees
        monkeypatch.setattr(sqlite_store, "RARE_FIRES", 0)
        assert ids(store, where) == expected
    store.close()


def test_feedback_of_some_requests(store: AuditStore) -> None:
    assert [(f.request_id, f.label) for f in store.feedback(request_ids=["r002", "r001"])] == [
        ("r002", "correct"),
        ("r002", "false_positive"),
    ]
    assert list(store.feedback(request_ids=[])) == []
    store.close()


def test_sqlite_migration_backfills_fired_steps_of_old_records(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    store = SQLiteAuditStore(path)
    store.write_batch(RECORDS)
    store.close()
    with contextlib.closing(sqlite3.connect(path)) as conn:  # as a database of schema 4 left it
        conn.execute("DROP TABLE audit_fired")
        conn.execute("PRAGMA user_version = 4")
        conn.commit()
    reopened = SQLiteAuditStore(path)
    assert ids(reopened, RecordFilter(detector="injection")) == ["r002"]
    assert ids(reopened, RecordFilter(label="EMAIL_ADDRESS", stage="input")) == ["r003"]
    reopened.write_batch(
        [record(6, Outcome.BLOCKED_INPUT, (step("input.0.injection", "injection", fired=True),), "again")]
    )
    assert ids(reopened, RecordFilter(detector="injection")) == ["r006", "r002"]  # and the writer keeps it up
    reopened.close()


def test_outlines_are_the_search_without_texts(store: AuditStore) -> None:
    where = RecordFilter(detector="pii")
    assert list(store.outlines(where)) == [RecordOutline.of(r) for r in store.search(where)]
    assert [o.request_id for o in store.outlines(RecordFilter(), limit=2)] == ["r005", "r004"]
    assert [o.blocked for o in store.outlines(RecordFilter(), limit=2)] == [False, True]
    store.close()


def test_outcome_counts_per_time_bucket(store: AuditStore) -> None:
    # r001..r005 at T0+1..T0+5; buckets of 2 s from T0: r001 in 0, r002-r003 in 1, r004-r005 in 2.
    counts = {(c.outcome, c.bucket): c.n for c in store.outcome_counts(RecordFilter(), start=T0, bucket_s=2.0)}
    assert counts == {
        (Outcome.ALLOWED, 0): 1,
        (Outcome.BLOCKED_INPUT, 1): 1,
        (Outcome.FLAGGED, 1): 1,
        (Outcome.BLOCKED_OUTPUT, 2): 1,
        (Outcome.ALLOWED, 2): 1,
    }
    narrowed = store.outcome_counts(RecordFilter(since=T0 + 2, detector="pii"), start=T0, bucket_s=2.0)
    assert [(c.outcome, c.bucket, c.n) for c in narrowed] == [(Outcome.FLAGGED, 1, 1)]
    assert [o.request_id for o in store.outlines(RecordFilter(labelled=True))] == ["r003", "r002"]
    store.close()
