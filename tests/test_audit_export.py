"""`audit export`: JSON lines, --blocked and --since filters, and clear errors for bad input."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from guardproxy.audit import AuditRecord, Outcome, Segment, StepRecord
from guardproxy.audit.export import EXIT_OK, EXIT_USAGE, export_records, parse_since
from guardproxy.audit.sqlite import SQLiteAuditStore

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC).timestamp()
HOUR = 3600.0


def make_record(name: str, *, age_s: float, outcome: str) -> AuditRecord:
    return AuditRecord(
        request_id=name,
        ts=NOW - age_s,
        client="c",
        endpoint="/v1/chat/completions",
        model="m",
        backend="b",
        stream=False,
        outcome=Outcome(outcome),
        status=400 if outcome.startswith("blocked") else 200,
        latency_ms=3.0,
        steps=(
            StepRecord(
                name="input.0.pii", stage="input", detector="pii", action="redact", ran=True, fired=False, latency_ms=1
            ),
        ),
        input_segments=(Segment("user", 0, f"text of {name}"),),
    )


RECORDS = [
    make_record("ten-days-ago-blocked", age_s=240 * HOUR, outcome="blocked_input"),
    make_record("yesterday-allowed", age_s=20 * HOUR, outcome="allowed"),
    make_record("hour-ago-blocked-output", age_s=HOUR, outcome="blocked_output"),
    make_record("minute-ago-allowed", age_s=60, outcome="allowed"),
]


@pytest.fixture
def db(tmp_path: Path) -> str:
    store = SQLiteAuditStore(tmp_path / "audit.db")
    store.write_batch(RECORDS)
    store.close()
    return str(tmp_path / "audit.db")


def run(db: str, *, blocked: bool = False, since: str | None = None) -> tuple[int, list[str], str]:
    out, err = io.StringIO(), io.StringIO()
    code = export_records(db, blocked=blocked, since=since, out=out, err=err, now=NOW)
    names = [json.loads(line)["request_id"] for line in out.getvalue().splitlines()]
    return code, names, err.getvalue()


def test_exports_every_record_as_a_json_line_oldest_first(db: str) -> None:
    out = io.StringIO()
    assert export_records(db, blocked=False, since=None, out=out, err=io.StringIO()) == EXIT_OK
    lines = out.getvalue().splitlines()
    assert [AuditRecord.from_json(line) for line in lines] == RECORDS
    assert json.loads(lines[0])["steps"][0]["detector"] == "pii"


@pytest.mark.parametrize(
    ("blocked", "since", "expected"),
    [
        (True, None, ["ten-days-ago-blocked", "hour-ago-blocked-output"]),
        (False, "2h", ["hour-ago-blocked-output", "minute-ago-allowed"]),
        (False, "90m", ["hour-ago-blocked-output", "minute-ago-allowed"]),
        (False, "30s", []),
        (False, "7d", ["yesterday-allowed", "hour-ago-blocked-output", "minute-ago-allowed"]),
        (True, "1d", ["hour-ago-blocked-output"]),
        (False, "2026-11-22", ["hour-ago-blocked-output", "minute-ago-allowed"]),
        (False, "2026-11-21T15:00:00Z", ["yesterday-allowed", "hour-ago-blocked-output", "minute-ago-allowed"]),
        (False, "2026-11-22T11:30+01:00", ["hour-ago-blocked-output", "minute-ago-allowed"]),
    ],
)
def test_filters(db: str, blocked: bool, since: str, expected: list[str]) -> None:
    assert run(db, blocked=blocked, since=since) == (EXIT_OK, expected, "")


@pytest.mark.parametrize("since", ["yesterday", "15", "2 h", "-2h", "2y", "2026-13-01", ""])
def test_bad_since_is_a_usage_error(db: str, since: str) -> None:
    code, names, err = run(db, since=since)
    assert code == EXIT_USAGE
    assert names == []
    assert f"--since {since!r}" in err
    assert "15m, 2h, 7d" in err


def test_parse_since_forms() -> None:
    assert parse_since("15m", now=NOW) == NOW - 900
    assert parse_since("1w", now=NOW) == NOW - 7 * 24 * HOUR
    assert parse_since("2026-11-22T12:00", now=0) == NOW  # no offset means UTC
    with pytest.raises(ValueError, match="ISO-8601"):
        parse_since("soon")


def test_missing_database_is_an_error_and_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "nope.db"
    code, names, err = run(str(missing))
    assert (code, names) == (EXIT_USAGE, [])
    assert "no audit database" in err and str(missing) in err
    assert not missing.exists()


def test_unreachable_or_unsupported_store_url_is_an_error() -> None:
    code, _, err = run("postgresql://audit@127.0.0.1:1/guardproxy")  # nothing listens on port 1
    assert code == EXIT_USAGE
    assert "PostgreSQL audit store is unreachable" in err
    code, _, err = run("mongodb://audit@db/guardproxy")
    assert code == EXIT_USAGE
    assert "not supported" in err
