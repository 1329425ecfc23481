"""Soak: two proxy replicas sharing PostgreSQL (audit) and Redis (rate limits, anonymize vault), under streaming load.

Starts a throwaway PostgreSQL and Redis (tests/pg_server.py, tests/redis_server.py), the fast fake upstream
(bench/upstream.py, streaming) and two `guardproxy serve` replicas of the shipped policy.yaml (every shipped
detector: both classifiers, Presidio, rules) with `auth.mode: keys` (one key, limits too high to refuse),
`audit.url` and `state.url` added. `--concurrency` clients (default 64) each stream chat completions for
`--duration` seconds, alternating between the replicas (what a round-robin load balancer does); each prompt
carries an e-mail address, so every request anonymizes through the Redis vault. Reports requests/s, latency
p50/p99 (to the last byte), errors, audit rows written vs requests sent (they must be equal: the replicas
are stopped with SIGTERM, which drains and flushes), and each replica's RSS at the start and the end.

    python bench/soak_replicas.py --duration 300      # writes bench/results/soak_replicas.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ and bench/ as packages from a checkout

import aiohttp
import psycopg

from bench.servers import free_port, running_server
from guardproxy.auth.keys import NewKey, SQLiteKeyStore
from guardproxy.evaluation.metrics import percentile as nearest_rank
from tests.pg_server import PgServer
from tests.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[1]
EXPECTED = "Sure: the meeting is moved to Thursday at 10:00."  # bench/upstream.py's answer
PROMPT = "Please email jane.doe@example.com that the review moves to Thursday; request {n}."


def soak_policy(directory: Path, pg_url: str, redis_url: str, keys_db: Path) -> Path:
    """policy.yaml as shipped, with keys, the audit in PostgreSQL and state in Redis."""
    text = (ROOT / "policy.yaml").read_text()
    audit = "audit:\n  path: ./guardproxy-audit.db"
    assert audit in text, "policy.yaml's audit section changed; update soak_policy"
    shared = (
        f"audit:\n  url: {pg_url}\n  queue_size: 100000\n"
        f"state:\n  url: {redis_url}\n"
        f"auth:\n  mode: keys\n  keys_path: {keys_db}\n"
    )
    path = directory / "soak-policy.yaml"
    path.write_text(text.replace(audit, shared + "#", 1))
    return path


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no VmRSS for {pid}")


@dataclass
class Tally:
    latencies_ms: list[float] = field(default_factory=list)
    sent: int = 0
    errors: dict[str, int] = field(default_factory=dict)

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


async def stream_once(session: aiohttp.ClientSession, url: str, key: str, n: int) -> str | None:
    """One streamed chat completion; None when it arrived whole and right, else what went wrong."""
    body = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": PROMPT.format(n=n)}]}
    async with session.post(url + "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}) as r:
        if r.status != 200:  # e.g. "http_400 content_filter detector_error": a step timed out and failed closed
            error = (await r.json(content_type=None)).get("error") or {}
            labels = ",".join((error.get("guardproxy") or {}).get("labels") or [])
            return f"http_{r.status} {error.get('code')} {labels}".strip()
        content, done, finish = [], False, None
        async for raw in r.content:
            line = raw.strip()
            if line == b"data: [DONE]":
                done = True
            elif line.startswith(b"data: "):
                event = json.loads(line[6:])
                if "error" in event:
                    return "stream_error_event"
                for choice in event.get("choices", []):
                    content.append((choice.get("delta") or {}).get("content") or "")
                    finish = choice.get("finish_reason") or finish
        if not done:
            return "stream_without_done"
        if finish == "content_filter":  # an output step blocked (or timed out and failed closed) mid-stream
            return "stream_content_filter"
        return None if "".join(content) == EXPECTED else "wrong_content"


async def client(urls: list[str], key: str, index: int, deadline: float, tally: Tally, think_s: float) -> None:
    timeout = aiohttp.ClientTimeout(total=120)
    # Idle connections are dropped before uvicorn's 5 s keep-alive does: otherwise a request sent on a
    # connection the server is closing that instant never arrives (ClientOSError in a 30 s run with --think-s 2).
    connector = aiohttp.TCPConnector(keepalive_timeout=3.0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        turn = 0
        while time.monotonic() < deadline:
            url = urls[(index + turn) % len(urls)]  # alternate replicas, like a round-robin balancer
            turn += 1
            tally.sent += 1
            start = time.perf_counter()
            try:
                problem = await stream_once(session, url, key, index * 1_000_000 + turn)
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:  # ValueError: a body that is not JSON
                problem = type(exc).__name__
            if problem is None:
                tally.latencies_ms.append((time.perf_counter() - start) * 1000)
            else:
                tally.error(problem)
            if think_s > 0:  # a person reads the answer before the next question
                await asyncio.sleep(think_s)


async def load(
    urls: list[str], key: str, concurrency: int, duration_s: float, think_s: float = 0.0
) -> tuple[Tally, float]:
    tally = Tally()
    started = time.monotonic()
    deadline = started + duration_s
    await asyncio.gather(*(client(urls, key, i, deadline, tally, think_s) for i in range(concurrency)))
    return tally, time.monotonic() - started


def percentile(values: list[float], q: float) -> float:
    """The project's nearest-rank percentile, rounded for the report; 0.0 when nothing was served."""
    found = nearest_rank(values, q)
    return 0.0 if found is None else round(found, 1)


def audit_rows(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM audit_records").fetchone()
    return int(row[0]) if row else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=300.0, help="Seconds of load (default 300).")
    parser.add_argument("--concurrency", type=int, default=64, help="Concurrent streaming clients.")
    parser.add_argument(
        "--think-s",
        type=float,
        default=0.0,
        help="Pause of each client between its requests (default 0: every client sends back to back).",
    )
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "soak_replicas.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="guardproxy-soak-") as tmp, ExitStack() as databases, ExitStack() as stack:
        directory = Path(tmp)
        pg, redis = PgServer(), RedisServer()
        databases.callback(pg.remove)
        pg.start()
        databases.callback(pg.stop)
        databases.callback(redis.remove)
        redis.start()
        pg_url = pg.create_database()
        store = SQLiteKeyStore(directory / "keys.db")
        key, _ = store.create(NewKey("soak", rpm=10**9, tpm=10**12), now=time.time())
        store.close()
        policy = soak_policy(directory, pg_url, redis.url, directory / "keys.db")
        upstream_port = free_port()
        env = {"PYTHONPATH": str(ROOT), "UPSTREAM_URL": f"http://127.0.0.1:{upstream_port}/v1", "OPENAI_API_KEY": ""}
        stack.enter_context(
            running_server(
                "upstream",
                [sys.executable, str(ROOT / "bench" / "upstream.py"), "--port", str(upstream_port)],
                base_url=f"http://127.0.0.1:{upstream_port}",
                ready_path="/healthz",
                env=env,
                cwd=directory,
                ready_timeout_s=30,
            )
        )
        replicas = []
        for name in ("replica-a", "replica-b"):
            port = free_port()
            command = [sys.executable, "-m", "guardproxy", "serve", "--policy", str(policy), "--port", str(port)]
            replicas.append(
                stack.enter_context(
                    running_server(
                        name,
                        [*command, "--no-watch"],
                        base_url=f"http://127.0.0.1:{port}",
                        ready_path="/healthz",
                        env=env,
                        cwd=directory,
                        ready_timeout_s=180,  # models load at start-up
                    )
                )
            )
        urls = [r.base_url for r in replicas]
        warm, _ = asyncio.run(load(urls, key, 2, 3.0))  # first requests pay lazy initialisation
        if warm.errors:
            raise SystemExit(f"warm-up failed: {warm.errors}\n{replicas[0].log_tail()}\n{replicas[1].log_tail()}")
        rss_start = {r.name: rss_mb(r.pid) for r in replicas}
        load_before = os.getloadavg()
        tally, elapsed = asyncio.run(load(urls, key, args.concurrency, args.duration, args.think_s))
        load_after = os.getloadavg()
        rss_end = {r.name: rss_mb(r.pid) for r in replicas}
        stack.close()  # stops the replicas (SIGTERM: drain, flush the audit queue), then the upstream
        rows = audit_rows(pg_url)  # PostgreSQL and Redis stop after this
    latencies = sorted(tally.latencies_ms)
    results = {
        "command": f"python bench/soak_replicas.py --duration {args.duration:g} --concurrency {args.concurrency} --think-s {args.think_s:g}",
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "policy": "policy.yaml (shipped detectors) + auth keys + audit.url (PostgreSQL) + state.url (Redis)",
        "replicas": 2,
        "concurrency": args.concurrency,
        "think_s": args.think_s,
        "load_average_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
        "duration_s": round(elapsed, 1),
        "requests_sent": tally.sent + warm.sent,
        "requests_ok": len(latencies),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": percentile(latencies, 0.5),
        "p99_ms": percentile(latencies, 0.99),
        "mean_ms": round(statistics.fmean(latencies), 1) if latencies else 0.0,
        "errors": tally.errors,
        "audit_rows": rows,
        "rss_mb_start": rss_start,
        "rss_mb_end": rss_end,
    }
    results["audit_rows_equal_requests_sent"] = results["audit_rows"] == results["requests_sent"]
    print(json.dumps(results, indent=2))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    if not results["audit_rows_equal_requests_sent"]:
        raise SystemExit("audit rows != requests sent")


if __name__ == "__main__":
    main()
