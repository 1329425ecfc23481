"""What policy profiles cost: runtime build time and the per-request profile lookup, for 0/10/100 profiles.

Also checks that profiles share the detector instances (one per `detectors:` entry, whatever the profile count).
Run: `PYTHONPATH=. python bench/bench_profiles.py` (no network; the backends are never called).
"""

from __future__ import annotations

import time
import timeit
from functools import partial

from guardproxy.policies.loader import parse_policy
from guardproxy.policies.schema import Policy
from guardproxy.proxy.runtime import build_runtime
from tests.policies import STANDARD

PROFILE = """  p{i}:
    input:
      - {{detector: banned, action: block}}
      - {{detector: pii, action: anonymize}}
    output:
      - {{detector: banned, action: block}}
"""


def policy(profiles: int) -> Policy:
    extra = "profiles:\n" + "".join(PROFILE.format(i=i) for i in range(profiles)) if profiles else ""
    text = STANDARD.format(
        upstream="http://127.0.0.1:1/v1",
        dead_port=2,
        audit="/tmp/x.db",
        code="content_filter",
        timeout_s=1,
        extra=extra,
    )
    return parse_policy(text)


def main() -> None:
    build_runtime(policy(0))  # warm-up: imports and compiled patterns
    for n in (0, 10, 100):
        p = policy(n)
        started = time.perf_counter()
        rt = build_runtime(p)
        build_ms = (time.perf_counter() - started) * 1000
        chains = [rt.default, *rt.profiles.values()]
        instances = {id(s.detector) for c in chains for s in (*c.input.text_steps, *c.output.text_steps)}
        name = "p0" if n else None
        lookup_ns = min(timeit.repeat(partial(rt.chains, name), number=100_000, repeat=5)) / 100_000 * 1e9
        print(
            f"profiles={n:>3}: build_runtime {build_ms:5.1f} ms, detector instances {len(instances)} "
            f"(policy detectors {len(rt.detectors)}), chains() {lookup_ns:.0f} ns"
        )


if __name__ == "__main__":
    main()
