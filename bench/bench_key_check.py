"""Per-request cost of checking an API key (issue 13: "the per-request overhead of key checking").

Times `Access.check` as the app calls it for every request with `auth.mode: keys`: parse the bearer header,
SHA-256 the key, look it up, check expiry and role. Three cases:
- `cached`: the key was checked less than `auth.cache_ttl_s` ago (almost every request of a busy client);
- `store`: the cache is off (`cache_ttl_s: 0`), so each check is a SQLite lookup by primary key
  (what a client pays once per TTL);
- `mode_none`: `auth.mode: none`, the check the default policy pays.
The store holds `--keys` keys. Timed in-process with perf_counter_ns; p50/p99 in microseconds.

    python bench/bench_key_check.py                  # writes bench/results/key_check.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

from guardproxy.auth.access import Access
from guardproxy.auth.keys import NewKey, Role, SQLiteKeyStore
from guardproxy.policies.schema import AuthConfig


def time_checks(access: Access, header: str, n: int) -> dict[str, float]:
    samples = []
    for _ in range(n):
        start = time.perf_counter_ns()
        access.check(header, Role.CLIENT)
        samples.append((time.perf_counter_ns() - start) / 1000)
    samples.sort()
    return {
        "p50_us": round(statistics.median(samples), 2),
        "p99_us": round(samples[int(len(samples) * 0.99)], 2),
        "n": n,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=1000, help="Keys in the store.")
    parser.add_argument("--n", type=int, default=20_000, help="Checks timed per case.")
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results" / "key_check.json")
    args = parser.parse_args()
    results: dict[str, object] = {"python": platform.python_version(), "machine": platform.machine(), "keys": args.keys}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "keys.db"
        store = SQLiteKeyStore(path)
        now = time.time()
        secrets = [store.create(NewKey(f"k{i}"), now=now)[0] for i in range(args.keys)]
        store.close()
        header = f"Bearer {secrets[args.keys // 2]}"
        for case, config in (
            ("cached", AuthConfig(mode="keys", keys_path=str(path), cache_ttl_s=60)),
            ("store", AuthConfig(mode="keys", keys_path=str(path), cache_ttl_s=0)),
            ("mode_none", AuthConfig()),
        ):
            access = Access.open(lambda config=config: config)  # type: ignore[misc]
            access.check(header, Role.CLIENT)  # warm
            results[case] = time_checks(access, header, args.n)
            access.close()
    print(json.dumps(results, indent=2))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
