"""`guardproxy audit export|label|feedback`: the audit log and its feedback as JSON lines, oldest first."""

from __future__ import annotations

import json
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from guardproxy.audit.feedback import FEEDBACK_LABELS, Feedback
from guardproxy.audit.records import UnknownRequest
from guardproxy.audit.scrub import scrub_feedback
from guardproxy.audit.store import AuditStore, UnsupportedStore, open_store
from guardproxy.errors import AuditUnavailable

EXIT_OK = 0
EXIT_USAGE = 2
_RELATIVE = re.compile(r"(\d+)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
SINCE_HELP = (
    "only records at or after this time: relative (30s, 15m, 2h, 7d, 1w) or ISO-8601"
    " (2026-11-22, 2026-11-22T10:00, 2026-11-22T10:00+01:00); times without an offset are UTC"
)


def parse_since(text: str, *, now: float | None = None) -> float:
    """A `--since` value as a unix timestamp. Raises ValueError with a message fit for the user."""
    value = text.strip()
    relative = _RELATIVE.fullmatch(value)
    if relative:
        amount, unit = relative.groups()
        return (time.time() if now is None else now) - int(amount) * _UNIT_SECONDS[unit]
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"--since {text!r}: expected e.g. 15m, 2h, 7d or an ISO-8601 date/time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def export_records(
    db: str, *, blocked: bool, since: str | None, out: TextIO, err: TextIO | None = None, now: float | None = None
) -> int:
    """Write matching records to `out`, one JSON object per line. Returns the process exit code."""
    err = sys.stderr if err is None else err
    since_ts = None
    if since is not None:
        try:
            since_ts = parse_since(since, now=now)
        except ValueError as exc:
            print(f"guardproxy audit export: {exc}", file=err)
            return EXIT_USAGE
    store = open_existing(db, "guardproxy audit export", err)
    if store is None:
        return EXIT_USAGE
    try:
        for record in store.query(blocked_only=blocked, since=since_ts):
            out.write(record.to_json())
            out.write("\n")
    finally:
        store.close()
    return EXIT_OK


def open_existing(db: str, prog: str, err: TextIO) -> AuditStore | None:
    """The store at `db`, or None after printing why not. Never creates a database file."""
    if "://" not in db and not Path(db).is_file():
        # Opening would create an empty database: a typo in the path must not look like "no records".
        print(f"{prog}: no audit database at {db}", file=err)
        return None
    try:
        return open_store(db)
    except (UnsupportedStore, AuditUnavailable) as exc:
        print(f"{prog}: {exc}", file=err)
        return None


def label_record(
    db: str,
    request_id: str,
    *,
    label: str,
    actor: str,
    note: str = "",
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """`guardproxy audit label`: store one feedback row; print it (note scrubbed) as JSON. Returns the exit code."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    prog = "guardproxy audit label"
    checked = next((known for known in FEEDBACK_LABELS if known == label), None)
    if checked is None:
        print(f"{prog}: --as must be one of {', '.join(FEEDBACK_LABELS)}, got {label!r}", file=err)
        return EXIT_USAGE
    store = open_existing(db, prog, err)
    if store is None:
        return EXIT_USAGE
    try:
        feedback_id = store.add_feedback(
            scrub_feedback(Feedback(request_id=request_id, label=checked, actor=actor, ts=time.time(), note=note))
        )
        stored = list(store.feedback(request_id=request_id))
    except UnknownRequest:
        print(f"{prog}: no audit record with request id {request_id!r} in {db}", file=err)
        return EXIT_USAGE
    finally:
        store.close()
    out.write(json.dumps({"id": feedback_id, **stored[-1].to_dict()}, ensure_ascii=False) + "\n")
    return EXIT_OK


def export_feedback(
    db: str, *, since: str | None, out: TextIO, err: TextIO | None = None, now: float | None = None
) -> int:
    """`guardproxy audit feedback`: every feedback row (history included), oldest first, as JSON lines."""
    err = sys.stderr if err is None else err
    prog = "guardproxy audit feedback"
    since_ts = None
    if since is not None:
        try:
            since_ts = parse_since(since, now=now)
        except ValueError as exc:
            print(f"{prog}: {exc}", file=err)
            return EXIT_USAGE
    store = open_existing(db, prog, err)
    if store is None:
        return EXIT_USAGE
    try:
        for fb in store.feedback(since=since_ts):
            out.write(json.dumps(fb.to_dict(), ensure_ascii=False, separators=(",", ":")) + "\n")
    finally:
        store.close()
    return EXIT_OK
