"""Gateway benchmark: direct upstream vs guardproxy (rules-only policy, bench/policy.rules-only.yaml) vs LiteLLM proxy (no guardrails).

One run starts a fast local OpenAI-compatible upstream, then measures each target in turn (never two at once),
each server with one worker process, at each concurrency: a warm-up (discarded), then a fixed-duration closed-loop
load with the same realistic chat request. It prints a table, the ratios the issue asks for and whether each target
is met, and writes everything (with the environment) to ``bench/results/gateway.json``.

    python bench/bench_gateway.py --litellm-bin /work/bench-venv/bin/litellm

See bench/README.md for installing LiteLLM and wrk and for what each column means.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict
from pathlib import Path

import loadgen
import report
import servers

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
MODEL = "gpt-4o-mini"
EXPECTED_CONTENT = "Sure: the meeting is moved to Thursday at 10:00."  # what bench/upstream.py answers
LITELLM_MASTER_KEY = "sk-bench-master-key"
CLIENT_KEY = "sk-bench-client"
COMPLETIONS_PATH = "/v1/chat/completions"

# ~300 characters of ordinary user text: no personal data, no injection, so every policy step allows it.
REQUEST_BODY = json.dumps(
    {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "You are a concise assistant for a small software team."},
            {
                "role": "user",
                "content": (
                    "Please summarise these meeting notes in three short bullet points. The team agreed to move "
                    "the weekly planning session to Thursday morning, to finish the quarterly report draft by the "
                    "end of next week, and to review the onboarding checklist for new contractors before the next "
                    "sprint starts. Keep it friendly."
                ),
            },
        ],
        "max_tokens": 64,
        "temperature": 0.2,
    }
).encode()


def _default_litellm_bin() -> str | None:
    return shutil.which("litellm") or next(
        (str(p) for p in (REPO_DIR.parent / "bench-venv/bin/litellm",) if p.exists()), None
    )


def _default_guardproxy_bin() -> str | None:
    return shutil.which("guardproxy") or next(
        (str(p) for p in (REPO_DIR / ".venv/bin/guardproxy",) if p.exists()), None
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--targets", nargs="+", default=["direct", "guardproxy", "litellm"], choices=["direct", "guardproxy", "litellm"]
    )
    parser.add_argument("--concurrency", nargs="+", type=int, default=[1, 32])
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per point")
    parser.add_argument("--warmup", type=float, default=2.0, help="discarded seconds before each point")
    parser.add_argument("--guardproxy-bin", default=_default_guardproxy_bin())
    parser.add_argument(
        "--policy", type=Path, default=REPO_DIR / "bench" / "policy.rules-only.yaml", help="guardproxy policy file"
    )
    parser.add_argument("--litellm-bin", default=_default_litellm_bin())
    parser.add_argument("--litellm-config", type=Path, default=BENCH_DIR / "litellm_config.yaml")
    parser.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--output", type=Path, default=BENCH_DIR / "results" / "gateway.json")
    parser.add_argument("--ready-timeout", type=float, default=90.0, help="seconds to wait for a server to start")
    return parser.parse_args(argv)


def _skip_reason(target: str, args: argparse.Namespace) -> str | None:
    """Why a target cannot run here, with the fix; None when it can."""
    if target == report.GUARDPROXY:
        if not args.guardproxy_bin or not Path(args.guardproxy_bin).exists():
            return "guardproxy not found: `pip install -e .` in the repo venv, or pass --guardproxy-bin PATH"
        probe = subprocess.run([args.guardproxy_bin, "serve", "--help"], capture_output=True, check=False)
        if probe.returncode != 0:
            return f"`{args.guardproxy_bin} serve --help` failed: this guardproxy has no `serve` command yet"
        if not args.policy.exists():
            return f"policy file {args.policy} not found (pass --policy PATH)"
    if target == report.LITELLM and (not args.litellm_bin or not Path(args.litellm_bin).exists()):
        return (
            "LiteLLM not found. Install it in its own venv (not the project's), then pass --litellm-bin:\n"
            "    python -m venv /work/bench-venv && /work/bench-venv/bin/pip install 'litellm[proxy]'\n"
            "    python bench/bench_gateway.py --litellm-bin /work/bench-venv/bin/litellm"
        )
    return None


@contextmanager
def _target_server(
    target: str, args: argparse.Namespace, upstream: servers.RunningServer, workdir: Path
) -> Iterator[servers.RunningServer]:
    """The server requests go to: the upstream itself for ``direct``, else a freshly started gateway."""
    if target == report.DIRECT:
        yield upstream
        return
    port = servers.free_port()
    env = {"UPSTREAM_URL": upstream.base_url + "/v1"}
    if target == report.GUARDPROXY:
        command = [
            args.guardproxy_bin,
            "serve",
            "--policy",
            str(args.policy.resolve()),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        ready_path = "/healthz"
    else:
        command = [
            args.litellm_bin,
            "--config",
            str(args.litellm_config.resolve()),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--num_workers",
            "1",
        ]
        env |= {"LITELLM_MASTER_KEY": LITELLM_MASTER_KEY, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        ready_path = "/health/liveliness"
    # Its own working directory: the shipped policy writes its audit database relative to the cwd.
    cwd = workdir / target
    cwd.mkdir()
    with servers.running_server(
        target,
        command,
        base_url=f"http://127.0.0.1:{port}",
        ready_path=ready_path,
        env=env,
        cwd=cwd,
        ready_timeout_s=args.ready_timeout,
    ) as server:
        yield server


def _headers(target: str) -> dict[str, str]:
    key = LITELLM_MASTER_KEY if target == report.LITELLM else CLIENT_KEY
    return {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}


def _measure(
    args: argparse.Namespace,
    wrk_bin: str | None,
    url: str,
    headers: dict[str, str],
    concurrency: int,
    duration_s: float,
) -> loadgen.LoadResult:
    if wrk_bin is not None:
        return loadgen.run_wrk(wrk_bin, url, REQUEST_BODY, headers, concurrency, duration_s)
    return loadgen.run_python(url, REQUEST_BODY, headers, concurrency, duration_s)


def _measure_target(
    target: str, server: servers.RunningServer, args: argparse.Namespace, wrk_bin: str | None
) -> list[report.Point]:
    url = server.base_url + COMPLETIONS_PATH
    headers = _headers(target)
    servers.check_completion(server, url, REQUEST_BODY, headers, EXPECTED_CONTENT)
    points = []
    for concurrency in args.concurrency:
        _measure(args, wrk_bin, url, headers, concurrency, args.warmup)
        loadavg = os.getloadavg()[0]
        cpu_before = servers.process_group_cpu_s(server.pid)
        result = _measure(args, wrk_bin, url, headers, concurrency, args.duration)
        cpu_after = servers.process_group_cpu_s(server.pid)
        cpu_ms_per_req = None
        if cpu_before is not None and cpu_after is not None and result.ok_requests:
            cpu_ms_per_req = (cpu_after - cpu_before) * 1e3 / result.ok_requests
        point = report.Point(
            target,
            concurrency,
            result.requests_per_s,
            result.p50_ms,
            result.p99_ms,
            result.mean_ms,
            result.ok_requests,
            result.errors,
            result.duration_s,
            cpu_ms_per_req,
            loadavg,
        )
        print(
            f"  {target:<11} c={concurrency:<3} {point.requests_per_s:9.1f} req/s  p50 {point.p50_ms:7.2f} ms  "
            f"p99 {point.p99_ms:7.2f} ms  errors {point.errors}",
            flush=True,
        )
        points.append(point)
    return points


def _environment(args: argparse.Namespace, wrk_bin: str | None) -> dict[str, object]:
    def versions_of(executable: str | None, packages: list[str]) -> dict[str, str | None] | None:
        python = servers.interpreter_of(Path(executable)) if executable else None
        return servers.package_versions(python, packages) if python else None

    server_packages = ["uvicorn", "uvloop", "httptools", "httpx", "aiohttp"]
    cpu_model = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else ""
    )
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model,
        "platform": platform.platform(),
        "bench_python": sys.version.split()[0],
        "loadgen": loadgen.wrk_version(wrk_bin) if wrk_bin else "python asyncio (bench/loadgen.py)",
        "guardproxy_env": versions_of(args.guardproxy_bin, ["guardproxy", "litestar", *server_packages]),
        "litellm_env": versions_of(args.litellm_bin, ["litellm", "fastapi", *server_packages]),
        "worker_processes_per_server": 1,
    }


def _choose_wrk(choice: str) -> str | None:
    wrk_bin = loadgen.wrk_binary()
    if choice == "wrk" and wrk_bin is None:
        sys.exit("wrk not found: `apt-get install -y wrk`, or use --loadgen python")
    return None if choice == "python" else wrk_bin


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    wrk_bin = _choose_wrk(args.loadgen)
    print(
        f"load generator: {'wrk' if wrk_bin else 'python asyncio'}; {args.duration:g} s per point after "
        f"{args.warmup:g} s warm-up; concurrency {args.concurrency}",
        flush=True,
    )
    points: list[report.Point] = []
    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        upstream_port = servers.free_port()
        upstream = stack.enter_context(
            servers.running_server(
                "upstream",
                [sys.executable, str(BENCH_DIR / "upstream.py"), "--port", str(upstream_port)],
                base_url=f"http://127.0.0.1:{upstream_port}",
                ready_path="/healthz",
                env={},
                cwd=workdir,
                ready_timeout_s=args.ready_timeout,
            )
        )
        for target in args.targets:
            reason = _skip_reason(target, args)
            if reason is not None:
                print(f"SKIP {target}: {reason}", flush=True)
                skipped[target] = reason
                continue
            print(f"{target}: starting", flush=True)
            started = time.monotonic()
            try:
                with _target_server(target, args, upstream, workdir) as server:
                    print(f"{target}: ready in {time.monotonic() - started:.1f} s", flush=True)
                    points.extend(_measure_target(target, server, args, wrk_bin))
            except servers.ServerFailed as failure:
                print(f"FAIL {target}: {failure}", flush=True)
                skipped[target] = f"failed: {failure}"

    ratios = report.compute_ratios(points, args.concurrency)
    checks = report.evaluate_targets(ratios)
    print("\n" + report.format_table(points))
    print("\nOverhead over direct (ms) and throughput ratios (gp = guardproxy, ll = LiteLLM):")
    print(report.format_ratios(ratios))
    print("\nTargets:\n" + report.format_checks(checks))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "settings": {
                    "duration_s": args.duration,
                    "warmup_s": args.warmup,
                    "concurrency": args.concurrency,
                    "policy": str(args.policy),
                    "request_body_bytes": len(REQUEST_BODY),
                },
                "environment": _environment(args, wrk_bin),
                "results": [asdict(p) for p in points],
                "skipped": skipped,
                "ratios": ratios,
                "targets": report.checks_as_json(checks),
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nwrote {args.output}")
    return 1 if any(p.errors for p in points) or any(r.startswith("failed") for r in skipped.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
