"""`guardproxy audit export`: the audit log as JSON lines, oldest first."""

from __future__ import annotations

import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from guardproxy.audit.store import UnsupportedStore, open_store

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
    if "://" not in db and not Path(db).is_file():
        # Opening would create an empty database: a typo in the path must not look like "no records".
        print(f"guardproxy audit export: no audit database at {db}", file=err)
        return EXIT_USAGE
    try:
        store = open_store(db)
    except UnsupportedStore as exc:
        print(f"guardproxy audit export: {exc}", file=err)
        return EXIT_USAGE
    try:
        for record in store.query(blocked_only=blocked, since=since_ts):
            out.write(record.to_json())
            out.write("\n")
    finally:
        store.close()
    return EXIT_OK
