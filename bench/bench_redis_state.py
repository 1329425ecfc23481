"""Per-request cost of shared state: in-process vs Redis (`state.url`), Redis round trips included.

For a keyed request `serve` runs: the key check (`KeyGuard.authenticate`, a cache hit as in steady state),
`admit` + the `x-ratelimit-*` headers, and after the answer `charge`. With Redis, `admit` and `charge` are one
Lua script each (two round trips). For an anonymizing chat turn after the first the vault adds `open`,
`issue` (when the request holds personal data) and the next turn's `link`: three round trips (the case also
writes the previous turn's link first, so it shows four). Each case is timed inside one coroutine on the
event loop, as the app awaits it, the cases interleaved call by call; p50/p99 in µs. Redis is a local
`redis-server` over TCP on 127.0.0.1 (tests/redis_server.py): the round trip is the loopback's, a remote
Redis adds the network's.

    python bench/bench_redis_state.py                  # writes bench/results/redis_state.json
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
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ and bench/ as packages from a checkout

from guardproxy.auth.guard import KeyGuard
from guardproxy.auth.keys import NewKey, Role, SQLiteKeyStore
from guardproxy.auth.limits import MemoryRateLimiter, RateLimiter
from guardproxy.policies.schema import StateConfig
from guardproxy.state import SharedState, open_state
from guardproxy.state.conversation import conversation_of, tenant_of
from guardproxy.state.vault import Sensitive
from tests.redis_server import RedisServer

BIG = 10**12


Case = Callable[[], Awaitable[object]]


def summary(samples: list[float]) -> dict[str, float]:
    samples.sort()
    n = len(samples)
    return {"p50_us": round(statistics.median(samples), 1), "p99_us": round(samples[int(n * 0.99)], 1), "n": n}


async def interleaved(cases: dict[str, Case], n: int) -> dict[str, dict[str, float]]:
    """Each case once per round, in turn: load from other processes falls on all of them alike."""
    for case in cases.values():  # warm: connections made, scripts loaded
        for _ in range(min(200, n)):
            await case()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(n):
        for name, case in cases.items():
            start = time.perf_counter_ns()
            await case()
            samples[name].append((time.perf_counter_ns() - start) / 1000)
    return {name: summary(values) for name, values in samples.items()}


def cases_of(shared: SharedState, guard: KeyGuard, secret: str) -> tuple[Case, Case]:
    limiter: RateLimiter = shared.limiter
    authorization = f"Bearer {secret}"

    async def keyed_request() -> object:
        caller = guard.authenticate(authorization, Role.CLIENT)
        headers = (await limiter.admit(caller.key)).headers()
        await limiter.charge(caller.key, 86)
        return headers

    counter = iter(range(10**9))

    async def anonymizing_turn() -> object:
        """A second chat turn with one new e-mail address: open (follow the link), issue, link the next turn."""
        i = next(counter)
        tenant = tenant_of("k" * 64, None)
        turn1 = {"messages": [{"role": "user", "content": f"hello {i}"}]}
        await shared.conversations.vault.link(conversation_of("chat", turn1, None, tenant).next_turn("Hi."), f"c{i}")
        body = {
            "messages": [
                *turn1["messages"],
                {"role": "assistant", "content": "Hi."},
                {"role": "user", "content": f"mail u{i}@example.com"},
            ]
        }
        ref = conversation_of("chat", body, None, tenant)
        opened = await shared.conversations.open(ref, f"gp-{i}")
        await shared.conversations.issue(opened, [Sensitive("EMAIL_ADDRESS", f"u{i}@example.com")])
        await shared.conversations.finish(opened, "Sent.")
        return opened

    return keyed_request, anonymizing_turn


async def run(n: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteKeyStore(Path(tmp) / "keys.db")
        secret, _ = store.create(NewKey("bench", rpm=BIG, tpm=BIG, budget_tokens=BIG), now=time.time())
        guard = KeyGuard(store, cache_ttl_s=3600)
        results: dict[str, object] = {"python": platform.python_version(), "machine": platform.machine()}
        # The machine is shared: a high load inflates every figure; the cases are interleaved, so compare them
        # within one run.
        results["loadavg_1m_before"] = os.getloadavg()[0]
        server = RedisServer()
        memory = open_state(StateConfig())
        assert isinstance(memory.limiter, MemoryRateLimiter)
        try:
            server.start()
            redis = open_state(StateConfig(url=server.url))
            assert redis.client is not None
            memory_keyed, memory_turn = cases_of(memory, guard, secret)
            redis_keyed, redis_turn = cases_of(redis, guard, secret)
            # Two groups, each interleaved with a bare PING (the loopback round trip under the same load).
            results["keyed_request"] = await interleaved(
                {"memory": memory_keyed, "redis": redis_keyed, "redis_ping": redis.client.ping}, n
            )
            results["anonymizing_turn"] = await interleaved(
                {"memory": memory_turn, "redis": redis_turn, "redis_ping": redis.client.ping}, n
            )
            await redis.aclose()
        finally:
            await memory.aclose()
            server.remove()
            guard.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=5000, help="Requests timed per case.")
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results" / "redis_state.json")
    args = parser.parse_args()
    results = asyncio.run(run(args.n))
    results["loadavg_1m_after"] = os.getloadavg()[0]
    results["command"] = f"python bench/bench_redis_state.py --n {args.n}"
    print(json.dumps(results, indent=2))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
