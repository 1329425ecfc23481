"""The shared-state seams (guardproxy/state): the in-process and Redis implementations of the vault and the rate
limiter held to the same cases against a real Redis, their atomicity under concurrency, and what a down
Redis does. The end-to-end behaviour through two replicas is in tests/test_replicas.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from redis.asyncio import Redis

from guardproxy.auth.keys import ApiKey, Role
from guardproxy.auth.limits import LimitState, MemoryRateLimiter, RateLimiter
from guardproxy.errors import BudgetExhausted, RateLimitExceeded, StateUnavailable
from guardproxy.state import connect
from guardproxy.state.conversation import conversation_of, tenant_of
from guardproxy.state.failure import StateFailures
from guardproxy.state.redis_limits import RedisRateLimiter
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
