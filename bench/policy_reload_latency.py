"""Seconds from a policy write (write-then-rename) to the watcher's callback, with the proxy's defaults
(poll every 1 s, new content applied once it is unchanged at the next poll).

    python bench/policy_reload_latency.py [TRIALS]
"""

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from guardproxy.policies import PolicyWatcher, load_policy

POLICY = "backends:\n  u: {{type: openai}}\nmodels:\n  - {{name: m, backend: u}}\ndetectors:\n  i: {{type: injection_heuristic}}\ninput:\n  - {{detector: i, action: block, threshold: {t}}}\n# end of policy\n"


async def main(trials: int) -> None:
    path = Path(tempfile.mkdtemp()) / "policy.yaml"
    path.write_text(POLICY.format(t=0.5))
    applied: asyncio.Queue[float] = asyncio.Queue()

    async def on_change(_p: object) -> None:
        applied.put_nowait(time.monotonic())

    w = PolicyWatcher(path, on_change, current=load_policy(path))
    task = asyncio.create_task(w.run())
    await asyncio.sleep(2.5)
    lat = []
    for n in range(trials):
        await asyncio.sleep(0.37 * (n % 3))  # vary the phase against the poll
        started = time.monotonic()
        tmp = path.with_suffix(".tmp")
        tmp.write_text(POLICY.format(t=0.6 + n / 100))
        os.replace(tmp, path)
        lat.append(await asyncio.wait_for(applied.get(), 10) - started)
    task.cancel()
    print(f"n={trials} min {min(lat):.2f} s  median {statistics.median(lat):.2f} s  max {max(lat):.2f} s")


asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 8))
