"""Every request that got a request id gets an audit row: slow readers that hang up, parse failures, 413s.

The slow-reader attack (issue 10, item 6): a raw socket with a tiny receive buffer asks for a
large stream, reads only the response head (for the request id), never reads the body and
closes. The proxy is then blocked writing to it when the connection goes away.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from guardproxy.audit.records import AuditRecord
from guardproxy.audit.sqlite import SQLiteAuditStore
from guardproxy.core import Context, Detection
from guardproxy.detectors.base import DetectorDeps
from guardproxy.detectors.configs import CustomDetectorConfig
from tests.fake_upstream import FakeUpstream, Reply, wait_until
from tests.policies import write_policy
from tests.proxy_harness import ProxyServer, free_port

SSN = "536-22-8471"
LONG_ANSWER = [f"Sentence {i} of a long answer that nobody reads. " for i in range(200)]
# ~6 MB in 4 kB pieces: more than the socket buffers between the proxy and a client that does not
# read (loopback autotunes the proxy's send buffer to 4 MiB), so the proxy blocks on the write.
HUGE_ANSWER = [f"Sentence {i} of a long answer that nobody reads. " * 80 for i in range(1500)]


class ClosingProbe:
    """A detector that never fires and leaves a file behind when its runtime closes it."""

    scope = "text"

    def __init__(self, name: str, config: CustomDetectorConfig, deps: DetectorDeps) -> None:
        self.name = name
        self.marker = Path(config.options["marker"])

    async def detect(self, text: str, ctx: Context) -> Detection:
        return Detection(score=0.0)

    async def aclose(self) -> None:
        self.marker.write_text("closed")


class SlowReader:
    """A client that sends a streaming chat request, reads the response head, and then stops reading."""

    def __init__(self, port: int, content: str = "tell me a long story") -> None:
        body = json.dumps(
            {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": content}]}
        ).encode()
        self.sock = socket.socket()
        # Before connect, so the advertised window is tiny from the first byte (Linux rounds it up to ~2 kB).
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        head = (
            "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer sk-test-slow\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.sock.sendall(head.encode() + body)
        received = b""
        while b"\r\n\r\n" not in received:
            piece = self.sock.recv(64)
            assert piece, "the proxy closed the connection before the response head"
            received += piece
        status_line, *header_lines = received.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")
        assert " 200 " in status_line, status_line
        headers = dict(line.split(": ", 1) for line in header_lines)
        self.request_id = headers["x-guardproxy-request-id"]

    def close(self) -> None:
        self.sock.close()


def _stored(db: Path) -> dict[str, AuditRecord]:
    if not db.exists():
        return {}
    store = SQLiteAuditStore(str(db))
    try:
        return {r.request_id: r for r in store.query()}
    finally:
        store.close()


def _with_slow_output_step(path: Path) -> Path:
    """An output step that takes 0.2 s per window: a hang-up lands while the relay awaits it, the way a
    model detector's forward pass would be in flight."""
    slow = '  slow: {type: custom, class_path: "tests.faulty_detectors:Slow", options: {delay_s: 0.2}}\n'
    text = path.read_text().replace("detectors:\n", "detectors:\n" + slow, 1)
    path.write_text(text.replace("output:\n", "output:\n  - {detector: slow, action: flag}\n", 1))
    return path


def test_slow_readers_that_hang_up_each_leave_an_audit_row(upstream: FakeUpstream, tmp_path: Path) -> None:
    policy = _with_slow_output_step(write_policy(tmp_path, upstream.base_url))
    db = tmp_path / "audit.db"
    upstream.enqueue(Reply(chunks=LONG_ANSWER), times=6)
    with ProxyServer(policy) as proxy:
        readers = [SlowReader(proxy.port) for _ in range(6)]
        time.sleep(0.5)
        ids = {r.request_id for r in readers}
        for reader in readers:
            reader.close()
        assert wait_until(lambda: ids <= set(_stored(db)), timeout_s=10), ids - set(_stored(db))
    records = _stored(db)
    for request_id in ids:
        record = records[request_id]
        assert record.outcome == "error" and record.stream
        assert record.error == "client disconnected before the end of the stream"
        assert any(step.detector == "slow" for step in record.steps)  # what the chain did is kept


def test_slow_readers_blocking_the_proxys_writes_each_leave_an_audit_row(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    """The answer outgrows the socket buffers: the proxy is blocked writing when the readers hang up."""
    policy = write_policy(tmp_path, upstream.base_url)
    db = tmp_path / "audit.db"
    upstream.enqueue(Reply(chunks=HUGE_ANSWER), times=2)
    with ProxyServer(policy) as proxy:
        readers = [SlowReader(proxy.port) for _ in range(2)]
        time.sleep(1.0)
        ids = {r.request_id for r in readers}
        for reader in readers:
            reader.close()
        # Each record carries ~6 MB of checked text for the writer to scrub (~1.5 s each here).
        assert wait_until(lambda: ids <= set(_stored(db)), timeout_s=20), ids - set(_stored(db))


def test_rows_of_hung_up_streams_are_written_before_a_graceful_shutdown(upstream: FakeUpstream, tmp_path: Path) -> None:
    """The real server, SIGTERM right after the readers hang up: the rows are in the file when it exits."""
    policy = _with_slow_output_step(write_policy(tmp_path, upstream.base_url))
    db = tmp_path / "audit.db"
    upstream.enqueue(Reply(chunks=LONG_ANSWER), times=6)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "guardproxy", "serve", "--policy", str(policy), "--port", str(port), "--no-watch"],
        cwd=Path(__file__).resolve().parents[1],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert wait_until(lambda: _up(port), timeout_s=20)
        readers = [SlowReader(port) for _ in range(6)]
        time.sleep(0.5)
        ids = {r.request_id for r in readers}
        for reader in readers:
            reader.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
        output = proc.communicate()[0].decode(errors="replace")
    assert ids <= set(_stored(db)), (ids - set(_stored(db)), output[-3000:])
    assert "Unclosed client session" not in output


def test_reload_closes_the_old_runtime_once_its_hung_up_stream_is_done(upstream: FakeUpstream, tmp_path: Path) -> None:
    """A stream holds the runtime it started with; when its client vanishes the old runtime must still close."""
    old_marker, new_marker = tmp_path / "old-closed", tmp_path / "new-closed"
    probe = '  probe: {{type: custom, class_path: "tests.test_audit_completeness:ClosingProbe", options: {{marker: "{}"}}}}\n'
    path = _with_slow_output_step(write_policy(tmp_path, upstream.base_url))
    base = path.read_text().replace("output:\n", "output:\n  - {detector: probe, action: flag}\n", 1)
    path.write_text(base.replace("detectors:\n", "detectors:\n" + probe.format(old_marker), 1))
    upstream.enqueue(Reply(chunks=LONG_ANSWER))
    with ProxyServer(path, watch=True, watch_interval_s=0.05) as proxy:
        fingerprint = proxy.get("/healthz").json()["policy"]
        reader = SlowReader(proxy.port)
        time.sleep(0.5)
        path.write_text(base.replace("detectors:\n", "detectors:\n" + probe.format(new_marker), 1))
        assert wait_until(lambda: proxy.get("/healthz").json()["policy"] != fingerprint, timeout_s=10)
        assert not old_marker.exists()  # the hung stream still uses it
        reader.close()
        assert wait_until(old_marker.exists, timeout_s=10)
        assert wait_until(lambda: reader.request_id in _stored(tmp_path / "audit.db"), timeout_s=5)
    assert new_marker.exists()  # and the current one closes at shutdown


def test_requests_rejected_before_the_gateway_get_an_audit_row(upstream: FakeUpstream, tmp_path: Path) -> None:
    policy = write_policy(tmp_path, upstream.base_url)
    db = tmp_path / "audit.db"
    with ProxyServer(policy) as proxy:
        malformed = proxy.post_raw("/v1/chat/completions", f'{{"model": "gpt-4o-mini", "ssn": "{SSN}"'.encode())
        too_large = proxy.post_raw(
            "/v1/chat/completions",
            json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": SSN * 10_000}]}).encode(),
        )
        client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="k", max_retries=0)
        with pytest.raises(openai.BadRequestError) as invalid:
            client.chat.completions.create(model="gpt-4o-mini", messages=[])
        deep = proxy.post_raw("/v1/chat/completions", _deeply_nested(2000))
    assert malformed.status_code == 400 and too_large.status_code == 413 and deep.status_code == 400
    records = _stored(db)
    expected = {
        malformed.headers["x-guardproxy-request-id"]: (400, "invalid_request"),
        too_large.headers["x-guardproxy-request-id"]: (413, "request_too_large"),
        invalid.value.response.headers["x-guardproxy-request-id"]: (400, "invalid_request"),
        deep.headers["x-guardproxy-request-id"]: (400, "invalid_request"),
    }
    for request_id, (status, code) in expected.items():
        record = records[request_id]
        assert (record.outcome, record.status, record.endpoint) == ("error", status, "chat/completions")
        assert record.error is not None and code in record.error
        assert record.input_text == "" and record.output_text == ""
        assert record.client.startswith("127.0.0.1")
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("audit.db*"))
    assert SSN.encode() not in raw


def _deeply_nested(depth: int) -> bytes:
    messages = [{"role": "user", "content": "hi"}]
    return (
        json.dumps({"model": "gpt-4o-mini", "messages": messages, "metadata": "@"})
        .encode()
        .replace(b'"@"', b"[" * depth + b"]" * depth)
    )


def _up(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).status_code == 200
    except httpx.HTTPError:
        time.sleep(0.05)
        return False
