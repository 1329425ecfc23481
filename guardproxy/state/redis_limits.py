"""`RedisRateLimiter`: per-key rpm/tpm windows and token budgets in Redis, shared by every replica.

The semantics are `MemoryRateLimiter`'s (auth/limits.py): a fixed 60 s window that opens at a key's first
request, requests counted at admission, tokens charged when known, a budget per key's `budget_period`. Each call is one Lua
script, so check-and-count is atomic across replicas (two replicas cannot both admit a key's last request).

**Time comes from the Redis server** (`TIME` inside the scripts), never from the replica: a window opened by
one replica closes at the same moment for all of them, and `Retry-After` / `x-ratelimit-reset-*` agree even
when a replica's clock is off by hours; budget periods (UTC day, ISO week, month) likewise start and end on the
Redis clock, so `_PERIOD` restates `auth/periods.period_span` in Lua (Redis's Lua has no calendar), held to it
by tests/test_state.py. Keys: `<prefix>{<key hash>}:window` (a hash: opened_ms, requests, tokens; expires
with the window), `<prefix>{<key hash>}:budget` (lifetime tokens, no expiry) and `<prefix>{<key hash>}:period`
(a hash: start, tokens of the current budget period; expires when the period ends).

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

# `period(now_s, kind)`: the [start, end) Unix seconds of the budget period holding now_s, as
# `auth/periods.period_span` computes them (-1, -1 for `total`). Days from civil dates and back are Howard
# Hinnant's proleptic Gregorian algorithms; 1970-01-01 (day 0) was a Thursday, so Monday is `days - (days+3)%7`.
_PERIOD = """
local function civil_from_days(z)
  z = z + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  return yoe + era * 400 + (m <= 2 and 1 or 0), m, d
end
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local doy = math.floor((153 * (m > 2 and m - 3 or m + 9) + 2) / 5) + d - 1
  return era * 146097 + yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy - 719468
end
local function period(now_s, kind)
  local days = math.floor(now_s / 86400)
  if kind == 'day' then return days * 86400, (days + 1) * 86400 end
  if kind == 'week' then
    local monday = days - (days + 3) % 7
    return monday * 86400, (monday + 7) * 86400
  end
  if kind == 'month' then
    local y, m, d = civil_from_days(days)
    if m == 12 then y, m = y + 1, 1 else m = m + 1 end
    return (days - d + 1) * 86400, days_from_civil(y, m, 1) * 86400
  end
  return -1, -1
end
"""

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

# Shared by both scripts, after `_WINDOW`: `spent`, the tokens of KEYS[2] (`total`) or of KEYS[3]'s period
# when it is the current one (ARGV[5] names the period), and that period's bounds.
_BUDGET = """
local kind = ARGV[5]
local spent, period_start, period_end = 0, -1, -1
if kind == 'total' then
  spent = tonumber(redis.call('GET', KEYS[2]) or '0')
else
  period_start, period_end = period(math.floor(now / 1000), kind)
  local p = redis.call('HMGET', KEYS[3], 'start', 'tokens')
  if tonumber(p[1]) == period_start then spent = tonumber(p[2]) or 0 end
end
"""

# ARGV: window_ms, rpm, tpm, budget (-1: none), budget period. Returns requests (after counting), tokens, spent,
# reset_ms, refused (1: nothing counted; `refusal` says why), budget_reset_ms (-1: a lifetime budget).
_ADMIT = (
    _PERIOD
    + _WINDOW
    + _BUDGET
    + """
local rpm, tpm, budget = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local refused = (budget >= 0 and spent >= budget) or (rpm >= 0 and requests >= rpm) or (tpm >= 0 and tokens >= tpm)
if not refused then requests = redis.call('HINCRBY', KEYS[1], 'requests', 1) end
local budget_reset_ms = period_end >= 0 and period_end * 1000 - now or -1
return {requests, tokens, spent, opened + window_ms - now, refused and 1 or 0, budget_reset_ms}
"""
)

# ARGV: window_ms, tokens, with_budget (1/0), unused (the budget's place in `_ADMIT`), budget period.
_CHARGE = (
    _PERIOD
    + _WINDOW
    + _BUDGET
    + """
local n = tonumber(ARGV[2])
redis.call('HINCRBY', KEYS[1], 'tokens', n)
if ARGV[3] == '1' then
  if kind == 'total' then
    redis.call('INCRBY', KEYS[2], n)
  else
    redis.call('HSET', KEYS[3], 'start', period_start, 'tokens', spent + n)
    redis.call('EXPIREAT', KEYS[3], period_end)
  end
end
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
            requests, tokens, spent, reset_ms, refused, budget_reset_ms = await self._admit(
                keys=self._keys(key),
                args=[
                    self._window_ms,
                    _arg(key.rpm),
                    _arg(key.tpm),
                    _arg(key.budget_tokens),
                    key.budget_period.value,
                ],
            )
        except (RedisError, OSError) as exc:
            self._failures.handle("rate limits", _wrap(exc))  # fail closed: raises StateUnavailable
            return _NO_LIMITS  # fail open: the request goes on uncounted
        state = LimitState(
            key.rpm,
            int(requests),
            key.tpm,
            int(tokens),
            key.budget_tokens,
            int(spent),
            reset_ms / 1000,
            None if int(budget_reset_ms) < 0 else int(budget_reset_ms) / 1000,
        )
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
                keys=self._keys(key),
                args=[self._window_ms, tokens, 1 if key.budget_tokens is not None else 0, 0, key.budget_period.value],
            )
        except (RedisError, OSError) as exc:
            self._failures.note(f"charging {tokens} tokens to the key '{key.name}' (not counted)", _wrap(exc))

    async def aclose(self) -> None:
        """The client is shared with the vault; `SharedState.aclose` closes it."""

    def _keys(self, key: ApiKey) -> list[str]:
        base = f"{self._prefix}{{{key.key_hash}}}"
        return [base + ":window", base + ":budget", base + ":period"]


def _arg(limit: int | None) -> int:
    return -1 if limit is None else limit


def _wrap(exc: BaseException) -> StateStoreError:
    error = StateStoreError(str(exc))
    error.__cause__ = exc
    return error
