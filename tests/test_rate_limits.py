"""Per-key rate limits and token budgets (issue 13, item 4) through the real proxy and the openai SDK."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import openai
import pytest

from guardproxy.auth.keys import NewKey, SQLiteKeyStore
from guardproxy.auth.periods import BudgetPeriod
from tests.fake_upstream import FakeUpstream, Reply
from tests.policies import write_policy
from tests.proxy_harness import ProxyServer

HELLO = [{"role": "user", "content": "hello"}]
BIG_USAGE = {"prompt_tokens": 10, "completion_tokens": 500, "total_tokens": 510}


@dataclass(frozen=True)
class Keys:
    rpm2: str  # 2 requests per minute
    tpm100: str  # 100 tokens per minute
    budget100: str  # 100 tokens over its lifetime
    unlimited: str


@pytest.fixture
def keyed(tmp_path: Path, upstream: FakeUpstream) -> Iterator[tuple[ProxyServer, Keys]]:
    keys_db = tmp_path / "keys.db"
    store = SQLiteKeyStore(keys_db)
    now = time.time()
    keys = Keys(
        rpm2=store.create(NewKey("slow", rpm=2, tpm=10_000), now=now)[0],
        tpm100=store.create(NewKey("small", tpm=100), now=now)[0],
        budget100=store.create(NewKey("capped", budget_tokens=100), now=now)[0],
        unlimited=store.create(NewKey("free"), now=now)[0],
    )
    store.close()
    extra = f"auth: {{mode: keys, keys_path: {keys_db}}}"
    with ProxyServer(write_policy(tmp_path, upstream.base_url, extra=extra)) as proxy:
        yield proxy, keys


@pytest.fixture
def clients() -> Iterator[list[openai.OpenAI]]:
    made: list[openai.OpenAI] = []
    yield made
    for client in made:
        client.close()


def sdk(clients: list[openai.OpenAI], proxy: ProxyServer, key: str) -> openai.OpenAI:
    clients.append(openai.OpenAI(base_url=proxy.url + "/v1", api_key=key, max_retries=0))
    return clients[-1]


def test_requests_per_minute_exceeded_gets_429_with_retry_after(
    keyed: tuple[ProxyServer, Keys], upstream: FakeUpstream, clients: list[openai.OpenAI]
) -> None:
    proxy, keys = keyed
    client = sdk(clients, proxy, keys.rpm2)
    first = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HELLO)  # type: ignore[arg-type]
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert first.headers["x-ratelimit-reset-requests"].endswith("s")
    assert first.headers["x-ratelimit-limit-tokens"] == "10000"
    client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)  # type: ignore[arg-type]
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)  # type: ignore[arg-type]
    assert caught.value.status_code == 429 and caught.value.code == "rate_limit_exceeded"
    headers = caught.value.response.headers
    assert 1 <= int(headers["retry-after"]) <= 60
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-guardproxy-request-id"].startswith("gp-")
    assert len(upstream.requests) == 2  # the refused request never went upstream
    # Another key has its own counters.
    assert sdk(clients, proxy, keys.unlimited).chat.completions.create(model="gpt-4o-mini", messages=HELLO).choices  # type: ignore[arg-type]


def test_tokens_per_minute_exceeded_after_a_big_answer(
    keyed: tuple[ProxyServer, Keys], upstream: FakeUpstream, clients: list[openai.OpenAI]
) -> None:
    proxy, keys = keyed
    client = sdk(clients, proxy, keys.tpm100)
    upstream.enqueue(Reply(content="a long answer", usage=BIG_USAGE))
    answered = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HELLO)  # type: ignore[arg-type]
    assert answered.headers["x-ratelimit-remaining-tokens"] == "100"  # reported at admission, before the answer
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)  # type: ignore[arg-type]
    assert caught.value.code == "rate_limit_exceeded" and "100 tokens per minute (used 510)" in caught.value.message
    assert caught.value.response.headers["x-ratelimit-remaining-tokens"] == "0"
    assert int(caught.value.response.headers["retry-after"]) >= 1


def test_a_stream_without_usage_is_charged_about_four_characters_per_token(
    keyed: tuple[ProxyServer, Keys], upstream: FakeUpstream, clients: list[openai.OpenAI]
) -> None:
    proxy, keys = keyed
    client = sdk(clients, proxy, keys.tpm100)
    upstream.enqueue(Reply(content="word " * 100))  # 500 characters, no include_usage: estimated ~125 + prompt
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True)  # type: ignore[arg-type]
    assert len("".join(c.choices[0].delta.content or "" for c in stream if c.choices)) == 500
    deadline = time.monotonic() + 5
    while True:  # the charge lands when the stream's cleanup runs, just after the last byte
        try:
            client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)  # type: ignore[arg-type]
        except openai.RateLimitError as exc:
            assert "used 127" in exc.message  # ceil((5 + 500) / 4)
            break
        assert time.monotonic() < deadline, "the stream's tokens were never charged"


def test_an_exhausted_token_budget_gets_429_insufficient_quota(
    keyed: tuple[ProxyServer, Keys], upstream: FakeUpstream, clients: list[openai.OpenAI]
) -> None:
    proxy, keys = keyed
    client = sdk(clients, proxy, keys.budget100)
    upstream.enqueue(Reply(content="a long answer", usage=BIG_USAGE))
    first = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HELLO)  # type: ignore[arg-type]
    assert first.headers["x-guardproxy-budget-remaining-tokens"] == "100"
    assert "x-ratelimit-limit-requests" not in first.headers  # only the limits the key has
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)  # type: ignore[arg-type]
    assert caught.value.status_code == 429 and caught.value.code == "insufficient_quota"
    headers = caught.value.response.headers
    assert "retry-after" not in headers and headers["x-should-retry"] == "false"  # waiting does not help
    assert headers["x-guardproxy-budget-remaining-tokens"] == "0"
    assert len(upstream.requests) == 1


def test_a_monthly_budget_refuses_until_the_next_month_then_starts_over(
    tmp_path: Path, upstream: FakeUpstream, clients: list[openai.OpenAI]
) -> None:
    """The in-process limiter's clock (injected) crosses 31 January -> 1 February, UTC."""
    store = SQLiteKeyStore(tmp_path / "keys.db")
    monthly = NewKey("monthly", budget_tokens=100, budget_period=BudgetPeriod.MONTH)
    secret = store.create(monthly, now=time.time())[0]
    store.close()
    now = [datetime(2026, 1, 31, 23, 0, tzinfo=UTC).timestamp()]  # one hour before February
    policy = write_policy(tmp_path, upstream.base_url, extra=f"auth: {{mode: keys, keys_path: {tmp_path / 'keys.db'}}}")
    with ProxyServer(policy, clock=lambda: now[0]) as proxy:
        client = sdk(clients, proxy, secret)
        upstream.enqueue(Reply(content="a long answer", usage=BIG_USAGE))
        first = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HELLO)  # type: ignore[arg-type]
        assert first.headers["x-guardproxy-budget-reset-tokens"] == "3600.000s"
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)  # type: ignore[arg-type]
        assert caught.value.code == "insufficient_quota" and "budget for this month" in caught.value.message
        headers = caught.value.response.headers
        assert headers["retry-after"] == "3600" and headers["x-should-retry"] == "false"  # the SDK waits no hour
        assert headers["x-guardproxy-budget-remaining-tokens"] == "0"
        now[0] = datetime(2026, 2, 1, tzinfo=UTC).timestamp()
        again = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HELLO)  # type: ignore[arg-type]
        assert again.headers["x-guardproxy-budget-remaining-tokens"] == "100"
        assert again.headers["x-guardproxy-budget-reset-tokens"] == f"{28 * 86400}.000s"
    assert len(upstream.requests) == 2  # the refused request never went upstream


def test_mode_none_has_no_limits_and_no_headers(
    tmp_path: Path, upstream: FakeUpstream, clients: list[openai.OpenAI]
) -> None:
    with ProxyServer(write_policy(tmp_path, upstream.base_url)) as proxy:
        client = sdk(clients, proxy, "anything")
        for _ in range(5):
            upstream.enqueue(Reply(usage=BIG_USAGE))
            answer = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HELLO)  # type: ignore[arg-type]
            assert not [h for h in answer.headers if h.startswith("x-ratelimit")]
