"""Start, probe and stop the server processes the gateway benchmark measures (standard library only)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

_STOP_GRACE_S = 10.0


class ServerFailed(RuntimeError):
    """A server did not start, did not become ready, or answered the sanity request wrongly."""


@dataclass(frozen=True, slots=True)
class RunningServer:
    name: str
    base_url: str
    log_path: Path
    pid: int

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the process group this benchmark started (the server and any workers it forked)."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=_STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _get_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            status: int = response.status
            return 200 <= status < 300
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


@contextmanager
def running_server(
    name: str,
    command: Sequence[str],
    *,
    base_url: str,
    ready_path: str,
    env: Mapping[str, str],
    cwd: Path,
    ready_timeout_s: float,
) -> Iterator[RunningServer]:
    """Run ``command`` in its own session, wait until ``GET base_url + ready_path`` succeeds, stop it on exit."""
    log_path = cwd / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            list(command),
            cwd=cwd,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = RunningServer(name, base_url, log_path, process.pid)
    try:
        deadline = time.monotonic() + ready_timeout_s
        while not _get_ok(base_url + ready_path):
            if process.poll() is not None:
                raise ServerFailed(f"{name} exited with {process.returncode}:\n{server.log_tail()}")
            if time.monotonic() > deadline:
                raise ServerFailed(f"{name} not ready after {ready_timeout_s:g} s:\n{server.log_tail()}")
            time.sleep(0.2)
        yield server
    finally:
        _stop(process)


def process_group_cpu_s(pgid: int) -> float | None:
    """User + system CPU seconds used so far by the live processes of one process group (Linux /proc)."""
    ticks_per_s = os.sysconf("SC_CLK_TCK")
    total_ticks = 0
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            stat = Path("/proc", entry, "stat").read_text()
        except OSError:
            continue  # the process ended while we looked
        # The command name may hold spaces or parentheses: fields are counted after its closing one.
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:
            total_ticks += int(fields[11]) + int(fields[12])
    return total_ticks / ticks_per_s


def post_json(url: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def check_completion(server: RunningServer, url: str, body: bytes, headers: Mapping[str, str], expected: str) -> None:
    """One request before measuring: a gateway that answers errors quickly must not look fast."""
    status, payload = post_json(url, body, headers)
    content = None
    if status == 200:
        try:
            content = json.loads(payload)["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            content = None
    if content != expected:
        raise ServerFailed(
            f"{server.name} sanity request: HTTP {status}, body {payload[:500]!r}\n--- log ---\n{server.log_tail()}"
        )


def interpreter_of(executable: Path) -> Path | None:
    """The Python a console script runs under (its shebang), so versions are read from the right venv."""
    try:
        first_line = executable.read_bytes()[:512].split(b"\n", 1)[0]
    except OSError:
        return None
    if not first_line.startswith(b"#!"):
        return None
    interpreter = Path(first_line[2:].decode().strip().split()[0])
    return interpreter if interpreter.exists() else None


def package_versions(python: Path, packages: Sequence[str]) -> dict[str, str | None]:
    """Installed versions of ``packages`` in the environment of ``python`` (None when absent)."""
    script = (
        "import importlib.metadata as m, json, sys\n"
        "def v(n):\n"
        "    try: return m.version(n)\n"
        "    except m.PackageNotFoundError: return None\n"
        "print(json.dumps({'python': sys.version.split()[0], **{n: v(n) for n in sys.argv[1:]}}))\n"
    )
    completed = subprocess.run([str(python), "-c", script, *packages], capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        return {name: None for name in packages}
    versions: dict[str, str | None] = json.loads(completed.stdout)
    return versions
