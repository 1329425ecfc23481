"""Feedback on logged decisions: POST /v1/feedback and `guardproxy audit label|feedback`, stored in the audit DB."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from guardproxy.audit.feedback import Feedback
from guardproxy.audit.records import UnknownRequest
from guardproxy.audit.sqlite import SQLiteAuditStore
from guardproxy.audit.store import latest_feedback
from tests.fake_upstream import FakeUpstream
from tests.policies import write_policy
from tests.proxy_harness import ProxyServer
from tests.test_admission import post_head, trickle
from tests.test_audit_store import make_record

ROOT = Path(__file__).resolve().parents[1]
EMAIL = "mary.major@example.net"


def cli(*args: str, user: str = "reviewer") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "USER": user}
    return subprocess.run(
        [sys.executable, "-m", "guardproxy", *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=60
    )


def read_feedback(db: Path) -> list[Feedback]:
    store = SQLiteAuditStore(db)
    try:
        return list(store.feedback())
    finally:
        store.close()


def test_http_feedback_is_stored_attributed_and_scrubbed(upstream: FakeUpstream, tmp_path: Path) -> None:
    policy = write_policy(tmp_path, upstream.base_url)
    with ProxyServer(policy) as proxy:
        client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="sk-team-a", max_retries=0)
        answered = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}]
        )
        request_id = answered.headers["x-guardproxy-request-id"]
        # Sent at once: the audit writer may not have stored the record yet (the proxy waits for it).
        by_key = httpx.post(
            proxy.url + "/v1/feedback",
            json={"request_id": request_id, "label": "false_positive", "stage": "input", "step": "input.0.injection"},
            headers={"authorization": "Bearer sk-team-a"},
        )
        by_user = httpx.post(
            proxy.url + "/v1/feedback",
            json={"request_id": request_id, "label": "correct", "note": f"asked {EMAIL}, it was fine"},
            headers={"authorization": "Bearer sk-team-a", "x-guardproxy-user": "alice"},
        )
        anonymous = httpx.post(proxy.url + "/v1/feedback", json={"request_id": request_id, "label": "false_negative"})
    assert by_key.status_code == 201, by_key.text
    body = by_key.json()
    assert body["request_id"] == request_id and body["label"] == "false_positive" and isinstance(body["id"], int)
    assert by_key.headers["x-guardproxy-request-id"] != request_id  # the feedback call's own id
    assert by_user.status_code == 201 and by_user.json()["id"] > body["id"]
    assert anonymous.status_code == 201

    db = tmp_path / "audit.db"
    rows = read_feedback(db)
    key = "key:" + hashlib.sha256(b"Bearer sk-team-a").hexdigest()[:12]
    assert [(fb.label, fb.actor) for fb in rows] == [
        ("false_positive", key),
        ("correct", "alice"),
        ("false_negative", "anonymous"),
    ]
    assert rows[0].stage == "input" and rows[0].step == "input.0.injection"
    assert rows[1].note == "asked [EMAIL_ADDRESS], it was fine"
    store = SQLiteAuditStore(db)
    try:
        record = store.get(request_id)
    finally:
        store.close()
    assert record is not None and record.client.endswith(key)  # feedback joins the audit record's client
    assert latest_feedback(rows)[request_id].label == "false_negative"
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("audit.db*"))
    assert EMAIL.encode() not in raw
    assert b"sk-team-a" not in raw


def test_http_feedback_errors_are_openai_shaped(upstream: FakeUpstream, tmp_path: Path) -> None:
    policy = write_policy(tmp_path, upstream.base_url)
    with ProxyServer(policy) as proxy:
        client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="k", max_retries=0)
        request_id = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        ).headers["x-guardproxy-request-id"]
        unknown = proxy.post_raw("/v1/feedback", json.dumps({"request_id": "req-nope", "label": "correct"}).encode())
        bad_label = proxy.post_raw("/v1/feedback", json.dumps({"request_id": request_id, "label": "wrong"}).encode())
        bad_json = proxy.post_raw("/v1/feedback", b"{not json")
        not_object = proxy.post_raw("/v1/feedback", b'["correct"]')
        extra_field = proxy.post_raw(
            "/v1/feedback", json.dumps({"request_id": request_id, "label": "correct", "score": 1}).encode()
        )
        bad_stage = proxy.post_raw(
            "/v1/feedback", json.dumps({"request_id": request_id, "label": "correct", "stage": "middle"}).encode()
        )
        missing_id = proxy.post_raw("/v1/feedback", json.dumps({"label": "correct"}).encode())
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "request_not_found"
    assert unknown.json()["error"]["param"] == "request_id"
    assert bad_label.status_code == 400
    assert bad_label.json()["error"] == {
        "message": "'label' must be one of false_positive, false_negative, correct, got 'wrong'.",
        "type": "invalid_request_error",
        "code": "invalid_request",
        "param": "label",
    }
    for response, param in (
        (bad_json, None),
        (not_object, None),
        (extra_field, "score"),
        (bad_stage, "stage"),
        (missing_id, "request_id"),
    ):
        assert response.status_code == 400, response.text
        assert response.json()["error"]["type"] == "invalid_request_error"
        assert response.json()["error"]["param"] == param
    assert read_feedback(tmp_path / "audit.db") == []


def test_cli_label_and_feedback_listing(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    store = SQLiteAuditStore(db)
    store.write_batch([make_record(1, ts=time.time() - 100), make_record(2, ts=time.time() - 100)])
    store.close()

    first = cli("audit", "label", "req-0001", "--as", "false_positive", "--note", f"mail {EMAIL}", "--db", str(db))
    assert first.returncode == 0, first.stderr
    printed = json.loads(first.stdout)
    assert printed["actor"] == "reviewer"  # $USER
    assert printed["note"] == "mail [EMAIL_ADDRESS]"
    assert printed["label"] == "false_positive" and isinstance(printed["id"], int)
    second = cli("audit", "label", "req-0002", "--as", "correct", "--db", str(db), "--user", "carol")
    assert second.returncode == 0, second.stderr

    listed = cli("audit", "feedback", "--db", str(db))
    assert listed.returncode == 0, listed.stderr
    lines = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(fb["request_id"], fb["label"], fb["actor"]) for fb in lines] == [
        ("req-0001", "false_positive", "reviewer"),
        ("req-0002", "correct", "carol"),
    ]
    future = cli("audit", "feedback", "--db", str(db), "--since", "2999-01-01")
    assert future.returncode == 0 and future.stdout == ""

    unknown = cli("audit", "label", "req-9999", "--as", "correct", "--db", str(db))
    assert unknown.returncode == 2
    assert "no audit record with request id 'req-9999'" in unknown.stderr
    no_db = cli("audit", "label", "req-0001", "--as", "correct", "--db", str(tmp_path / "typo.db"))
    assert no_db.returncode == 2 and "no audit database" in no_db.stderr
    assert not (tmp_path / "typo.db").exists()
    bad_label = cli("audit", "label", "req-0001", "--as", "maybe", "--db", str(db))
    assert bad_label.returncode == 2 and "invalid choice" in bad_label.stderr
    assert len(read_feedback(db)) == 2


def test_store_keeps_history_oldest_first_and_filters(tmp_path: Path) -> None:
    store = SQLiteAuditStore(tmp_path / "audit.db")
    store.write_batch([make_record(1), make_record(2)])
    for ts, request_id, label in ((30.0, "req-0001", "correct"), (10.0, "req-0001", "false_positive"),
                                  (20.0, "req-0002", "false_negative")):  # fmt: skip
        store.add_feedback(Feedback(request_id=request_id, label=label, actor="t", ts=ts))  # type: ignore[arg-type]
    with pytest.raises(UnknownRequest) as missing:
        store.add_feedback(Feedback(request_id="req-0404", label="correct", actor="t", ts=1.0))
    assert isinstance(missing.value, LookupError) and missing.value.request_id == "req-0404"
    assert [fb.ts for fb in store.feedback()] == [10.0, 20.0, 30.0]
    assert [fb.ts for fb in store.feedback(since=20.0)] == [20.0, 30.0]
    assert [fb.label for fb in store.feedback(request_id="req-0001")] == ["false_positive", "correct"]
    assert latest_feedback(store.feedback())["req-0001"].label == "correct"
    store.close()


def test_existing_database_gains_the_feedback_table(tmp_path: Path) -> None:
    """A file written by the previous schema (version 1, no feedback table) is migrated on open."""
    db = tmp_path / "audit.db"
    store = SQLiteAuditStore(db)
    store.write_batch([make_record(1)])
    store.close()
    with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as conn:
        conn.execute("DROP TABLE feedback")
        conn.execute("PRAGMA user_version = 1")
    reopened = SQLiteAuditStore(db)
    reopened.add_feedback(Feedback(request_id="req-0001", label="correct", actor="t", ts=1.0))
    assert [fb.request_id for fb in reopened.feedback()] == ["req-0001"]
    assert reopened.get("req-0001") is not None
    reopened.close()


def test_feedback_body_has_the_model_routes_deadline_and_limit(upstream: FakeUpstream, tmp_path: Path) -> None:
    """One body reader for every route: a trickled feedback body gets 408 within the policy's
    `body_read_timeout_s`, and a declared length over the feedback limit gets 413 before any byte is read."""
    path = write_policy(tmp_path, upstream.base_url, extra="  body_read_timeout_s: 1")  # inside `proxy:`
    body = b'{"request_id": "gp-0123456789abcdef0123456789abcdef", "label": "correct"}'
    with ProxyServer(path) as proxy:
        received, elapsed = trickle(proxy.port, body, head=post_head("/v1/feedback", body))
        assert received.startswith(b"HTTP/1.1 408"), received[:200]
        assert b'"code":"request_timeout"' in received
        assert elapsed < 3.0, elapsed
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
            sock.sendall(b"POST /v1/feedback HTTP/1.1\r\nhost: x\r\ncontent-length: 100000000\r\n\r\n")
            answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
