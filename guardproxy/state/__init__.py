"""State that replicas share (`state:` in the policy): rate-limit counters and the anonymize vault.

`open_state(policy.state)` builds both: in-process (`MemoryRateLimiter`, `MemoryVault`) without `state.url`,
in Redis (`RedisRateLimiter`, `RedisVault`, one client) with it. Read at start-up: changing `state.url`
needs a restart.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from guardproxy.auth.limits import MemoryRateLimiter, RateLimiter
from guardproxy.policies.schema import StateConfig
from guardproxy.state.failure import StateFailures
from guardproxy.state.vault import Conversations, MemoryVault

if TYPE_CHECKING:
    from redis.asyncio import Redis


@dataclass(slots=True)
class SharedState:
    limiter: RateLimiter
    conversations: Conversations
    client: Redis | None = None

    async def aclose(self) -> None:
        await self.limiter.aclose()
        await self.conversations.vault.aclose()
        if self.client is not None:
            await self.client.aclose()


def open_state(config: StateConfig, *, clock: Callable[[], float] = time.time) -> SharedState:
    """`clock` is the in-process limiter's (tests skew it); the Redis limiter reads the Redis server's clock."""
    failures = StateFailures(config.on_error)
    if config.url is None:
        return SharedState(MemoryRateLimiter(clock), Conversations(MemoryVault(config.conversation_ttl_s), failures))
    from guardproxy.state.redis_limits import RedisRateLimiter
    from guardproxy.state.redis_vault import RedisVault

    client = connect(config.url, config.timeout_s)
    vault = RedisVault(client, ttl_s=config.conversation_ttl_s)
    return SharedState(RedisRateLimiter(client, failures), Conversations(vault, failures), client)


def connect(url: str, timeout_s: float) -> Redis:
    """The Redis client of `state.url`. Connections are made lazily, on the serving event loop; a down Redis
    fails each call within `timeout_s`."""
    try:
        from redis.asyncio import Redis
    except ImportError:  # pragma: no cover - depends on the installed extras
        raise RuntimeError("state.url needs the redis client: pip install 'guardproxy[redis]'") from None
    return Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        decode_responses=True,
        encoding_errors="surrogatepass",  # JSON strings may hold lone surrogates; they round-trip as they came
    )
