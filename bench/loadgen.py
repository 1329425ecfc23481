"""Closed-loop HTTP load for the gateway benchmark: ``wrk`` when installed, a lean asyncio client otherwise.

The machine is small (2 cores shared by the servers and the generator), so the generator must cost far less per
request than what it measures. ``wrk`` (C, one thread) costs a few microseconds per request; the asyncio fallback
(raw keep-alive sockets, no HTTP library) costs tens of microseconds and competes for the same cores, so its
numbers are a little pessimistic at high concurrency. httpx would cost ~0.5 ms per request and is not used.

Each of ``concurrency`` connections sends one request, waits for the full response, and sends the next, for
``duration_s`` seconds. Latency is measured per request from send to last body byte.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

_WRK_MARKER = "WRK_JSON "


@dataclass(frozen=True, slots=True)
class LoadResult:
    """One measured point; latencies in milliseconds, ``errors`` counts failed or non-2xx requests."""

    ok_requests: int
    errors: int
    duration_s: float
    p50_ms: float
    p99_ms: float
    mean_ms: float

    @property
    def requests_per_s(self) -> float:
        return self.ok_requests / self.duration_s if self.duration_s > 0 else 0.0


def wrk_binary() -> str | None:
    return shutil.which("wrk")


def wrk_version(wrk_bin: str) -> str:
    completed = subprocess.run([wrk_bin, "--version"], capture_output=True, text=True, check=False)
    return (completed.stdout + completed.stderr).splitlines()[0].strip()


def _lua_long_string(text: str) -> str:
    """Quote ``text`` as a Lua long string whose bracket level does not occur in it."""
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    equals = "=" * level
    return f"[{equals}[{text}]{equals}]"


def _wrk_script(body: bytes, headers: Mapping[str, str]) -> str:
    lines = ['wrk.method = "POST"', f"wrk.body = {_lua_long_string(body.decode())}"]
    lines += [f"wrk.headers[ {_lua_long_string(name)} ] = {_lua_long_string(value)}" for name, value in headers.items()]
    # `--latency` prints p99 only as rounded text; the done hook gives exact microseconds as JSON.
    lines.append(
        f"""
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{_WRK_MARKER}{{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,'
      .. '"p50_us":%f,"p99_us":%f,"mean_us":%f}}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean))
end
"""
    )
    return "\n".join(lines)


def run_wrk(
    wrk_bin: str, url: str, body: bytes, headers: Mapping[str, str], concurrency: int, duration_s: float
) -> LoadResult:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_wrk_script(body, headers))
    try:
        command = [wrk_bin, "-t1", f"-c{concurrency}", f"-d{duration_s:g}s", "--timeout", "30s", "-s", script.name, url]
        completed = subprocess.run(command, capture_output=True, text=True, check=False, timeout=duration_s + 60)
    finally:
        os.unlink(script.name)
    match = re.search(re.escape(_WRK_MARKER) + r"(\{.*\})", completed.stdout)
    if completed.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed ({completed.returncode}): {completed.stdout}{completed.stderr}")
    stats = json.loads(match.group(1))
    socket_errors = stats["connect"] + stats["read"] + stats["write"] + stats["timeout"]
    return LoadResult(
        ok_requests=stats["requests"] - stats["status"],
        errors=stats["status"] + socket_errors,
        duration_s=stats["duration_us"] / 1e6,
        p50_ms=stats["p50_us"] / 1e3,
        p99_ms=stats["p99_us"] / 1e3,
        mean_ms=stats["mean_us"] / 1e3,
    )


async def _read_response(reader: asyncio.StreamReader) -> int:
    """Read one HTTP/1.1 response (content-length or chunked); return its status code."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, _, header_block = head.partition(b"\r\n")
    status = int(status_line.split(b" ", 2)[1])
    headers = {}
    for line in header_block.split(b"\r\n"):
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        await reader.readexactly(int(headers.get(b"content-length", b"0")))
    return status


async def _connection_loop(
    host: str, port: int, request: bytes, deadline: float, latencies: list[float], failures: list[int]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            writer.write(request)
            status = await _read_response(reader)
            if 200 <= status < 300:
                latencies.append(time.perf_counter() - started)
            else:
                failures.append(status)
    finally:
        writer.close()


async def _run_python_async(
    url: str, body: bytes, headers: Mapping[str, str], concurrency: int, duration_s: float
) -> LoadResult:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    head = f"POST {parts.path} HTTP/1.1\r\nhost: {parts.netloc}\r\ncontent-length: {len(body)}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    request = head.encode() + b"\r\n" + body
    latencies: list[float] = []
    failures: list[int] = []
    started = time.perf_counter()
    deadline = started + duration_s
    outcomes = await asyncio.gather(
        *(_connection_loop(host, port, request, deadline, latencies, failures) for _ in range(concurrency)),
        return_exceptions=True,
    )
    elapsed = time.perf_counter() - started
    broken_connections = sum(isinstance(outcome, BaseException) for outcome in outcomes)
    if not latencies:
        return LoadResult(0, len(failures) + broken_connections, elapsed, float("nan"), float("nan"), float("nan"))
    latencies.sort()
    return LoadResult(
        ok_requests=len(latencies),
        errors=len(failures) + broken_connections,
        duration_s=elapsed,
        p50_ms=latencies[len(latencies) // 2] * 1e3,
        p99_ms=latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1e3,
        mean_ms=statistics.fmean(latencies) * 1e3,
    )


def run_python(url: str, body: bytes, headers: Mapping[str, str], concurrency: int, duration_s: float) -> LoadResult:
    return asyncio.run(_run_python_async(url, body, headers, concurrency, duration_s))
