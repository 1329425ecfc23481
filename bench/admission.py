"""Does one huge prompt lock ordinary clients out? (issue 10, item 1: "a 1 MB prompt sent while 8 clients run
ordinary traffic costs them no refusals").

Runs `guardproxy serve` with the shipped `policy.yaml` (model detectors: the ONNX guard classifier for injection
and moderation, Presidio for PII) in front of `bench/upstream.py`. Eight closed-loop clients send ordinary chat
requests (a short, harmless prompt, different each time so the classifier cache does not answer) for
`--duration` seconds; at `--big-at` seconds one more client sends a single prompt of `--big-chars` characters.
Reported per variant: the ordinary clients' outcomes (200 / refused, with the error codes) before and after the
big prompt was sent, their p50/p99 latency, and what the big prompt got and when.

Variants (`--variants`):
- `after`: this tree, the shipped policy (default limits: 413 before any detector runs).
- `after-no-limit`: this tree with `proxy.max_text_chars`/`max_request_chars` raised so the big prompt reaches
  the detectors: what the model queue's fairness and dropping of abandoned work do on their own.
- `before`: the code at `--before-tree` (e.g. `git archive <commit> | tar -x -C /tmp/gp-before`), same policy.

    python bench/admission.py --before-tree /tmp/gp-before
    python bench/admission.py --variants after --duration 10       # quick look

Results: printed, and written to bench/results/admission.json (`--output`).
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
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import servers

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
MODEL = "gpt-4o-mini"
TOPICS = [
    "a name for a small bakery that sells sourdough bread",
    "how to convert a list of strings to integers in Python",
    "a friendly reminder that the team meeting moved to Thursday",
    "three tips for keeping basil alive on a windowsill",
    "the difference between a list and a tuple in Python",
    "a short packing list for a weekend hiking trip",
    "how to explain photosynthesis to a ten-year-old",
    "a simple recipe for tomato soup",
]
NO_LIMIT = "\nproxy:\n  max_text_chars: 4000000\n  max_request_chars: 4000000\n"


@dataclass
class Outcomes:
    statuses: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)
        ok = self.statuses.get("200", 0)
        return {
            "requests": sum(self.statuses.values()),
            "ok": ok,
            "refused_or_failed": sum(self.statuses.values()) - ok,
            "by_outcome": dict(self.statuses),
            "p50_ms": round(statistics.median(lat), 1) if lat else None,
            "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 1) if lat else None,
        }


def _outcome(response: httpx.Response) -> str:
    if response.status_code == 200:
        return "200"
    try:
        error = response.json()["error"]
        fired = error.get("guardproxy")  # which step refused, and why: its labels, or detector_error (timed out)
        detail = f"{fired['step']} {','.join(fired['labels'])}" if fired else error.get("code")
    except (ValueError, KeyError, TypeError, AttributeError):
        detail = "?"
    return f"{response.status_code} {detail}"


def _prompt(client: int, n: int) -> str:
    return f"Request {n} from desk {client}: please suggest {TOPICS[(client + n) % len(TOPICS)]}."


async def _ordinary(
    url: str, client: int, deadline: float, big_sent: asyncio.Event, phases: dict[str, Outcomes]
) -> None:
    async with httpx.AsyncClient(timeout=60) as http:
        n = 0
        while time.monotonic() < deadline:
            phase = phases["after_big_prompt" if big_sent.is_set() else "before_big_prompt"]
            body = {"model": MODEL, "messages": [{"role": "user", "content": _prompt(client, n)}]}
            started = time.perf_counter()
            try:
                response = await http.post(url, json=body, headers={"authorization": f"Bearer client-{client}"})
                phase.statuses[_outcome(response)] += 1
            except httpx.HTTPError as exc:
                phase.statuses[type(exc).__name__] += 1
            phase.latencies_ms.append((time.perf_counter() - started) * 1000.0)
            n += 1


async def _big(url: str, at_s: float, chars: int, big_sent: asyncio.Event, result: dict[str, Any]) -> None:
    await asyncio.sleep(at_s)
    unit = "Summarise this report about garden tools, please. "
    text = (unit * (chars // len(unit) + 1))[:chars]
    async with httpx.AsyncClient(timeout=120) as http:
        big_sent.set()
        started = time.perf_counter()
        try:
            response = await http.post(
                url,
                json={"model": MODEL, "messages": [{"role": "user", "content": text}]},
                headers={"authorization": "Bearer the-big-one"},
            )
            result["outcome"] = _outcome(response)
        except httpx.HTTPError as exc:
            result["outcome"] = type(exc).__name__
        result["latency_s"] = round(time.perf_counter() - started, 2)


async def _load(url: str, clients: int, duration_s: float, big_at_s: float | None, big_chars: int) -> dict[str, Any]:
    phases = {"before_big_prompt": Outcomes(), "after_big_prompt": Outcomes()}
    big_sent = asyncio.Event()
    big: dict[str, Any] = {"chars": big_chars, "sent_at_s": big_at_s}
    deadline = time.monotonic() + duration_s
    senders = [_ordinary(url, i, deadline, big_sent, phases) for i in range(clients)]
    if big_at_s is not None:
        senders.append(_big(url, big_at_s, big_chars, big_sent, big))
    await asyncio.gather(*senders)
    everything = Outcomes()
    for p in phases.values():
        everything.statuses.update(p.statuses)
        everything.latencies_ms += p.latencies_ms
    return {
        "ordinary_clients": {"all": everything.summary(), **{k: v.summary() for k, v in phases.items()}},
        "big_prompt": big,
    }


def run_variant(name: str, tree: Path, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    policy = workdir / f"{name}.yaml"
    policy.write_text((tree / "policy.yaml").read_text() + (NO_LIMIT if name == "after-no-limit" else ""))
    up_port, gp_port = servers.free_port(), servers.free_port()
    upstream_cmd = [sys.executable, str(BENCH_DIR / "upstream.py"), "--port", str(up_port)]
    proxy_cmd = [
        sys.executable,
        "-m",
        "guardproxy",
        "serve",
        "--policy",
        str(policy),
        "--port",
        str(gp_port),
        "--no-watch",
    ]
    env = {
        "UPSTREAM_URL": f"http://127.0.0.1:{up_port}/v1",
        "PYTHONPATH": str(tree),
        "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS": "",
    }
    with (
        servers.running_server(
            "upstream",
            upstream_cmd,
            base_url=f"http://127.0.0.1:{up_port}",
            ready_path="/healthz",
            env={},
            cwd=workdir,
            ready_timeout_s=10,
        ),
        servers.running_server(
            f"guardproxy-{name}",
            proxy_cmd,
            base_url=f"http://127.0.0.1:{gp_port}",
            ready_path="/healthz",
            env=env,
            cwd=workdir,
            ready_timeout_s=120,
        ),
    ):
        url = f"http://127.0.0.1:{gp_port}/v1/chat/completions"
        asyncio.run(_load(url, args.clients, 3.0, None, 0))  # warm-up: models loaded, caches filled
        return asyncio.run(_load(url, args.clients, args.duration, args.big_at, args.big_chars))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=["before", "after", "after-no-limit"])
    parser.add_argument("--before-tree", type=Path, help="Source tree of the code to compare against.")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--big-at", type=float, default=10.0)
    parser.add_argument("--big-chars", type=int, default=1_000_000)
    parser.add_argument("--output", type=Path, default=BENCH_DIR / "results" / "admission.json")
    args = parser.parse_args()
    if "before" in args.variants and args.before_tree is None:
        parser.error("the `before` variant needs --before-tree")
    results: dict[str, Any] = {
        "command": "python bench/admission.py " + " ".join(sys.argv[1:]),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "settings": {k: v for k, v in vars(args).items() if k in ("clients", "duration", "big_at", "big_chars")},
        "variants": {},
    }
    with tempfile.TemporaryDirectory(prefix="gp-admission-") as tmp:
        for name in args.variants:
            tree = args.before_tree if name == "before" else REPO_DIR
            assert tree is not None
            result = run_variant(name, tree.resolve(), args, Path(tmp))
            results["variants"][name] = result
            print(json.dumps({name: result}, indent=2), flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
