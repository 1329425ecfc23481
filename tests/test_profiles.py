"""Per-tenant policy profiles (issue 13, item 3): the key's `profile` picks the chains, through the real proxy."""

from __future__ import annotations

import contextlib
import io
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import openai
import pytest

from guardproxy.auth.keys import NewKey, SQLiteKeyStore
from guardproxy.policies.loader import validate_cmd
from tests.fake_upstream import FakeUpstream, Reply, wait_until
from tests.policies import write_policy
from tests.proxy_harness import ProxyServer

# The default profile (top-level input/output) only checks answers for the phrase; `strict` also refuses prompts.
PROFILES = """
profiles:
  strict:
    input:
      - {detector: banned, action: block}
    output:
      - {detector: banned, action: block}
"""
SECRET = [{"role": "user", "content": "Summarise this memo, it is for internal use only."}]


def audit_meta(audit_db: Path, request_id: str) -> dict[str, object]:
    row = None
    deadline = time.monotonic() + 5
    while row is None and time.monotonic() < deadline:
        with contextlib.closing(sqlite3.connect(audit_db)) as conn:
            row = conn.execute("SELECT meta FROM audit_records WHERE request_id = ?", (request_id,)).fetchone()
        if row is None:
            time.sleep(0.05)
    assert row is not None, request_id
    meta: dict[str, object] = json.loads(row[0])
    return meta


@pytest.fixture
def keys_db(tmp_path: Path) -> Path:
    return tmp_path / "keys.db"


def make_key(keys_db: Path, name: str, profile: str | None) -> str:
    store = SQLiteKeyStore(keys_db)
    try:
        return store.create(NewKey(name, profile=profile), now=time.time())[0]
    finally:
        store.close()


SDK = Callable[[ProxyServer, str], openai.OpenAI]


@pytest.fixture
def client_for() -> Iterator[SDK]:
    made: list[openai.OpenAI] = []

    def make(proxy: ProxyServer, key: str) -> openai.OpenAI:
        made.append(openai.OpenAI(base_url=proxy.url + "/v1", api_key=key, max_retries=0))
        return made[-1]

    yield make
    for c in made:
        c.close()


def keyed_policy(tmp_path: Path, upstream: FakeUpstream, keys_db: Path, profiles: str = PROFILES) -> Path:
    return write_policy(
        tmp_path, upstream.base_url, extra=f"auth: {{mode: keys, keys_path: {keys_db}, cache_ttl_s: 0}}\n{profiles}"
    )


def test_two_keys_on_two_profiles_get_different_decisions_and_records_name_the_profile(
    upstream: FakeUpstream, tmp_path: Path, keys_db: Path, client_for: SDK
) -> None:
    team = make_key(keys_db, "team-a", None)
    locked = make_key(keys_db, "team-s", "strict")
    make = client_for
    with ProxyServer(keyed_policy(tmp_path, upstream, keys_db)) as proxy:
        upstream.enqueue(Reply(content="Here is the summary."))
        allowed = make(proxy, team).chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=SECRET)
        assert allowed.parse().choices[0].message.content == "Here is the summary."
        with pytest.raises(openai.BadRequestError) as caught:
            make(proxy, locked).chat.completions.create(model="gpt-4o-mini", messages=SECRET)
        assert caught.value.code == "content_filter"
        assert len(upstream.requests) == 1  # the strict prompt never went upstream
        # Streams take the profile's output chain too: the phrase is cut by `strict`'s output step.
        upstream.enqueue(Reply(content="Fine. But internal use only applies."))
        chunks = list(
            make(proxy, locked).chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
            )
        )
        assert chunks[-1].choices[0].finish_reason == "content_filter"
    audit_db = tmp_path / "audit.db"
    assert audit_meta(audit_db, allowed.headers["x-guardproxy-request-id"])["profile"] == "default"
    blocked_id = caught.value.response.headers["x-guardproxy-request-id"]
    assert audit_meta(audit_db, blocked_id)["profile"] == "strict"


def test_a_key_naming_a_profile_the_policy_lacks_fails_closed_with_403(
    upstream: FakeUpstream, tmp_path: Path, keys_db: Path, client_for: SDK
) -> None:
    orphan = make_key(keys_db, "team-x", "strcit")
    make = client_for
    with (
        ProxyServer(keyed_policy(tmp_path, upstream, keys_db)) as proxy,
        pytest.raises(openai.PermissionDeniedError) as caught,
    ):
        make(proxy, orphan).chat.completions.create(model="gpt-4o-mini", messages=SECRET)
    assert caught.value.status_code == 403 and caught.value.code == "profile_not_found"
    assert "'strcit'" in caught.value.message and "default, strict" in caught.value.message
    assert upstream.requests == []  # never the default profile's rules instead


def test_hot_reload_rebuilds_profiles_and_a_removed_profile_fails_closed(
    upstream: FakeUpstream, tmp_path: Path, keys_db: Path, client_for: SDK
) -> None:
    locked = make_key(keys_db, "team-s", "strict")
    make = client_for
    path = keyed_policy(tmp_path, upstream, keys_db)
    with ProxyServer(path, watch=True, watch_interval_s=0.05) as proxy:
        client = make(proxy, locked)

        def status() -> int:
            try:
                client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "bananas"}])
            except openai.APIStatusError as exc:
                return exc.status_code
            return 200

        assert status() == 200
        path.write_text(path.read_text().replace("strict:", "renamed:"))
        assert wait_until(lambda: status() == 403, timeout_s=5)


def test_mode_none_uses_the_default_profile(upstream: FakeUpstream, tmp_path: Path) -> None:
    with ProxyServer(write_policy(tmp_path, upstream.base_url, extra=PROFILES)) as proxy:
        client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="anything", max_retries=0)
        upstream.enqueue(Reply(content="Here is the summary."))
        answer = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=SECRET)
        client.close()
    assert answer.parse().choices[0].message.content == "Here is the summary."
    assert audit_meta(tmp_path / "audit.db", answer.headers["x-guardproxy-request-id"])["profile"] == "default"


def test_validate_lists_profiles_and_points_at_a_typo_in_a_profile_step(upstream: FakeUpstream, tmp_path: Path) -> None:
    path = write_policy(tmp_path, upstream.base_url, extra=PROFILES)
    out, err = io.StringIO(), io.StringIO()
    assert validate_cmd(str(path), out, err) == 0
    assert "profile strict (1 input step, 1 output step)" in out.getvalue()

    path.write_text(
        path.read_text().replace(
            "- {detector: banned, action: block}\n    output", "- {detector: baned, action: block}\n    output"
        )
    )
    lines = path.read_text().splitlines()
    line = next(i for i, text in enumerate(lines, start=1) if "baned" in text)
    column = lines[line - 1].index("baned") + 1
    out, err = io.StringIO(), io.StringIO()
    assert validate_cmd(str(path), out, err) == 2
    assert f"{path}:{line}:{column}: profiles.strict.input[0].detector: unknown detector 'baned'" in err.getvalue()


def test_a_profile_named_default_is_refused(upstream: FakeUpstream, tmp_path: Path) -> None:
    path = write_policy(tmp_path, upstream.base_url, extra=PROFILES.replace("strict:", "default:"))
    err = io.StringIO()
    assert validate_cmd(str(path), io.StringIO(), err) == 2
    assert "profiles.default: reserved" in err.getvalue()
