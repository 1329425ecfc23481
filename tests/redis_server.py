"""A throwaway Redis server for the tests: `redis-server` in a temp dir, on a free port of 127.0.0.1.

The server comes from the Debian package `redis-server` (the README's test command installs it when
missing: scripts/install_system_packages.sh). A missing server fails the tests with that message; it is
never a skip, or CI would pass without testing the shared state. No persistence (no RDB, no AOF): the
tests' data is thrown away with the directory; `stop()` then `start()` is a Redis that lost its data, as a
restarted cache without persistence does.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.proxy_harness import free_port


def _binary() -> str:
    found = shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/local/bin/redis-server") if Path(p).is_file()), None
    )
    if found is None:
        raise RuntimeError(
            "no Redis server found (redis-server): run `bash scripts/install_system_packages.sh` (installs the "
            "Debian package redis-server), as the README's test command does"
        )
    return found


class RedisServer:
    def __init__(self) -> None:
        self._binary = _binary()
        self.directory = Path(tempfile.mkdtemp(prefix="guardproxy-redis-"))
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        log = (self.directory / "redis.log").open("ab")
        command = [self._binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory)]
        command += ["--save", "", "--appendonly", "no", "--daemonize", "no"]  # throwaway: no persistence
        self._process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.directory,
        )
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"redis-server exited ({self._process.returncode}):\n{self.log_tail()}")
            if self._answers_ping():
                return
            time.sleep(0.02)
        raise RuntimeError(f"redis-server did not answer PING within 10 s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def flush(self) -> None:
        """Empty every database (between tests sharing the session's server)."""
        self._command(b"FLUSHALL")

    def log_tail(self) -> str:
        log = self.directory / "redis.log"
        return log.read_text(errors="replace")[-2000:] if log.is_file() else ""

    def _answers_ping(self) -> bool:
        try:
            return self._command(b"PING") == b"+PONG"
        except OSError:
            return False

    def _command(self, name: bytes) -> bytes:
        """One inline command over a plain socket: the fixture needs no client library."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as conn:
            conn.sendall(name + b"\r\n")
            return conn.recv(64).strip()
