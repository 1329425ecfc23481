"""Audit sink insert throughput, SQLite vs PostgreSQL: records/s from the first `submit` to the end of the flush.

    python bench/bench_audit_sink_stores.py [--records 20000] [--rounds 3]

The sink as the proxy runs it (batches of 256, scrubbing off: this measures the stores), fed from one event
loop as fast as it accepts. SQLite: a WAL file in a temp dir (synchronous=NORMAL, as the store sets it).
PostgreSQL: a throwaway local server (tests/pg_server.py) over TCP on 127.0.0.1, once with PostgreSQL's
default durability (fsync, synchronous_commit=on: one WAL flush per batch) and once with fsync off.
Records are bench_audit_store.py's chat-like records (~600 characters of text each).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ and bench/ as packages from a checkout

from bench.bench_audit_store import record
from guardproxy.audit.postgres import PostgresAuditStore
from guardproxy.audit.sink import AuditSink
from guardproxy.audit.sqlite import SQLiteAuditStore
from guardproxy.audit.store import AuditStore
from tests.pg_server import PgServer


async def through_sink(store: AuditStore, n: int, offset: int) -> float:
    sink = AuditSink(store, queue_size=n + 1, on_full="wait", scrub=None)
    records = [record(offset + i) for i in range(n)]
    await sink.start()
    started = time.perf_counter()
    for rec in records:
        await sink.submit(rec)
    unwritten = await sink.aclose()
    seconds = time.perf_counter() - started
    assert unwritten == 0 and sink.stats().written == n, sink.stats()
    return n / seconds


def rounds(open_store: Callable[[int], AuditStore], n: int, count: int) -> dict[str, float]:
    rates = [asyncio.run(through_sink(open_store(r), n, r * n)) for r in range(count)]
    return {"records_per_s_median": round(statistics.median(rates)), "min": round(min(rates)), "max": round(max(rates))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    n, count = args.records, args.rounds
    with tempfile.TemporaryDirectory() as tmp:
        print({"store": "sqlite", **rounds(lambda r: SQLiteAuditStore(Path(tmp) / f"s{r}.db"), n, count)})
    for durable in (True, False):
        server = PgServer(durable=durable)
        try:
            server.start()
            url = server.create_database()
            print(
                {"store": "postgres", "fsync": durable, **rounds(lambda _r, url=url: PostgresAuditStore(url), n, count)}
            )
            server.stop()
        finally:
            server.remove()


if __name__ == "__main__":
    main()
