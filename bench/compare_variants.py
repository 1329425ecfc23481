"""Compare guardproxy builds that differ in one part, back to back, under the same machine load.

    python bench/compare_variants.py --variants aiohttp httpx-over-aiohttp httpx --rounds 3

Each round starts every variant in turn (``bench/serve_variant.py``, the shipped policy, one process),
measures it at each concurrency with ``wrk`` against ``bench/upstream.py``, and stops it. Interleaving the
variants over several rounds spreads slow drifts of background load over all of them; the medians over the
rounds are printed. Server CPU ms per request is the steadier column on a shared machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import bench_gateway
import loadgen
import servers

BENCH_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True, slots=True)
class Sample:
    variant: str
    concurrency: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_req: float


def variant_command(variant: str, policy: Path, port: int) -> list[str]:
    script = str(BENCH_DIR / "serve_variant.py")
    return [sys.executable, script, "--variant", variant, "--policy", str(policy), "--port", str(port)]


def measure(
    commands: Mapping[str, Sequence[str]],
    *,
    rounds: int,
    concurrency: Sequence[int],
    duration_s: float,
    warmup_s: float,
) -> list[Sample]:
    """`commands` maps a variant name to a server command whose last argument is replaced by the port."""
    wrk_bin = loadgen.wrk_binary()
    if wrk_bin is None:
        raise SystemExit("wrk not found: `apt-get install -y wrk`")
    samples: list[Sample] = []
    with tempfile.TemporaryDirectory(prefix="bench-variants-") as tmp:
        workdir = Path(tmp)
        upstream_port = servers.free_port()
        upstream_command = [sys.executable, str(BENCH_DIR / "upstream.py"), "--port", str(upstream_port)]
        upstream_url = f"http://127.0.0.1:{upstream_port}"
        with servers.running_server(
            "upstream",
            upstream_command,
            base_url=upstream_url,
            ready_path="/healthz",
            env={},
            cwd=workdir,
            ready_timeout_s=60,
        ):
            for round_index in range(rounds):
                for name, command in commands.items():
                    cwd = workdir / f"{name}-{round_index}"
                    cwd.mkdir()
                    port = servers.free_port()
                    with servers.running_server(
                        name,
                        [*command[:-1], str(port)],
                        base_url=f"http://127.0.0.1:{port}",
                        ready_path="/healthz",
                        env={"UPSTREAM_URL": upstream_url + "/v1"},
                        cwd=cwd,
                        ready_timeout_s=60,
                    ) as server:
                        samples.extend(_measure_server(name, server, wrk_bin, concurrency, duration_s, warmup_s))
    return samples


def _measure_server(
    name: str,
    server: servers.RunningServer,
    wrk_bin: str,
    concurrency: Sequence[int],
    duration_s: float,
    warmup_s: float,
) -> list[Sample]:
    url = server.base_url + bench_gateway.COMPLETIONS_PATH
    headers = bench_gateway._headers(bench_gateway.report.GUARDPROXY)
    body = bench_gateway.REQUEST_BODY
    servers.check_completion(server, url, body, headers, bench_gateway.EXPECTED_CONTENT)
    samples = []
    for conc in concurrency:
        loadgen.run_wrk(wrk_bin, url, body, headers, conc, warmup_s)
        cpu_before = servers.process_group_cpu_s(server.pid) or 0.0
        result = loadgen.run_wrk(wrk_bin, url, body, headers, conc, duration_s)
        cpu_after = servers.process_group_cpu_s(server.pid) or 0.0
        if result.errors:
            raise SystemExit(f"{name}: {result.errors} failed requests")
        cpu_ms = (cpu_after - cpu_before) * 1e3 / max(result.ok_requests, 1)
        sample = Sample(name, conc, result.requests_per_s, result.p50_ms, result.p99_ms, cpu_ms)
        print(
            f"  {name:<20} c={conc:<3} {sample.requests_per_s:8.1f} req/s  p50 {sample.p50_ms:6.2f} ms  "
            f"p99 {sample.p99_ms:7.2f} ms  cpu {sample.cpu_ms_per_req:.3f} ms/req",
            flush=True,
        )
        samples.append(sample)
    return samples


def summary(samples: Sequence[Sample]) -> str:
    lines = [f"{'variant':<20} {'conc':>4} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'cpu ms/req':>11}  (medians)"]
    keys = dict.fromkeys((s.variant, s.concurrency) for s in samples)
    for variant, conc in sorted(keys, key=lambda k: (k[1], list(keys).index(k))):
        group = [s for s in samples if (s.variant, s.concurrency) == (variant, conc)]
        lines.append(
            f"{variant:<20} {conc:>4} {statistics.median(s.requests_per_s for s in group):9.1f} "
            f"{statistics.median(s.p50_ms for s in group):8.2f} {statistics.median(s.p99_ms for s in group):8.2f} "
            f"{statistics.median(s.cpu_ms_per_req for s in group):11.3f}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["aiohttp", "httpx-over-aiohttp", "httpx"])
    parser.add_argument("--policy", type=Path, default=bench_gateway.REPO_DIR / "policy.yaml")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", nargs="+", type=int, default=[1, 32])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    args = parser.parse_args(argv)
    commands = {v: variant_command(v, args.policy.resolve(), 0) for v in args.variants}
    samples = measure(
        commands, rounds=args.rounds, concurrency=args.concurrency, duration_s=args.duration, warmup_s=args.warmup
    )
    print("\n" + summary(samples))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
