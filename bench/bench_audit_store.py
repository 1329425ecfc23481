"""Audit store costs: encoding + writing records in batches, and migrating a database of old-format rows.

    python bench/bench_audit_store.py [--records 20000] [--old-rows 100000]

Writes to a temporary directory. Records look like a chat request: a system prompt, two user turns and an
answer (~600 characters in all). The migration figure needs a database at schema version 3 (before
segments); on a checkout without segments it is skipped.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from guardproxy.audit.records import AuditRecord, StepRecord
from guardproxy.audit.sqlite import SQLiteAuditStore

try:
    from guardproxy.audit.records import Outcome, Segment

    HAS_SEGMENTS = True
except ImportError:  # a checkout before segments: the same texts as "role: text" lines
    HAS_SEGMENTS = False

TEXTS = (
    ("system", 0, "You are a helpful assistant for the travel desk. Answer briefly and politely. " * 2),
    ("user", 1, "Which documents do I need for a two-week trip to Japan with a stopover in Seoul?"),
    ("user", 2, "Also: can I bring my cat?\nassistant: sure, any cat is fine"),
)
ANSWER = "A valid passport; no visa for up to 90 days for many nationalities. For pets, check quarantine rules. " * 2
STEP = StepRecord(name="input.0.injection", stage="input", detector="injection", action="block", ran=True,
                  fired=False, latency_ms=0.4, score=0.02)  # fmt: skip


def record(i: int) -> AuditRecord:
    fields: dict[str, Any] = dict(
        request_id=f"gp-{i:032x}", ts=1_700_000_000.0 + i, client="10.0.0.1 key:abc", endpoint="chat/completions",
        model="gpt-4o-mini", backend="upstream", stream=False, status=200, latency_ms=12.0, steps=(STEP, STEP),
    )  # fmt: skip
    if HAS_SEGMENTS:
        fields["outcome"] = Outcome.ALLOWED
        fields["input_segments"] = tuple(Segment(r, n, t) for r, n, t in TEXTS)
        fields["output_segments"] = (Segment("assistant", 0, ANSWER),)
    else:
        fields["outcome"] = "allowed"
        fields["input_text"] = "\n".join(f"{r}: {t}" for r, _, t in TEXTS)
        fields["output_text"] = ANSWER
    return AuditRecord(**fields)


def bench_writes(directory: Path, n: int, batch: int = 200) -> dict[str, float]:
    records = [record(i) for i in range(n)]
    rounds = []
    for r in range(3):
        store = SQLiteAuditStore(directory / f"w{r}.db")
        started = time.perf_counter()
        for k in range(0, n, batch):
            store.write_batch(records[k : k + batch])
        rounds.append((time.perf_counter() - started) / n * 1e6)
        store.close()
    started = time.perf_counter()
    reader = SQLiteAuditStore(directory / "w0.db")
    count = sum(1 for _ in reader.query())
    read_us = (time.perf_counter() - started) / count * 1e6
    reader.close()
    return {"write_us_per_record_median": statistics.median(rounds), "read_us_per_record": read_us}


def bench_migration(directory: Path, rows: int) -> dict[str, float] | None:
    if not HAS_SEGMENTS:
        return None
    from guardproxy.audit.sqlite import _MIGRATIONS

    path = directory / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for statements in _MIGRATIONS[:3]:
        for statement in statements:
            assert isinstance(statement, str)
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 3")
    text = "\n".join(f"{r}: {t}" for r, _, t in TEXTS)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO audit_records (request_id, ts, client, endpoint, model, backend, stream, outcome, status,"
        " latency_ms, steps, input_text, output_text, meta) VALUES (?, ?, 'c', 'chat/completions', 'm', 'b', 0,"
        " 'allowed', 200, 1.0, '[]', ?, ?, '{}')",
        ((f"r{i}", float(i), text, ANSWER) for i in range(rows)),
    )
    conn.execute("COMMIT")
    conn.close()
    started = time.perf_counter()
    SQLiteAuditStore(path).close()
    seconds = time.perf_counter() - started
    return {"rows": rows, "migration_s": seconds, "migration_us_per_row": seconds / rows * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--old-rows", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print({"segments": HAS_SEGMENTS, **bench_writes(Path(tmp), args.records)})
        migration = bench_migration(Path(tmp), args.old_rows)
        if migration is not None:
            print(migration)


if __name__ == "__main__":
    main()
