"""The shared-state seams (guardproxy/state): the in-process and Redis implementations of the vault and the rate
limiter held to the same cases against a real Redis, their atomicity under concurrency, and what a down
Redis does. The end-to-end behaviour through two replicas is in tests/test_replicas.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis

from guardproxy.auth.keys import ApiKey, Role
from guardproxy.auth.limits import LimitState, MemoryRateLimiter, RateLimiter
from guardproxy.auth.periods import BudgetPeriod, PeriodSpan, period_span
from guardproxy.errors import BudgetExhausted, RateLimitExceeded, StateUnavailable
from guardproxy.state import connect
from guardproxy.state.conversation import conversation_of, tenant_of
from guardproxy.state.failure import StateFailures
from guardproxy.state.redis_limits import _PERIOD, RedisRateLimiter
from guardproxy.state.redis_vault import RedisVault
from guardproxy.state.vault import Conversations, MemoryVault, Sensitive, Vault
from tests.proxy_harness import free_port

KEY = ApiKey(
    key_hash="ab" * 32, prefix="gp-abababab", name="team", role=Role.CLIENT, models=None, profile=None,
    rpm=None, tpm=None, budget_tokens=None, created=0.0, expires=None, revoked=None,
)  # fmt: skip
FAIL_CLOSED = StateFailures("fail_closed")


def redis_client(url: str) -> Redis:
    return connect(url, timeout_s=0.5)  # as the proxy makes it


@pytest.fixture(params=["memory", "redis"])
async def vault(request: pytest.FixtureRequest) -> AsyncIterator[Vault]:
    if request.param == "memory":
        yield MemoryVault(ttl_s=0.5)
        return
    client = redis_client(request.getfixturevalue("redis_url"))
    yield RedisVault(client, ttl_s=0.5)
    await client.aclose()


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[RateLimiter]:
    if request.param == "memory":
        yield MemoryRateLimiter()
        return
    client = redis_client(request.getfixturevalue("redis_url"))
    yield RedisRateLimiter(client, FAIL_CLOSED)
    await client.aclose()


async def test_both_vaults_number_placeholders_alike(vault: Vault) -> None:
    first = await vault.issue("c1", [Sensitive("EMAIL_ADDRESS", "a@x.io"), Sensitive("PHONE_NUMBER", "555 0100")])
    again = await vault.issue("c1", [Sensitive("EMAIL_ADDRESS", "b@x.io"), Sensitive("EMAIL_ADDRESS", "a@x.io")])
    other = await vault.issue("c2", [Sensitive("EMAIL_ADDRESS", "b@x.io")])
    assert first == ["[EMAIL_ADDRESS_1]", "[PHONE_NUMBER_1]"]
    assert again == ["[EMAIL_ADDRESS_2]", "[EMAIL_ADDRESS_1]"]  # a known value keeps its placeholder
    assert other == ["[EMAIL_ADDRESS_1]"]  # conversations are separate
    found, held = await vault.open("unused", None)
    assert found == "unused" and held == []
    found, held = await vault.open("c1", None)
    assert found == "c1"
    assert sorted((p.placeholder, p.label, p.original) for p in held) == [
        ("[EMAIL_ADDRESS_1]", "EMAIL_ADDRESS", "a@x.io"),
        ("[EMAIL_ADDRESS_2]", "EMAIL_ADDRESS", "b@x.io"),
        ("[PHONE_NUMBER_1]", "PHONE_NUMBER", "555 0100"),
    ]


async def test_both_vaults_follow_links_and_forget_after_the_ttl(vault: Vault) -> None:
    await vault.issue("c1", [Sensitive("EMAIL_ADDRESS", "odd \ud800 a@x.io")])  # a lone surrogate round-trips
    await vault.link("turn-2", "c1")
    found, held = await vault.open("new", "turn-2")
    assert found == "c1" and [p.original for p in held] == ["odd \ud800 a@x.io"]
    found, _ = await vault.open("new", "unknown-link")
    assert found == "new"
    await asyncio.sleep(0.7)  # past the 0.5 s TTL
    found, held = await vault.open("new", "turn-2")
    assert found == "new" and held == []
    assert (await vault.open("c1", None))[1] == []


async def test_concurrent_turns_of_one_conversation_never_share_a_number(redis_url: str) -> None:
    clients = [redis_client(redis_url) for _ in range(2)]
    vaults = [RedisVault(c, ttl_s=60) for c in clients]  # two replicas
    values = [Sensitive("EMAIL_ADDRESS", f"user{i}@x.io") for i in range(40)]
    results = await asyncio.gather(*(vaults[i % 2].issue("c", [v]) for i, v in enumerate(values)))
    placeholders = [r[0] for r in results]
    assert sorted(placeholders) == sorted(f"[EMAIL_ADDRESS_{n}]" for n in range(1, 41))
    for c in clients:
        await c.aclose()


async def test_both_limiters_apply_the_same_rule(limiter: RateLimiter) -> None:
    key = replace(KEY, rpm=2, tpm=100)
    first = await limiter.admit(key)
    assert (first.requests_used, first.tokens_used) == (1, 0) and 59 < first.reset_s <= 60
    await limiter.admit(key)
    with pytest.raises(RateLimitExceeded, match="2 requests per minute") as over:
        await limiter.admit(key)
    assert 0 < over.value.retry_after_s <= 60 and over.value.headers["x-ratelimit-remaining-requests"] == "0"
    tokens = replace(KEY, key_hash="cd" * 32, tpm=100, budget_tokens=150)
    await limiter.admit(tokens)
    await limiter.charge(tokens, 120)
    with pytest.raises(RateLimitExceeded, match=r"100 tokens per minute \(used 120\)"):
        await limiter.admit(tokens)
    budget = replace(tokens, tpm=None)
    await limiter.charge(budget, 40)
    with pytest.raises(BudgetExhausted) as spent:
        await limiter.admit(budget)
    assert spent.value.headers["x-guardproxy-budget-remaining-tokens"] == "0"


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


# (instant, period, start, end): the period rule at its edges, stated by hand.
PERIOD_CASES = [
    ("2026-12-07T04:00:00", "day", "2026-12-07T00:00:00", "2026-12-08T00:00:00"),
    ("2026-12-07T00:00:00", "day", "2026-12-07T00:00:00", "2026-12-08T00:00:00"),  # a start is in its period
    ("2026-12-06T23:59:59.999", "day", "2026-12-06T00:00:00", "2026-12-07T00:00:00"),
    ("2026-12-07T04:00:00", "week", "2026-12-07T00:00:00", "2026-12-14T00:00:00"),  # a Monday
    ("2026-12-06T23:59:59", "week", "2026-11-30T00:00:00", "2026-12-07T00:00:00"),  # a Sunday
    ("2027-01-01T12:00:00", "week", "2026-12-28T00:00:00", "2027-01-04T00:00:00"),  # ISO week across a year
    ("1970-01-01T00:00:00", "week", "1969-12-29T00:00:00", "1970-01-05T00:00:00"),  # the epoch was a Thursday
    ("2026-12-31T23:59:59", "month", "2026-12-01T00:00:00", "2027-01-01T00:00:00"),
    ("2027-01-01T00:00:00", "month", "2027-01-01T00:00:00", "2027-02-01T00:00:00"),
    ("2024-02-29T12:00:00", "month", "2024-02-01T00:00:00", "2024-03-01T00:00:00"),  # a leap year
    ("2000-02-15T00:00:00", "month", "2000-02-01T00:00:00", "2000-03-01T00:00:00"),  # 2000 was one
    ("2100-02-28T23:59:59", "month", "2100-02-01T00:00:00", "2100-03-01T00:00:00"),  # 2100 will not be
    ("2026-04-30T23:00:00", "month", "2026-04-01T00:00:00", "2026-05-01T00:00:00"),
    ("2026-07-31T23:00:00", "month", "2026-07-01T00:00:00", "2026-08-01T00:00:00"),
]


@pytest.mark.parametrize(("instant", "period", "start", "end"), PERIOD_CASES)
async def test_python_and_the_redis_script_agree_on_budget_periods(
    instant: str, period: str, start: str, end: str, redis_url: str
) -> None:
    expected = PeriodSpan(int(utc(start)), int(utc(end)))
    assert period_span(BudgetPeriod(period), utc(instant)) == expected
    client = redis_client(redis_url)
    # The production fragment, asked about a fixed instant instead of the server's clock.
    lua = await client.eval(_PERIOD + "return {period(tonumber(ARGV[1]), ARGV[2])}", 0, str(utc(instant)), period)
    await client.aclose()
    assert PeriodSpan(int(lua[0]), int(lua[1])) == expected


def test_a_lifetime_budget_has_no_period() -> None:
    assert period_span(BudgetPeriod.TOTAL, utc("2026-12-07T04:00:00")) is None


async def test_the_in_process_budget_starts_over_at_the_month_boundary() -> None:
    now = [utc("2026-01-31T23:59:00")]
    limiter = MemoryRateLimiter(clock=lambda: now[0])
    monthly = replace(KEY, budget_tokens=100, budget_period=BudgetPeriod.MONTH)
    lifetime = replace(KEY, key_hash="ef" * 32, budget_tokens=100)
    for key in (monthly, lifetime):
        first = await limiter.admit(key)
        await limiter.charge(key, 150)
    assert first.budget_reset_s is None and "x-guardproxy-budget-reset-tokens" not in first.headers()
    with pytest.raises(BudgetExhausted, match="budget for this month") as over:
        await limiter.admit(monthly)
    assert over.value.retry_after_s == 60 and over.value.response_headers()["retry-after"] == "60"
    assert over.value.headers["x-guardproxy-budget-reset-tokens"] == "60.000s"
    now[0] = utc("2026-02-01T00:00:00")  # the next month: a new budget; the lifetime one stays spent
    fresh = await limiter.admit(monthly)
    assert fresh.budget_used == 0 and fresh.budget_reset_s == 28 * 86400
    with pytest.raises(BudgetExhausted) as spent:
        await limiter.admit(lifetime)
    assert spent.value.retry_after_s is None and "retry-after" not in spent.value.response_headers()
    await limiter.charge(monthly, 60)
    now[0] = utc("2026-02-28T23:59:59")
    assert (await limiter.admit(monthly)).budget_used == 60  # still February
    await limiter.charge(monthly, 40)
    with pytest.raises(BudgetExhausted):
        await limiter.admit(monthly)


async def test_both_limiters_time_a_daily_budget_to_the_next_utc_midnight(limiter: RateLimiter) -> None:
    daily = replace(KEY, key_hash="12" * 32, budget_tokens=100, budget_period=BudgetPeriod.DAY)
    before = time.time()
    first = await limiter.admit(daily)
    span = period_span(BudgetPeriod.DAY, before)
    assert span is not None and first.budget_reset_s is not None
    assert abs(first.budget_reset_s - (span.end - before)) < 2.0  # the Redis server runs on this machine
    assert first.headers()["x-guardproxy-budget-remaining-tokens"] == "100"
    await limiter.charge(daily, 100)
    with pytest.raises(BudgetExhausted, match="budget for this day") as over:
        await limiter.admit(daily)
    assert over.value.retry_after_s is not None and abs(over.value.retry_after_s - (span.end - before)) < 2.0
    assert over.value.headers["x-guardproxy-budget-remaining-tokens"] == "0"


async def test_a_redis_budget_left_from_an_earlier_period_does_not_count(redis_url: str) -> None:
    """Redis's clock cannot be moved: the state a boundary leaves behind (yesterday's tokens) is written instead."""
    client = redis_client(redis_url)
    limiter = RedisRateLimiter(client, FAIL_CLOSED)
    daily = replace(KEY, key_hash="34" * 32, budget_tokens=100, budget_period=BudgetPeriod.DAY)
    today = period_span(BudgetPeriod.DAY, time.time())
    assert today is not None
    period_key = f"guardproxy:{{{daily.key_hash}}}:period"
    await client.hset(period_key, mapping={"start": today.start - 86400, "tokens": 500})
    assert (await limiter.admit(daily)).budget_used == 0
    await limiter.charge(daily, 30)
    assert await client.hgetall(period_key) == {"start": str(today.start), "tokens": "30"}
    assert 0 < await client.ttl(period_key) <= today.end - time.time() + 1  # gone when the day ends
    assert (await limiter.admit(daily)).budget_used == 30
    await client.aclose()


async def test_two_replicas_admit_exactly_the_limit_under_concurrency(redis_url: str) -> None:
    clients = [redis_client(redis_url) for _ in range(2)]
    limiters = [RedisRateLimiter(c, FAIL_CLOSED) for c in clients]
    key = replace(KEY, rpm=10)

    async def attempt(i: int) -> bool:
        try:
            await limiters[i % 2].admit(key)
        except RateLimitExceeded:
            return False
        return True

    admitted = await asyncio.gather(*(attempt(i) for i in range(50)))
    assert sum(admitted) == 10
    for c in clients:
        await c.aclose()


def dead_redis() -> Redis:
    return redis_client(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there


async def test_a_down_redis_fails_closed_or_open_as_the_policy_says() -> None:
    client = dead_redis()
    key = replace(KEY, rpm=1)
    with pytest.raises(StateUnavailable) as closed:
        await RedisRateLimiter(client, FAIL_CLOSED).admit(key)
    assert closed.value.status == 503 and closed.value.code == "state_unavailable"
    opened = await RedisRateLimiter(client, StateFailures("fail_open")).admit(key)
    assert opened == LimitState(None, 0, None, 0, None, 0, 0.0) and opened.headers() == {}
    await RedisRateLimiter(client, FAIL_CLOSED).charge(key, 10)  # after the answer: logged, never raised

    ref = conversation_of("chat", {"messages": [{"role": "user", "content": "hi"}]}, "chat-1", "t")
    with pytest.raises(StateUnavailable):
        await Conversations(RedisVault(client, ttl_s=60), FAIL_CLOSED).open(ref, "gp-1")
    fail_open = Conversations(RedisVault(client, ttl_s=60), StateFailures("fail_open"))
    own = await fail_open.open(ref, "gp-1")
    assert own.conversation is None  # the request numbers its own placeholders
    await fail_open.issue(own, [Sensitive("EMAIL_ADDRESS", "a@x.io")])
    assert own.scope.placeholder_for("EMAIL_ADDRESS", "a@x.io") == "[EMAIL_ADDRESS_1]"
    await client.aclose()


def test_a_conversation_is_found_by_its_header_or_by_its_history() -> None:
    tenant = tenant_of("k" * 64, None)
    turn1 = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]}
    first = conversation_of("chat", turn1, None, tenant)
    assert first.earlier is None and first.explicit is None  # turn 1: a new conversation
    answer = "Hello!"
    turn2 = {
        "messages": [
            *turn1["messages"],
            {"role": "assistant", "content": [{"type": "text", "text": answer}], "refusal": None},
            {"role": "USER", "content": "More"},
        ]
    }
    second = conversation_of("chat", turn2, None, tenant)
    assert second.earlier == first.next_turn(answer)  # the link turn 1 left finds turn 2
    assert conversation_of("chat", turn2, None, tenant_of("j" * 64, None)).earlier != second.earlier  # per key
    assert conversation_of("chat", turn2, None, tenant).earlier != first.next_turn("Hello?")  # another answer
    named = conversation_of("chat", turn2, " chat-9 ", tenant)
    assert named.explicit == conversation_of("completion", {"prompt": "x"}, "chat-9", tenant).explicit
    assert named.next_turn(answer) is None  # a named conversation needs no links
    assert named.explicit != conversation_of("chat", turn2, "chat-9", tenant_of(None, "Bearer x")).explicit
    for kind, body in [("embedding", {"input": "x"}), ("completion", {"prompt": "x"}), ("chat", {"messages": "no"})]:
        ref = conversation_of(kind, body, None, tenant)
        assert ref.explicit is None and ref.earlier is None and not ref.history  # the request's own placeholders
