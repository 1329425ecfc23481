"""What serving the Responses API by translation costs per request, against the same request as chat completions.

Two measurements in one run:

- `in process`: the translation alone — a Responses request to the chat body (`to_chat`) and the checked
  chat answer back to a Responses object (`from_chat`) — p50/p99 in microseconds;
- `through the proxy`: guardproxy (`guardproxy serve`, the rules-only policy bench/policy.rules-only.yaml)
  in front of the fast bench/upstream.py, one client, requests alternating between `POST /v1/chat/completions`
  and the equivalent `POST /v1/responses` (same texts: instructions = the system message, input = the user
  message), so drift from other processes hits both alike. Reports p50/p99 of each and the difference.

    python bench/bench_responses.py [--requests 2000] [--out bench/results/responses.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import servers

from guardproxy.evaluation.metrics import percentile
from guardproxy.proxy.responses.answer import from_chat
from guardproxy.proxy.responses.request import to_chat

BENCH_DIR = Path(__file__).resolve().parent
SYSTEM = "You are a concise assistant for a small software team."
USER = (
    "Please summarise these meeting notes in three short bullet points. The team agreed to move the weekly "
    "planning session to Thursday morning, to finish the quarterly report draft by the end of next week, and to "
    "review the onboarding checklist for new contractors before the next sprint starts. Keep it friendly."
)
CHAT = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}],
    "max_completion_tokens": 64,
    "temperature": 0.2,
}
RESPONSES = {"model": "gpt-4o-mini", "instructions": SYSTEM, "input": USER, "max_output_tokens": 64, "temperature": 0.2}
ANSWER = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o-mini",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Sure: the meeting is moved to Thursday at 10:00."},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 60, "completion_tokens": 12, "total_tokens": 72},
}
EXPECTED = "Sure: the meeting is moved to Thursday at 10:00."


def _stats(values: list[float]) -> dict[str, float]:
    p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
    assert p50 is not None and p99 is not None
    return {"p50": round(p50, 3), "p99": round(p99, 3)}


def in_process(repeats: int) -> dict[str, Any]:
    timings: list[float] = []
    for _ in range(repeats):
        body, answer = copy.deepcopy(RESPONSES), copy.deepcopy(ANSWER)  # the gateway gets fresh decoded bodies too
        started = time.perf_counter()
        request = to_chat(body)
        from_chat("gp-0", "gpt-4o-mini", request.echo, answer)
        timings.append((time.perf_counter() - started) * 1e6)
    return {"translation_us": _stats(timings[repeats // 10 :])}  # the first tenth warms up


def through_proxy(requests: int, ready_timeout_s: float) -> dict[str, Any]:
    guardproxy_bin = shutil.which("guardproxy") or str(Path(sys.executable).with_name("guardproxy"))
    with tempfile.TemporaryDirectory(prefix="bench-responses-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        upstream_port, proxy_port = servers.free_port(), servers.free_port()
        policy = str(BENCH_DIR / "policy.rules-only.yaml")
        command = [guardproxy_bin, "serve", "--policy", policy, "--no-watch", "--port", str(proxy_port)]
        stack.enter_context(
            servers.running_server(
                "upstream",
                [sys.executable, str(BENCH_DIR / "upstream.py"), "--port", str(upstream_port)],
                base_url=f"http://127.0.0.1:{upstream_port}",
                ready_path="/healthz",
                env={},
                cwd=workdir,
                ready_timeout_s=ready_timeout_s,
            )
        )
        stack.enter_context(
            servers.running_server(
                "guardproxy",
                command,
                base_url=f"http://127.0.0.1:{proxy_port}",
                ready_path="/healthz",
                env={"UPSTREAM_URL": f"http://127.0.0.1:{upstream_port}/v1", "OPENAI_API_KEY": "bench"},
                cwd=workdir,
                ready_timeout_s=ready_timeout_s,
            )
        )
        base = f"http://127.0.0.1:{proxy_port}/v1"
        bodies = {"chat": json.dumps(CHAT).encode(), "responses": json.dumps(RESPONSES).encode()}
        paths = {"chat": "/chat/completions", "responses": "/responses"}
        timings: dict[str, list[float]] = {"chat": [], "responses": []}
        headers = {"content-type": "application/json"}
        with httpx.Client(base_url=base, timeout=30) as client:
            for name in ("chat", "responses"):  # sanity: a proxy answering errors fast must not look fast
                answer = client.post(paths[name], content=bodies[name], headers=headers)
                answer.raise_for_status()
                payload = answer.json()
                text = payload["choices"][0]["message"]["content"] if name == "chat" else payload["output"][0]
                text = text if name == "chat" else text["content"][0]["text"]
                assert text == EXPECTED, payload
            for i in range(requests + requests // 10):
                for name in ("chat", "responses") if i % 2 else ("responses", "chat"):
                    started = time.perf_counter()
                    client.post(paths[name], content=bodies[name], headers=headers).raise_for_status()
                    if i >= requests // 10:  # the first tenth warms up
                        timings[name].append((time.perf_counter() - started) * 1000.0)
    chat, responses = _stats(timings["chat"]), _stats(timings["responses"])
    return {
        "requests_each": requests,
        "chat_completions_ms": chat,
        "responses_ms": responses,
        "added_p50_ms": round(responses["p50"] - chat["p50"], 3),
        "added_p99_ms": round(responses["p99"] - chat["p99"], 3),
        "p50_ratio": round(responses["p50"] / chat["p50"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=20000, help="in-process translations")
    parser.add_argument("--ready-timeout", type=float, default=60.0)
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results" / "responses.json")
    args = parser.parse_args()
    local = in_process(args.repeats)
    print(f"translation in process: p50 {local['translation_us']['p50']} us, p99 {local['translation_us']['p99']} us")
    proxied = through_proxy(args.requests, args.ready_timeout)
    print(
        f"through the proxy: chat p50 {proxied['chat_completions_ms']['p50']} ms / p99 "
        f"{proxied['chat_completions_ms']['p99']} ms; responses p50 {proxied['responses_ms']['p50']} ms / p99 "
        f"{proxied['responses_ms']['p99']} ms; added p50 {proxied['added_p50_ms']} ms (x{proxied['p50_ratio']})"
    )
    record = {
        "command": f"python bench/bench_responses.py --requests {args.requests} --repeats {args.repeats}",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load": os.getloadavg()},
        "in_process": local,
        "through_proxy": proxied,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
