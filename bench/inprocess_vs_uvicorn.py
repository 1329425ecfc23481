"""What a real socket costs a test: the same app and requests in process (litestar's TestClient) and over uvicorn.

    python bench/inprocess_vs_uvicorn.py --rounds 10

Each round builds the app (the tests' standard policy, its backends replaced by `guardproxy.backends.fake`),
starts it, sends 5 plain and 5 streamed chat requests, and stops it: once with `TestClient`, once as the
tests' `ProxyServer` runs it (uvicorn in a thread) with httpx. Prints the median and the best round of each, in ms.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import httpx
import uvicorn
from litestar.testing import TestClient

from guardproxy.backends.fake import FakeBackends
from guardproxy.proxy.app import create_app
from guardproxy.proxy.runtime import build_runtime
from guardproxy.proxy.settings import Settings
from guardproxy.proxy.slow_clients import http_protocol
from tests.policies import write_policy
from tests.proxy_harness import free_port

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello there. How are you today?"}]}


def send_all(post: Callable[..., httpx.Response]) -> None:
    for stream in [False] * 5 + [True] * 5:
        r = post("/v1/chat/completions", json={**BODY, "stream": stream})
        assert r.status_code == 200, r.text


def in_process(policy: Path) -> None:
    builder = partial(build_runtime, backend_factory=FakeBackends())
    app = create_app(Settings(policy, watch_policy=False), runtime_builder=builder)
    with TestClient(app) as client:
        send_all(client.post)


def over_uvicorn(policy: Path) -> None:
    """As `tests/proxy_harness.ProxyServer` runs it: uvicorn in a thread, a free port, start and stop polled."""
    builder = partial(build_runtime, backend_factory=FakeBackends())
    app = create_app(Settings(policy, watch_policy=False), runtime_builder=builder)
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", http=http_protocol(10.0)
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            send_all(client.post)
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        policy = write_policy(Path(tmp), "http://127.0.0.1:9/v1")
        for name, run in (("in process (TestClient)", in_process), ("over uvicorn (ProxyServer)", over_uvicorn)):
            run(policy)  # warm-up: imports, first policy load
            times = []
            for _ in range(args.rounds):
                started = time.perf_counter()
                run(policy)
                times.append((time.perf_counter() - started) * 1000.0)
            print(f"{name:28s} median {statistics.median(times):7.1f} ms   best {min(times):7.1f} ms")


if __name__ == "__main__":
    main()
