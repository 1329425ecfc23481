"""Runs the real guardproxy app with uvicorn on 127.0.0.1 in a background thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import httpx
import uvicorn

from guardproxy.proxy.app import create_app
from guardproxy.proxy.settings import Settings
from guardproxy.proxy.slow_clients import http_protocol


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ProxyServer:
    def __init__(
        self,
        policy_path: Path,
        *,
        watch: bool = False,
        watch_interval_s: float = 0.1,
        header_timeout_s: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.policy_path = policy_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        app = create_app(Settings(policy_path, watch_policy=watch, watch_interval_s=watch_interval_s, clock=clock))
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
            http=http_protocol(header_timeout_s),  # as `guardproxy serve` runs it
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> ProxyServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._server.started:
                return self
            time.sleep(0.01)
        raise RuntimeError("guardproxy did not start within 10 s")

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, timeout=10)

    def post_raw(self, path: str, content: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
        hdrs = {"content-type": "application/json", **(headers or {})}
        return httpx.post(self.url + path, content=content, headers=hdrs, timeout=30)
