"""No secret reaches a server log: an attack run's logs hold neither the client's key nor the PII it sent.

Issue 10, item 7: a body nested 2,000 `[` deep was a 500 whose logged traceback showed the frames'
locals — the bearer token 11 times and the raw body.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest
import structlog

from guardproxy.logs import configure_logging
from tests.fake_upstream import FakeUpstream, Reply, wait_until
from tests.policies import write_policy
from tests.proxy_harness import free_port

KEY = "sk-test-SECRET-4f9a2c7e1b"
SSN = "536-22-8471"
EMAIL = "jane.roe@example.org"
CRASHING = '  boom: {type: custom, class_path: "tests.faulty_detectors:Crashing", options: {trigger: KABOOM}}\n'


def _nested(depth: int, pii: str) -> bytes:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": pii}], "metadata": "@"}
    return json.dumps(body).encode().replace(b'"@"', b"[" * depth + b"]" * depth)


def test_an_attack_run_leaves_neither_key_nor_pii_in_the_server_log(upstream: FakeUpstream, tmp_path: Path) -> None:
    policy = write_policy(tmp_path, upstream.base_url)
    text = policy.read_text().replace("detectors:\n", "detectors:\n" + CRASHING, 1)
    policy.write_text(text.replace("input:\n", "input:\n  - {detector: boom, action: block, on_error: block}\n", 1))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "guardproxy", "serve", "--policy", str(policy), "--port", str(port), "--no-watch"],
        cwd=Path(__file__).resolve().parents[1],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    pii = f"My SSN is {SSN} and my email is {EMAIL}."
    headers = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    try:
        assert wait_until(lambda: _up(port), timeout_s=20)
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        with httpx.Client(timeout=30, headers=headers) as http:
            deep = [http.post(url, content=_nested(depth, pii)) for depth in (2000, 200)]
            malformed = http.post(url, content=f'{{"model": "gpt-4o-mini", "note": "{pii}"'.encode())
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, max_retries=0)
        with pytest.raises(openai.BadRequestError):  # the crashing step fails closed
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": pii + " KABOOM"}])
        upstream.enqueue(Reply(content=f"Your SSN {SSN} is on file."))
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": pii}])
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        log = proc.communicate()[0].decode(errors="replace")
    assert "detector_failed" in log  # the crash was logged ...
    for secret in (KEY, SSN, EMAIL, "KABOOM"):
        assert secret not in log, (secret, len(log))  # ... without what the client sent
    for response in (*deep, malformed):
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "invalid_request"
    assert "too deeply nested" in deep[0].json()["error"]["message"]


def test_logged_tracebacks_carry_no_locals(capsys: pytest.CaptureFixture[str]) -> None:
    """The server's log pipeline prints a traceback's frames without their variables."""
    configure_logging()
    try:
        log = structlog.get_logger("test")

        def handler(authorization: str) -> None:
            body = {"content": SSN}
            raise RuntimeError(f"failed after {len(body)} fields")

        try:
            handler(f"Bearer {KEY}")
        except RuntimeError:
            log.exception("unhandled_error")
    finally:
        structlog.reset_defaults()
    err = capsys.readouterr().err
    assert "unhandled_error" in err and "RuntimeError: failed after 1 fields" in err
    assert KEY not in err and SSN not in err


def _up(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).status_code == 200
    except httpx.HTTPError:
        time.sleep(0.05)
        return False
