"""API keys and roles (issue 13, items 1-2): `auth.mode: keys` through the real proxy and the openai SDK."""

from __future__ import annotations

import contextlib
import os
import select
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest
from structlog.testing import capture_logs

from guardproxy.auth.access import warn_if_open
from guardproxy.auth.keys import NewKey, Role, SQLiteKeyStore
from guardproxy.auth.periods import BudgetPeriod
from guardproxy.policies.schema import AuthConfig
from tests.fake_upstream import FakeUpstream, Reply
from tests.policies import write_policy
from tests.proxy_harness import ProxyServer, free_port

ROOT = Path(__file__).resolve().parents[1]
CACHE_TTL_S = 0.3
HELLO = [{"role": "user", "content": "hello"}]


@dataclass(frozen=True)
class Keys:
    client: str
    limited: str  # a client key for gpt-4o-mini only
    reviewer: str
    admin: str
    expired: str
    revoked: str


@pytest.fixture
def keyed(tmp_path: Path, upstream: FakeUpstream) -> Iterator[tuple[ProxyServer, Keys, Path]]:
    keys_db = tmp_path / "keys.db"
    store = SQLiteKeyStore(keys_db)
    now = time.time()
    keys = Keys(
        client=store.create(NewKey("team-a"), now=now)[0],
        limited=store.create(NewKey("team-b", models=("gpt-4o-mini",)), now=now)[0],
        reviewer=store.create(NewKey("rev", role=Role.REVIEWER), now=now)[0],
        admin=store.create(NewKey("ops", role=Role.ADMIN), now=now)[0],
        expired=store.create(NewKey("old", expires=now - 1), now=now - 100)[0],
        revoked=store.create(NewKey("gone"), now=now)[0],
    )
    store.revoke("gone", now=now)
    store.close()
    extra = f"auth: {{mode: keys, keys_path: {keys_db}, cache_ttl_s: {CACHE_TTL_S}}}"
    with ProxyServer(write_policy(tmp_path, upstream.base_url, extra=extra)) as proxy:
        yield proxy, keys, keys_db


SDK = Callable[[ProxyServer, str], openai.OpenAI]


@pytest.fixture
def sdk() -> Iterator[SDK]:
    """openai clients, kept and closed at the end (a dropped client leaves its socket to the garbage collector)."""
    made: list[openai.OpenAI] = []

    def make(proxy: ProxyServer, key: str) -> openai.OpenAI:
        made.append(openai.OpenAI(base_url=proxy.url + "/v1", api_key=key, max_retries=0))
        return made[-1]

    yield make
    for client in made:
        client.close()


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def test_missing_unknown_revoked_and_expired_keys_get_401(sdk: SDK, keyed: tuple[ProxyServer, Keys, Path]) -> None:
    proxy, keys, _ = keyed
    for key in ("gp-not-a-key", keys.revoked, keys.expired, "sk-someone-elses-key"):
        with pytest.raises(openai.AuthenticationError) as caught:
            sdk(proxy, key).chat.completions.create(model="gpt-4o-mini", messages=HELLO)  # type: ignore[arg-type]
        assert caught.value.status_code == 401 and caught.value.code == "invalid_api_key", key
        assert caught.value.response.headers["x-guardproxy-request-id"].startswith("gp-")
    missing = httpx.post(proxy.url + "/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": HELLO})
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(proxy.url + "/v1/models").status_code == 401
    assert proxy.get("/healthz").status_code == 200  # load balancers probe without a key


def test_a_valid_key_is_served_and_the_audit_record_names_it(
    sdk: SDK, keyed: tuple[ProxyServer, Keys, Path], upstream: FakeUpstream, tmp_path: Path
) -> None:
    proxy, keys, _ = keyed
    answer = sdk(proxy, keys.client).chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HELLO)  # type: ignore[arg-type]
    assert answer.parse().choices[0].message.content == "hello"
    request_id = answer.headers["x-guardproxy-request-id"]
    # The client's key never goes upstream: the backend's own key does.
    [seen] = upstream.requests
    assert seen.headers["authorization"] == "Bearer upstream-secret"
    assert all(keys.client not in value for value in seen.headers.values())
    streamed = sdk(proxy, keys.client).chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True)  # type: ignore[arg-type]
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == "hello"
    assert all(keys.client not in value for r in upstream.requests for value in r.headers.values())
    deadline = time.monotonic() + 5
    client = None
    while client is None and time.monotonic() < deadline:
        with contextlib.closing(sqlite3.connect(tmp_path / "audit.db")) as conn:
            row = conn.execute("SELECT client FROM audit_records WHERE request_id = ?", (request_id,)).fetchone()
        client = row[0] if row else time.sleep(0.05)
    assert client == f"127.0.0.1 key:team-a ({keys.client[:11]})"


def test_a_model_outside_the_keys_list_gets_403(
    sdk: SDK, keyed: tuple[ProxyServer, Keys, Path], upstream: FakeUpstream
) -> None:
    proxy, keys, _ = keyed
    limited = sdk(proxy, keys.limited)
    with pytest.raises(openai.PermissionDeniedError) as caught:
        limited.chat.completions.create(model="renamed", messages=HELLO)  # type: ignore[arg-type]
    assert caught.value.code == "model_not_allowed"
    assert caught.value.body["param"] == "model"  # type: ignore[index]
    assert upstream.requests == []
    assert limited.chat.completions.create(model="gpt-4o-mini", messages=HELLO).choices[0].message.content == "hello"  # type: ignore[arg-type]
    assert [m.id for m in limited.models.list()] == ["gpt-4o-mini"]
    # /v1/moderations is answered by the policy's detectors, whatever model it names: no upstream model to guard.
    assert limited.moderations.create(model="omni-moderation-latest", input="hello").results[0].flagged is False
    assert len(sdk(proxy, keys.client).models.list().data) == 4


def test_a_revoked_key_is_refused_once_the_cache_ttl_has_passed(
    sdk: SDK, keyed: tuple[ProxyServer, Keys, Path]
) -> None:
    proxy, keys, keys_db = keyed
    client = sdk(proxy, keys.client)
    client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)  # type: ignore[arg-type]
    store = SQLiteKeyStore(keys_db)
    store.revoke("team-a", now=time.time())
    store.close()
    time.sleep(CACHE_TTL_S + 0.1)
    with pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)  # type: ignore[arg-type]
    assert caught.value.code == "invalid_api_key"


def test_a_key_revoked_mid_stream_finishes_that_stream_and_is_refused_next(
    sdk: SDK, keyed: tuple[ProxyServer, Keys, Path], upstream: FakeUpstream
) -> None:
    proxy, keys, keys_db = keyed
    upstream.enqueue(Reply(content="one two three four", stall_after_chunks=1, stall_s=CACHE_TTL_S + 0.3))
    client = sdk(proxy, keys.client)
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True)  # type: ignore[arg-type]
    pieces = iter(stream)
    first = next(pieces)
    store = SQLiteKeyStore(keys_db)
    store.revoke("team-a", now=time.time())
    store.close()
    rest = "".join(c.choices[0].delta.content or "" for c in pieces if c.choices)
    assert (first.choices[0].delta.content or "") + rest == "one two three four"  # checked when it began
    time.sleep(CACHE_TTL_S)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)  # type: ignore[arg-type]


def test_roles_on_feedback_and_metrics(sdk: SDK, keyed: tuple[ProxyServer, Keys, Path], tmp_path: Path) -> None:
    proxy, keys, _ = keyed
    answered = sdk(proxy, keys.client).chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HELLO)  # type: ignore[arg-type]
    request_id = answered.headers["x-guardproxy-request-id"]
    label = {"request_id": request_id, "label": "false_positive"}

    def feedback(key: str | None, **headers: str) -> httpx.Response:
        return httpx.post(proxy.url + "/v1/feedback", json=label, headers={**(bearer(key) if key else {}), **headers})

    assert feedback(None).status_code == 401
    as_client = feedback(keys.client, **{"x-guardproxy-user": "mallory"})
    assert as_client.status_code == 403 and as_client.json()["error"]["code"] == "permission_denied"
    assert feedback(keys.reviewer).status_code == 201
    assert feedback(keys.admin, **{"x-guardproxy-user": "alice"}).status_code == 201
    with contextlib.closing(sqlite3.connect(tmp_path / "audit.db")) as conn:
        actors = [row[0] for row in conn.execute("SELECT actor FROM feedback ORDER BY id")]
    assert actors == ["rev", "alice"]

    def metrics(key: str | None) -> int:
        return httpx.get(proxy.url + "/metrics", headers=bearer(key) if key else {}).status_code

    assert [metrics(None), metrics(keys.client), metrics(keys.reviewer), metrics(keys.admin)] == [401, 403, 403, 200]


def test_mode_none_leaves_every_route_open(sdk: SDK, tmp_path: Path, upstream: FakeUpstream) -> None:
    with ProxyServer(write_policy(tmp_path, upstream.base_url)) as proxy:
        answer = sdk(proxy, "anything").chat.completions.create(model="renamed", messages=HELLO)  # type: ignore[arg-type]
        assert answer.choices[0].message.content == "hello"
        assert proxy.get("/metrics").status_code == 200
        assert proxy.get("/v1/models").status_code == 200
    assert not (tmp_path / "guardproxy-keys.db").exists()


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "guardproxy", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=60
    )


def test_keys_cli_shows_a_key_once_and_never_lists_it(tmp_path: Path, upstream: FakeUpstream) -> None:
    policy = write_policy(tmp_path, upstream.base_url, extra=f"auth: {{mode: keys, keys_path: {tmp_path / 'k.db'}}}")
    made = cli(
        "keys", "create", "--name", "ci", "--models", "gpt-4o-mini,renamed", "--role", "reviewer", "--rpm", "60",
        "--tpm", "1000", "--budget-tokens", "50000", "--profile", "strict", "--expires", "30d", "--policy", str(policy),
        cwd=tmp_path,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    assert secret.startswith("gp-") and len(secret) >= 3 + 43 and "\n" not in secret
    assert "only time" in made.stderr and secret not in made.stderr
    listed = cli("keys", "list", "--policy", str(policy), cwd=tmp_path)
    assert listed.returncode == 0 and secret not in listed.stdout
    [line] = listed.stdout.splitlines()
    assert line.startswith(secret[:11]) and " ci " in line and "role=reviewer" in line and "active" in line
    assert "models=gpt-4o-mini,renamed" in line and "rpm=60" in line and "budget_tokens=50000" in line
    with contextlib.closing(sqlite3.connect(tmp_path / "k.db")) as conn:
        stored = " ".join(str(v) for row in conn.execute("SELECT * FROM api_keys") for v in row)
    assert secret not in stored and secret[11:] not in stored  # only the hash and the short prefix
    assert cli("keys", "create", "--name", "ci", "--policy", str(policy), cwd=tmp_path).returncode == 2
    assert (
        cli("keys", "create", "--name", "x", "--expires", "soon", "--policy", str(policy), cwd=tmp_path).returncode == 2
    )
    revoked = cli("keys", "revoke", "ci", "--policy", str(policy), cwd=tmp_path)
    assert revoked.returncode == 0, revoked.stderr
    assert "revoked" in cli("keys", "list", "--policy", str(policy), cwd=tmp_path).stdout
    assert cli("keys", "revoke", "nobody", "--policy", str(policy), cwd=tmp_path).returncode == 2


def test_keys_cli_sets_and_lists_a_budget_period(tmp_path: Path, upstream: FakeUpstream) -> None:
    policy = write_policy(tmp_path, upstream.base_url, extra=f"auth: {{mode: keys, keys_path: {tmp_path / 'k.db'}}}")
    weekly = ["keys", "create", "--name", "weekly", "--budget-tokens", "9000", "--budget-period", "week"]
    made = cli(*weekly, "--policy", str(policy), cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert cli("keys", "create", "--name", "life", "--budget-tokens", "5", "--policy", str(policy), cwd=tmp_path).stdout
    listed = cli("keys", "list", "--policy", str(policy), cwd=tmp_path).stdout.splitlines()
    assert "budget_tokens=9000  budget_period=week" in listed[0]
    assert "budget_tokens=5  budget_period=total" in listed[1]  # the default: the key's lifetime
    orphan = cli("keys", "create", "--name", "x", "--budget-period", "day", "--policy", str(policy), cwd=tmp_path)
    assert orphan.returncode == 2 and "--budget-period day needs --budget-tokens" in orphan.stderr
    wrong = ["keys", "create", "--name", "y", "--budget-tokens", "5", "--budget-period", "year"]
    unknown = cli(*wrong, "--policy", str(policy), cwd=tmp_path)
    assert unknown.returncode == 2 and "invalid choice: 'year'" in unknown.stderr
    assert len(cli("keys", "list", "--policy", str(policy), cwd=tmp_path).stdout.splitlines()) == 2  # nothing added


# The `api_keys` table as guardproxy created it before budget periods.
OLD_SCHEMA = """
CREATE TABLE api_keys (
    key_hash TEXT PRIMARY KEY, prefix TEXT NOT NULL, name TEXT NOT NULL, role TEXT NOT NULL, models TEXT,
    profile TEXT, rpm INTEGER, tpm INTEGER, budget_tokens INTEGER, created REAL NOT NULL, expires REAL, revoked REAL
);
CREATE INDEX api_keys_prefix ON api_keys(prefix);
INSERT INTO api_keys VALUES ('aa', 'gp-oldoldol', 'old', 'client', NULL, NULL, NULL, NULL, 700, 1.0, NULL, NULL);
"""


def test_a_key_store_from_before_budget_periods_still_opens(tmp_path: Path) -> None:
    with contextlib.closing(sqlite3.connect(tmp_path / "old.db")) as conn:
        conn.executescript(OLD_SCHEMA)
    store = SQLiteKeyStore(tmp_path / "old.db")
    old = store.lookup_by_hash("aa")
    assert old is not None and old.budget_tokens == 700 and old.budget_period is BudgetPeriod.TOTAL
    store.create(NewKey("new", budget_tokens=10, budget_period=BudgetPeriod.MONTH), now=2.0)
    store.close()
    again = SQLiteKeyStore(tmp_path / "old.db")  # the migration runs once
    assert [(k.name, k.budget_period) for k in again.list()] == [("old", "total"), ("new", "month")]
    again.close()


def test_serve_warns_when_open_beyond_loopback() -> None:
    with capture_logs() as logs:
        assert warn_if_open("0.0.0.0", AuthConfig())
        assert not warn_if_open("127.0.0.1", AuthConfig())
        assert not warn_if_open("::1", AuthConfig())
        assert not warn_if_open("0.0.0.0", AuthConfig(mode="keys"))
    assert [entry["event"] for entry in logs] == ["auth_off_on_public_address"]
    assert logs[0]["log_level"] == "warning"


def test_guardproxy_serve_warns_at_start_up_when_open_on_all_addresses(tmp_path: Path, upstream: FakeUpstream) -> None:
    policy = write_policy(tmp_path, upstream.base_url)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "guardproxy", "serve", "--policy", str(policy), "--no-watch"]
    server = subprocess.Popen(
        [*command, "--host", "0.0.0.0", "--port", str(free_port())], stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        assert server.stderr is not None
        deadline = time.monotonic() + 30
        seen = ""
        while "auth_off_on_public_address" not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([server.stderr], [], [], 0.2)
            if ready:
                seen += server.stderr.readline()
        assert "auth_off_on_public_address" in seen and "mode: keys" in seen
    finally:
        server.terminate()
        server.wait(timeout=15)
        if server.stderr is not None:
            server.stderr.close()
