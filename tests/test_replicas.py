"""Two replicas sharing real PostgreSQL (audit) and Redis (`state.url`), driven by the openai SDK (issue 13).

The replicas are separate `guardproxy serve` processes (tests/replicas.py): nothing is shared but what the
policy points them at. The clock-skew test runs its replicas in-process, where a clock can be injected.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import openai
import psycopg
import pytest
import redis

from guardproxy.auth.keys import NewKey, SQLiteKeyStore
from guardproxy.auth.periods import BudgetPeriod, period_span
from tests.fake_upstream import FakeUpstream, Reply
from tests.policies import write_policy
from tests.proxy_harness import ProxyServer
from tests.replicas import CLEAN_EXITS, ServeProcess

MODEL = "gpt-4o-mini"
CONVERSATION = "x-guardproxy-conversation"


@dataclass(frozen=True)
class Keys:
    team: str  # no limits
    limited: str  # 3 requests per minute
    leaving: str  # revoked during a test


def replica_policy(directory: Path, upstream: str, *, pg_url: str, redis_url: str, state: str = "") -> Path:
    """The standard test policy (anonymize on input) with keys, the audit in PostgreSQL and state in Redis."""
    keys_db = directory / "keys.db"
    extra = (
        f"auth: {{mode: keys, keys_path: {keys_db}, cache_ttl_s: 0.3}}\n"
        f"state:\n  url: {redis_url}\n  timeout_s: 0.3\n{state}"
    )
    path = write_policy(directory, upstream, extra=extra)
    path.write_text(path.read_text().replace(f"  path: {directory / 'audit.db'}\n", f"  url: {pg_url}\n"))
    return path


def make_keys(directory: Path) -> Keys:
    store = SQLiteKeyStore(directory / "keys.db")
    now = time.time()
    try:
        return Keys(
            team=store.create(NewKey("team"), now=now)[0],
            limited=store.create(NewKey("limited", rpm=3), now=now)[0],
            leaving=store.create(NewKey("leaving"), now=now)[0],
        )
    finally:
        store.close()


@pytest.fixture
def sdk() -> Iterator[list[openai.OpenAI]]:
    made: list[openai.OpenAI] = []
    yield made
    for client in made:
        client.close()


def client_of(made: list[openai.OpenAI], url: str, key: str, conversation: str | None = None) -> openai.OpenAI:
    headers = {CONVERSATION: conversation} if conversation else None
    made.append(openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, default_headers=headers))
    return made[-1]


def audit_rows(pg_url: str) -> int:
    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT count(*) FROM audit_records").fetchone()
    assert row is not None
    return int(row[0])


def sent_texts(upstream: FakeUpstream) -> list[str]:
    """The text of every message each chat request carried upstream, joined per request."""
    return [" | ".join(str(m.get("content")) for m in body["messages"]) for body in upstream.bodies()]


def test_two_replicas_share_conversations_rate_limits_and_the_audit_log(
    tmp_path: Path, upstream: FakeUpstream, pg_url: str, redis_url: str, sdk: list[openai.OpenAI]
) -> None:
    keys = make_keys(tmp_path)
    policy = replica_policy(tmp_path, upstream.base_url, pg_url=pg_url, redis_url=redis_url)
    sent = 0
    with ServeProcess(policy, name="replica-a") as a, ServeProcess(policy, name="replica-b") as b:
        # A conversation named by the client: turns 1 and 2 on A, turn 3 on B with only the latest message.
        on_a, on_b = client_of(sdk, a.url, keys.team, "chat-42"), client_of(sdk, b.url, keys.team, "chat-42")
        upstream.enqueue(Reply(content="I will write to [EMAIL_ADDRESS_1]."))
        turn1 = [{"role": "user", "content": "Write to alice@example.com about the trip."}]
        answer1 = on_a.chat.completions.create(model=MODEL, messages=turn1)  # type: ignore[arg-type]
        assert answer1.choices[0].message.content == "I will write to alice@example.com."
        turn2 = [
            *turn1,
            {"role": "assistant", "content": answer1.choices[0].message.content},
            {"role": "user", "content": "Copy bob@example.org too."},
        ]
        on_a.chat.completions.create(model=MODEL, messages=turn2)  # type: ignore[arg-type]
        upstream.enqueue(Reply(content="Sent to [EMAIL_ADDRESS_1] and [EMAIL_ADDRESS_2], not [EMAIL_ADDRESS_3]."))
        turn3 = [{"role": "user", "content": "Send it, but not to carol@example.net."}]  # the client's window
        stream = on_b.chat.completions.create(model=MODEL, messages=turn3, stream=True)  # type: ignore[arg-type]
        answer3 = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        sent += 3
        assert answer3 == "Sent to alice@example.com and bob@example.org, not carol@example.net."
        texts = sent_texts(upstream)
        assert "[EMAIL_ADDRESS_2]" in texts[1] and "[EMAIL_ADDRESS_1]" in texts[1]  # turn 2 kept alice's number
        assert texts[2] == "Send it, but not to [EMAIL_ADDRESS_3]."  # B numbered after A's placeholders
        assert not any("@example" in text for text in texts)  # no address ever went upstream

        # A conversation named by its history (no header): turn 1 on A, turn 2 on B (streamed), turn 3 on A.
        upstream.enqueue(Reply(content="Noted, [PHONE_NUMBER_1]."))
        history: list[dict[str, str]] = [{"role": "user", "content": "Call me on +1-415-555-2671 tomorrow."}]
        plain_a, plain_b = client_of(sdk, a.url, keys.team), client_of(sdk, b.url, keys.team)
        reply = plain_a.chat.completions.create(model=MODEL, messages=history)  # type: ignore[arg-type]
        history += [
            {"role": "assistant", "content": reply.choices[0].message.content or ""},
            {"role": "user", "content": "Or +1-212-555-4398 after six."},
        ]
        upstream.enqueue(Reply(content="Either [PHONE_NUMBER_2] or [PHONE_NUMBER_1]."))
        stream = plain_b.chat.completions.create(model=MODEL, messages=history, stream=True)  # type: ignore[arg-type]
        streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert streamed == "Either +1-212-555-4398 or +1-415-555-2671."
        history += [{"role": "assistant", "content": streamed}, {"role": "user", "content": "Thanks."}]
        upstream.enqueue(Reply(content="Calling [PHONE_NUMBER_2]."))
        last = plain_a.chat.completions.create(model=MODEL, messages=history)  # type: ignore[arg-type]
        sent += 3
        assert last.choices[0].message.content == "Calling +1-212-555-4398."
        store = redis.Redis.from_url(redis_url, decode_responses=True)
        try:
            conversations = sorted(store.scan_iter("guardproxy:conv:*"))
            links = list(store.scan_iter("guardproxy:link:*"))
            assert len(conversations) == 2, conversations  # "chat-42" and the history-linked one: B joined both
            assert len(links) == 3  # one per answered history-linked turn
            assert all(0 < store.pttl(k) <= 3600 * 1000 for k in [*conversations, *links])  # they expire
        finally:
            store.close()

        # One key with 3 requests per minute, used on both replicas: the fourth request is refused wherever.
        limited_a, limited_b = client_of(sdk, a.url, keys.limited), client_of(sdk, b.url, keys.limited)
        hello = [{"role": "user", "content": "hello"}]
        remaining = []
        for client in (limited_a, limited_b, limited_a):
            answer = client.chat.completions.with_raw_response.create(model=MODEL, messages=hello)  # type: ignore[arg-type]
            remaining.append(answer.headers["x-ratelimit-remaining-requests"])
        assert remaining == ["2", "1", "0"]
        for client in (limited_b, limited_a):
            with pytest.raises(openai.RateLimitError) as refused:
                client.chat.completions.create(model=MODEL, messages=hello)  # type: ignore[arg-type]
            assert refused.value.code == "rate_limit_exceeded"
            assert 1 <= int(refused.value.response.headers["retry-after"]) <= 60
        sent += 5

        # A key revoked while its stream runs on A: the stream finishes; its next request, on B, is refused.
        upstream.enqueue(Reply(content="one two three four", stall_after_chunks=1, stall_s=0.8))
        leaving_a, leaving_b = client_of(sdk, a.url, keys.leaving), client_of(sdk, b.url, keys.leaving)
        pieces = iter(leaving_a.chat.completions.create(model=MODEL, messages=hello, stream=True))  # type: ignore[arg-type]
        first = next(pieces)
        store_keys = SQLiteKeyStore(tmp_path / "keys.db")
        store_keys.revoke("leaving", now=time.time())
        store_keys.close()
        rest = "".join(c.choices[0].delta.content or "" for c in pieces if c.choices)
        assert (first.choices[0].delta.content or "") + rest == "one two three four"
        time.sleep(0.4)  # past auth.cache_ttl_s
        with pytest.raises(openai.AuthenticationError):
            leaving_b.chat.completions.create(model=MODEL, messages=hello)  # type: ignore[arg-type]
        sent += 2
        assert a.stop() in CLEAN_EXITS and b.stop() in CLEAN_EXITS  # SIGTERM: drain, flush the audit queue
    assert audit_rows(pg_url) == sent  # every request, served or refused, on either replica


def test_a_replica_with_a_skewed_clock_shares_the_same_rate_limit_window(
    tmp_path: Path, upstream: FakeUpstream, pg_url: str, redis_url: str, sdk: list[openai.OpenAI]
) -> None:
    """Windows are timed by the Redis server (`TIME`): a replica two hours ahead (or behind) neither opens a
    new window nor reports another reset time."""
    keys = make_keys(tmp_path)
    policy = replica_policy(tmp_path, upstream.base_url, pg_url=pg_url, redis_url=redis_url)
    hello = [{"role": "user", "content": "hello"}]
    with (
        ProxyServer(policy) as right,
        ProxyServer(policy, clock=lambda: time.time() + 7200) as ahead,
        ProxyServer(policy, clock=lambda: time.time() - 7200) as behind,
    ):
        resets = []
        for server in (right, ahead, behind):
            answer = client_of(sdk, server.url, keys.limited).chat.completions.with_raw_response.create(
                model=MODEL,
                messages=hello,  # type: ignore[arg-type]
            )
            resets.append(float(answer.headers["x-ratelimit-reset-requests"].rstrip("s")))
        assert max(resets) - min(resets) < 2.0 and all(0 < r <= 60 for r in resets)
        for server in (ahead, behind, right):
            with pytest.raises(openai.RateLimitError) as refused:
                client_of(sdk, server.url, keys.limited).chat.completions.create(model=MODEL, messages=hello)  # type: ignore[arg-type]
            assert int(refused.value.response.headers["retry-after"]) <= 60


def test_replicas_with_clocks_two_days_apart_share_one_budget_day(
    tmp_path: Path, upstream: FakeUpstream, pg_url: str, redis_url: str, sdk: list[openai.OpenAI]
) -> None:
    """Budget periods follow the Redis server's clock: replicas whose own clocks are two days ahead and behind
    (each in another UTC day) still charge the same day's budget and report the same reset."""
    make_keys(tmp_path)
    store = SQLiteKeyStore(tmp_path / "keys.db")
    daily = store.create(NewKey("daily", budget_tokens=100, budget_period=BudgetPeriod.DAY), now=time.time())[0]
    store.close()
    policy = replica_policy(tmp_path, upstream.base_url, pg_url=pg_url, redis_url=redis_url)
    hello = [{"role": "user", "content": "hello"}]
    two_days = 2 * 86400
    with (
        ProxyServer(policy, clock=lambda: time.time() + two_days) as ahead,
        ProxyServer(policy, clock=lambda: time.time() - two_days) as behind,
    ):
        upstream.enqueue(Reply(content="a long answer", usage={"prompt_tokens": 5, "completion_tokens": 95}))
        started = time.time()
        spent = client_of(sdk, ahead.url, daily).chat.completions.with_raw_response.create(model=MODEL, messages=hello)  # type: ignore[arg-type]
        today = period_span(BudgetPeriod.DAY, started)  # the Redis server runs on this machine's clock
        assert today is not None
        resets = [float(spent.headers["x-guardproxy-budget-reset-tokens"].rstrip("s"))]
        assert abs(resets[0] - (today.end - started)) < 2.0
        for server in (behind, ahead):
            with pytest.raises(openai.RateLimitError) as refused:
                client_of(sdk, server.url, daily).chat.completions.create(model=MODEL, messages=hello)  # type: ignore[arg-type]
            assert refused.value.code == "insufficient_quota"
            headers = refused.value.response.headers
            assert headers["x-guardproxy-budget-remaining-tokens"] == "0"
            resets.append(float(headers["x-guardproxy-budget-reset-tokens"].rstrip("s")))
            assert abs(int(headers["retry-after"]) - resets[-1]) <= 1
        assert max(resets) - min(resets) < 2.0 and all(0 < r <= 86400 for r in resets)
    assert len(upstream.requests) == 1


@pytest.mark.parametrize("on_error", ["fail_closed", "fail_open"])
def test_redis_down(
    on_error: str, tmp_path: Path, upstream: FakeUpstream, pg_url: str, sdk: list[openai.OpenAI]
) -> None:
    """Redis unreachable: fail closed (the default) answers 503 `state_unavailable` to keyed requests and to
    anonymizing ones; fail open serves them, placeholders kept to the request, limits unchecked."""
    from tests.redis_server import RedisServer

    server = RedisServer()
    try:
        server.start()
        keys = make_keys(tmp_path)
        policy = replica_policy(
            tmp_path, upstream.base_url, pg_url=pg_url, redis_url=server.url, state=f"  on_error: {on_error}\n"
        )
        with ProxyServer(policy) as proxy:
            client = client_of(sdk, proxy.url, keys.limited, "chat-7")
            mail = [{"role": "user", "content": "Write to alice@example.com"}]
            assert client.chat.completions.create(model=MODEL, messages=mail).choices  # type: ignore[arg-type]
            server.stop()
            if on_error == "fail_closed":
                with pytest.raises(openai.InternalServerError) as down:
                    client.chat.completions.create(model=MODEL, messages=mail)  # type: ignore[arg-type]
                assert down.value.status_code == 503 and down.value.code == "state_unavailable"
                assert down.value.response.headers["x-guardproxy-request-id"].startswith("gp-")
                assert len(upstream.requests) == 1  # nothing went upstream
            else:
                for _ in range(4):  # over the key's 3 per minute: not counted while Redis is down
                    answer = client.chat.completions.with_raw_response.create(model=MODEL, messages=mail)  # type: ignore[arg-type]
                    assert answer.parse().choices[0].message.content == "Write to alice@example.com"
                    assert "x-ratelimit-remaining-requests" not in answer.headers
                assert "[EMAIL_ADDRESS_1]" in sent_texts(upstream)[-1]  # still anonymized upstream
            server.start()  # back: served again, shared state as before
            assert client.chat.completions.create(model=MODEL, messages=mail).choices  # type: ignore[arg-type]
    finally:
        server.remove()


def test_the_embedded_default_keeps_conversations_in_process(
    tmp_path: Path, upstream: FakeUpstream, sdk: list[openai.OpenAI]
) -> None:
    """Without `state.url` one process remembers a conversation's placeholders too (the memory vault)."""
    with ProxyServer(write_policy(tmp_path, upstream.base_url)) as proxy:
        named = client_of(sdk, proxy.url, "anything", "chat-1")
        named.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Mail alice@example.com"}])  # type: ignore[arg-type]
        upstream.enqueue(Reply(content="Done: [EMAIL_ADDRESS_1]."))
        later = named.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Send it."}])  # type: ignore[arg-type]
        assert later.choices[0].message.content == "Done: alice@example.com."
        upstream.enqueue(Reply(content="Done: [EMAIL_ADDRESS_1]."))
        other = client_of(sdk, proxy.url, "anything", "chat-2")  # another conversation knows nothing of it
        alone = other.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Send it."}])  # type: ignore[arg-type]
        assert alone.choices[0].message.content == "Done: [EMAIL_ADDRESS_1]."
