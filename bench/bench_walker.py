"""What checking every string costs: the shipped input chain on a chat request, by what the walker yields.

Runs the input chain of a policy (default: policy.yaml, the model detectors on onnxruntime) in-process,
as the gateway does (one chain check per text, concurrently), on three versions of one request:

- `content only`: the message texts alone, what the chain saw before the walker;
- `walker, no tools`: every string the walker yields for the same request (message names, metadata...);
- `walker, 4 tools`: the same request declaring four typical tools (names, descriptions, parameter schemas).

    python bench/bench_walker.py [--policy policy.yaml] [--repeats 200] [--out bench/results/walker.json]

Prints p50/p99 per case and the ratio to `content only`, measured in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import platform
import time
from pathlib import Path
from typing import Any

from guardproxy.core import Context
from guardproxy.evaluation.metrics import percentile
from guardproxy.policies.loader import load_policy
from guardproxy.proxy.runtime import build_runtime
from guardproxy.proxy.walker import checked_texts, walk_request

MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant for a travel agency. Answer briefly."},
    {
        "role": "user",
        "content": "I need to fly from Berlin to Lisbon next Tuesday, morning if possible.",
        "name": "traveller",
    },
    {"role": "assistant", "content": "Sure. Do you have a preferred airline or a budget?"},
    {"role": "user", "content": "No airline preference; under 200 euros. Also, what's the weather like there?"},
]


def _tool(name: str, description: str, params: dict[str, str]) -> dict[str, Any]:
    properties = {p: {"type": "string", "description": d} for p, d in params.items()}
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": properties, "required": list(params)},
        },
    }


TOOLS = [
    _tool("search_flights", "Search flights between two airports on a date.", {"origin": "IATA code of the departure airport", "destination": "IATA code of the arrival airport", "date": "Departure date, YYYY-MM-DD"}),
    _tool("get_weather", "Get the current weather forecast for a city.", {"city": "City name, e.g. Lisbon", "unit": "celsius or fahrenheit"}),
    _tool("book_flight", "Book a flight the user has chosen.", {"flight_id": "The id returned by search_flights", "passenger": "Full name of the passenger"}),
    _tool("convert_currency", "Convert an amount between currencies.", {"amount": "The amount to convert", "from": "ISO code", "to": "ISO code"}),
]  # fmt: skip


def _nearest_rank(values: list[float], q: float) -> float:
    value = percentile(values, q)
    assert value is not None, "no timings"
    return value


async def _measure(policy_path: Path, repeats: int) -> dict[str, Any]:
    rt = build_runtime(load_policy(policy_path))
    chain = rt.input
    base = {"model": "gpt-4o-mini", "messages": MESSAGES, "user": "customer-4821", "metadata": {"channel": "web"}}
    cases: dict[str, list[tuple[str, str]]] = {
        "content only": [(m["role"], m["content"]) for m in MESSAGES],
        "walker, no tools": [(s.role, s.text) for s in checked_texts(walk_request("chat", copy.deepcopy(base)).slots)],
        "walker, 4 tools": [
            (s.role, s.text) for s in checked_texts(walk_request("chat", {**copy.deepcopy(base), "tools": TOOLS}).slots)
        ],
    }

    async def once(texts: list[tuple[str, str]]) -> float:
        started = time.perf_counter()
        await asyncio.gather(*(chain.check(t, Context("bench", "input", r, "gpt-4o-mini")) for r, t in texts))
        return (time.perf_counter() - started) * 1000.0

    results: dict[str, Any] = {}
    for texts in cases.values():  # warm-up: model sessions, caches of the first call
        await once(texts)
    timings: dict[str, list[float]] = {name: [] for name in cases}
    for i in range(repeats):  # interleaved, so drift from the other processes hits every case alike
        for name, texts in cases.items():
            # A fresh suffix per round: the classifier's text cache must not answer for the model.
            fresh = [(r, f"{t} #{i}") for r, t in texts]
            timings[name].append(await once(fresh))
    for name, texts in cases.items():
        results[name] = {
            "texts": len(texts),
            "p50_ms": round(_nearest_rank(timings[name], 0.5), 2),
            "p99_ms": round(_nearest_rank(timings[name], 0.99), 2),
        }
    base_p50 = results["content only"]["p50_ms"]
    for r in results.values():
        r["p50_ratio"] = round(r["p50_ms"] / base_p50, 2)
    await rt.aclose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", type=Path, default=Path("policy.yaml"))
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("bench/results/walker.json"))
    args = parser.parse_args()
    results = asyncio.run(_measure(args.policy, args.repeats))
    for name, r in results.items():
        print(
            f"{name:18} texts {r['texts']:3}  p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms  x{r['p50_ratio']}"
        )
    record = {
        "command": f"python bench/bench_walker.py --policy {args.policy} --repeats {args.repeats}",
        "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
        "results": results,
    }
    args.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
