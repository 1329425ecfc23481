"""`RedisRateLimiter`: per-key rpm/tpm windows and token budgets in Redis, shared by every replica.

The semantics are `MemoryRateLimiter`'s (auth/limits.py): a fixed 60 s window that opens at a key's first
request, requests counted at admission, tokens charged when known, a lifetime budget. Each call is one Lua
script, so check-and-count is atomic across replicas (two replicas cannot both admit a key's last request).

**Time comes from the Redis server** (`TIME` inside the scripts), never from the replica: a window opened by
one replica closes at the same moment for all of them, and `Retry-After` / `x-ratelimit-reset-*` agree even
when a replica's clock is off by hours. Keys: `<prefix>{<key hash>}:window` (a hash: opened_ms, requests,
tokens; expires with the window) and `<prefix>{<key hash>}:budget` (lifetime tokens, no expiry).

A Redis failure goes to `state.on_error`: fail closed (503 `state_unavailable`) or admit unchecked (no
`x-ratelimit-*` headers, since nothing was counted). A charge that cannot be written is logged, never raised:
the answer has been delivered by then.
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import RedisError

from guardproxy.auth.keys import ApiKey
from guardproxy.auth.limits import WINDOW_S, LimitState, refusal
from guardproxy.state.failure import StateFailures, StateStoreError

# Shared by both scripts: the current window of KEYS[1], opened now (Redis clock) when there is none.
_WINDOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window_ms = tonumber(ARGV[1])
local w = redis.call('HMGET', KEYS[1], 'opened', 'requests', 'tokens')
local opened, requests, tokens = tonumber(w[1]), tonumber(w[2]) or 0, tonumber(w[3]) or 0
if not opened or now >= opened + window_ms then
  opened, requests, tokens = now, 0, 0
  redis.call('HSET', KEYS[1], 'opened', opened, 'requests', 0, 'tokens', 0)
  redis.call('PEXPIREAT', KEYS[1], opened + window_ms)
end
"""

# ARGV: window_ms, rpm, tpm, budget (-1: none). Returns requests (after counting), tokens, spent, reset_ms,
# refused (1: nothing counted; `refusal` says why).
_ADMIT = (
    _WINDOW
    + """
local rpm, tpm, budget = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local spent = tonumber(redis.call('GET', KEYS[2]) or '0')
local refused = (budget >= 0 and spent >= budget) or (rpm >= 0 and requests >= rpm) or (tpm >= 0 and tokens >= tpm)
if not refused then requests = redis.call('HINCRBY', KEYS[1], 'requests', 1) end
return {requests, tokens, spent, opened + window_ms - now, refused and 1 or 0}
"""
)

# ARGV: window_ms, tokens, with_budget (1/0).
_CHARGE = (
    _WINDOW
    + """
redis.call('HINCRBY', KEYS[1], 'tokens', tonumber(ARGV[2]))
if ARGV[3] == '1' then redis.call('INCRBY', KEYS[2], tonumber(ARGV[2])) end
return 1
"""
)

_NO_LIMITS = LimitState(None, 0, None, 0, None, 0, 0.0)  # fail open: nothing counted, no headers


class RedisRateLimiter:
    def __init__(self, client: Redis, failures: StateFailures, *, prefix: str = "guardproxy:") -> None:
        self._failures = failures
        self._prefix = prefix
        self._admit = client.register_script(_ADMIT)
        self._charge = client.register_script(_CHARGE)
        self._window_ms = int(WINDOW_S * 1000)

    async def admit(self, key: ApiKey) -> LimitState:
        try:
            requests, tokens, spent, reset_ms, refused = await self._admit(
                keys=self._keys(key), args=[self._window_ms, _arg(key.rpm), _arg(key.tpm), _arg(key.budget_tokens)]
            )
        except (RedisError, OSError) as exc:
            self._failures.handle("rate limits", _wrap(exc))  # fail closed: raises StateUnavailable
            return _NO_LIMITS  # fail open: the request goes on uncounted
        state = LimitState(key.rpm, int(requests), key.tpm, int(tokens), key.budget_tokens, int(spent), reset_ms / 1000)
        if refused:
            error = refusal(key, state)
            if error is None:  # the script and `refusal` disagree: a bug, never a silent admission
                raise AssertionError(f"rate-limit script refused {key.name} but no limit is reached: {state}")
            raise error
        return state

    async def charge(self, key: ApiKey, tokens: int) -> None:
        if tokens <= 0:
            return
        try:
            await self._charge(
                keys=self._keys(key), args=[self._window_ms, tokens, 1 if key.budget_tokens is not None else 0]
            )
        except (RedisError, OSError) as exc:
            self._failures.note(f"charging {tokens} tokens to the key '{key.name}' (not counted)", _wrap(exc))

    async def aclose(self) -> None:
        """The client is shared with the vault; `SharedState.aclose` closes it."""

    def _keys(self, key: ApiKey) -> list[str]:
        base = f"{self._prefix}{{{key.key_hash}}}"
        return [base + ":window", base + ":budget"]


def _arg(limit: int | None) -> int:
    return -1 if limit is None else limit


def _wrap(exc: BaseException) -> StateStoreError:
    error = StateStoreError(str(exc))
    error.__cause__ = exc
    return error
