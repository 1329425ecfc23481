"""Per-request cost of the rate-limit check (issue 13, item 4).

Times what `serve` adds for a keyed request: `(await MemoryRateLimiter.admit(key)).headers()` (count the request,
build the `x-ratelimit-*` headers) and, separately, `charge(key, tokens)` (once the answer's usage is known).
The key has rpm, tpm and a budget set (every header built); its limits are high enough never to refuse.
`--keys` other keys are active in the same window. Timed in-process with perf_counter_ns; p50/p99 in µs.
The same calls are timed, in the same run, for a key whose budget is per month (`--budget-period month`):
the period's bounds are worked out on every call.

    python bench/bench_rate_limit.py                 # writes bench/results/rate_limit.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from guardproxy.auth.keys import ApiKey, Role
from guardproxy.auth.limits import MemoryRateLimiter
from guardproxy.auth.periods import BudgetPeriod

BIG = 10**12


def api_key(i: int, period: BudgetPeriod = BudgetPeriod.TOTAL) -> ApiKey:
    return ApiKey(
        key_hash=f"{i:064x}", prefix=f"gp-{i:08d}", name=f"k{i}", role=Role.CLIENT, models=None, profile=None,
        rpm=BIG, tpm=BIG, budget_tokens=BIG, created=0.0, expires=None, revoked=None, budget_period=period,
    )  # fmt: skip


async def timed(call: Callable[[], Awaitable[object]], n: int) -> dict[str, float]:
    """Timed inside one coroutine, as the app awaits the limiter on its event loop."""
    samples = []
    for _ in range(n):
        start = time.perf_counter_ns()
        await call()
        samples.append((time.perf_counter_ns() - start) / 1000)
    samples.sort()
    return {"p50_us": round(statistics.median(samples), 2), "p99_us": round(samples[int(n * 0.99)], 2), "n": n}


async def measure(keys: int, n: int) -> dict[str, object]:
    limiter = MemoryRateLimiter()
    for i in range(keys):
        await limiter.admit(api_key(i))
    results: dict[str, object] = {"python": platform.python_version(), "machine": platform.machine(), "keys": keys}
    for suffix, key in (("", api_key(keys)), ("_monthly", api_key(keys + 1, BudgetPeriod.MONTH))):

        async def admit_and_headers(key: ApiKey = key) -> object:
            return (await limiter.admit(key)).headers()

        async def charge(key: ApiKey = key) -> None:
            await limiter.charge(key, 100)

        results["admit_and_headers" + suffix] = await timed(admit_and_headers, n)
        results["charge" + suffix] = await timed(charge, n)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=1000, help="Other keys active in the window.")
    parser.add_argument("--n", type=int, default=50_000, help="Calls timed per case.")
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results" / "rate_limit.json")
    args = parser.parse_args()
    results = asyncio.run(measure(args.keys, args.n))
    print(json.dumps(results, indent=2))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
