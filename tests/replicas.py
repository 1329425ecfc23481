"""Proxy replicas as real `guardproxy serve` processes (what a load balancer would spread requests over)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

from tests.proxy_harness import free_port

ROOT = Path(__file__).resolve().parents[1]
# uvicorn re-raises the SIGTERM it handled once it has shut down, so a graceful stop can also end "by SIGTERM".
CLEAN_EXITS = (0, -signal.SIGTERM)


class ServeProcess:
    """`python -m guardproxy serve --policy P` on a free port; SIGTERM on exit (drains, flushes the audit queue)."""

    def __init__(self, policy: Path, *, name: str, extra_args: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = policy.parent / f"{name}.log"
        self._command = [
            sys.executable, "-m", "guardproxy", "serve", "--policy", str(policy), "--port", str(self.port),
            "--no-watch", *extra_args,
        ]  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ServeProcess:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(self._command, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"guardproxy serve exited ({self.process.returncode}):\n{self.log()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"guardproxy serve did not answer /healthz within 60 s:\n{self.log()}")

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def stop(self) -> int | None:
        """SIGTERM and wait: the exit code (None if it was never started)."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.is_file() else ""
