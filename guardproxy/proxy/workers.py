"""`guardproxy serve --workers N`: N processes on one port, each with its own runtime.

Each worker is a plain `guardproxy serve ... --reuse-port` child process: it loads the policy, builds its
detectors and backends and binds the port with `SO_REUSEPORT`, so the kernel spreads new connections across
the workers (Linux). This supervisor only starts them, forwards SIGTERM/SIGINT (each worker drains and
flushes its audit queue) and, if one dies, stops the others and exits non-zero, for the service manager to
restart the lot.

uvicorn's own `--workers` would need an importable app factory and a picklable configuration, and the
header-deadline protocol (`slow_clients.py`) is built per process; separate processes keep `serve` one code
path. Workers share only what the policy points them at: with the SQLite audit store they share the file
(WAL), but in-process rate limits and anonymize conversations are per worker; `state.url` (Redis) shares them.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType

import structlog

log = structlog.get_logger(__name__)
_POLL_S = 0.2


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A listening socket that other processes may bind too (`SO_REUSEPORT`): the kernel balances them."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def supervise(worker_args: Sequence[str], workers: int) -> int:
    """Run `workers` copies of `python -m guardproxy serve <worker_args> --reuse-port` until a signal or a death."""
    command = [sys.executable, "-m", "guardproxy", "serve", *worker_args, "--reuse-port"]
    children = [subprocess.Popen(command) for _ in range(workers)]
    stopping = died = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        while True:
            codes = [child.poll() for child in children]
            if all(code is not None for code in codes):
                break
            if not stopping and any(code is not None for code in codes):
                log.error("worker_exited", codes=codes, message="a worker died; stopping the others")
                died = True
                stop(signal.SIGTERM, None)
            time.sleep(_POLL_S)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    codes = [child.wait() for child in children]
    # uvicorn re-raises the SIGTERM it handled after a graceful shutdown: that exit is a clean one too.
    clean = all(code in (0, -signal.SIGTERM) for code in codes)
    return 0 if stopping and clean and not died else 1
