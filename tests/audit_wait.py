"""Reading one audit row written by a proxy under test (the writer thread stores it shortly after the answer)."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Any


def audit_row(db: Path, request_id: str, timeout_s: float = 5.0) -> tuple[str, list[dict[str, Any]]]:
    """(outcome, steps) of the record of `request_id`, waiting for the writer."""
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.closing(sqlite3.connect(db)) as conn:
            row = conn.execute(
                "SELECT outcome, steps FROM audit_records WHERE request_id = ?", (request_id,)
            ).fetchone()
        if row is not None:
            return str(row[0]), list(json.loads(row[1]))
        if time.monotonic() > deadline:
            raise AssertionError(f"no audit record for {request_id} within {timeout_s} s")
        time.sleep(0.05)
