"""Per-key rate limits and token budgets: requests/min, tokens/min, a token budget per period.

The window is a **fixed 60 s window that opens at a key's first request** and closes 60 s later: one
counter pair per key, reset when the window closes. It lets a key burst up to 2x its limit across two
adjacent windows; a sliding window would not, but needs a timestamp per request. This is exactly the
semantics the Redis limiter (`state/redis_limits.py`) keeps in one Lua script, on the Redis server's clock.

Requests are counted at admission. Tokens are charged when known (after the answer, or at the end of a
stream), so a request is admitted while the key is under its limit and the answer that crosses it is charged
in full: the *next* request is refused. `budget_tokens` covers the key's `budget_period` (`auth/periods.py`):
its lifetime (`total`), or a UTC calendar day, ISO week or calendar month, starting over at the next one;
tokens count in the period where they are charged. In memory the budget starts over when the proxy restarts
and periods follow the limiter's clock; in Redis (`state.url`) it persists, every replica shares it, and
periods follow the Redis server's clock, so replicas whose own clocks are skewed agree on them.

`RateLimiter` is the seam; `MemoryRateLimiter` is the in-process default, `RedisRateLimiter` the shared one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from guardproxy.auth.keys import ApiKey
from guardproxy.auth.periods import period_span
from guardproxy.errors import BudgetExhausted, RateLimitExceeded

WINDOW_S = 60.0
# Keys seen in one window are few (one per team); past this many the old windows are dropped at once.
MAX_TRACKED_KEYS = 100_000


@dataclass(frozen=True, slots=True)
class LimitState:
    """What the `x-ratelimit-*` headers report for one key at one moment."""

    rpm: int | None
    requests_used: int
    tpm: int | None
    tokens_used: int
    budget_tokens: int | None
    budget_used: int
    reset_s: float  # until the current window ends
    budget_reset_s: float | None = None  # until the budget's period ends; None: a lifetime budget

    def headers(self) -> dict[str, str]:
        """OpenAI's header names; only for the limits the key has."""
        reset = f"{self.reset_s:.3f}s"
        out: dict[str, str] = {}
        if self.rpm is not None:
            out["x-ratelimit-limit-requests"] = str(self.rpm)
            out["x-ratelimit-remaining-requests"] = str(max(0, self.rpm - self.requests_used))
            out["x-ratelimit-reset-requests"] = reset
        if self.tpm is not None:
            out["x-ratelimit-limit-tokens"] = str(self.tpm)
            out["x-ratelimit-remaining-tokens"] = str(max(0, self.tpm - self.tokens_used))
            out["x-ratelimit-reset-tokens"] = reset
        if self.budget_tokens is not None:
            out["x-guardproxy-budget-remaining-tokens"] = str(max(0, self.budget_tokens - self.budget_used))
            if self.budget_reset_s is not None:
                out["x-guardproxy-budget-reset-tokens"] = f"{self.budget_reset_s:.3f}s"
        return out


class RateLimiter(Protocol):
    async def admit(self, key: ApiKey) -> LimitState:
        """Counts one request; RateLimitExceeded / BudgetExhausted (429) when the key is over a limit
        (`refusal`), StateUnavailable (503) when a shared store does not answer and the policy fails closed."""
        ...

    async def charge(self, key: ApiKey, tokens: int) -> None:
        """Adds the tokens of an answer to the key's window and budget. Never raises: the answer is delivered."""
        ...

    async def aclose(self) -> None: ...


def refusal(key: ApiKey, state: LimitState) -> RateLimitExceeded | BudgetExhausted | None:
    """The one rule for every limiter: the error for a key whose usage (before this request) is at a limit.
    The Redis limiter's Lua script tests the same three conditions atomically before it counts a request."""
    if key.budget_tokens is not None and state.budget_used >= key.budget_tokens:
        if state.budget_reset_s is None:
            return BudgetExhausted(
                f"The key '{key.name}' has used its token budget ({key.budget_tokens} tokens); "
                "ask the proxy's operator for a new key or a larger budget.",
                headers=state.headers(),
            )
        return BudgetExhausted(
            f"The key '{key.name}' has used its token budget for this {key.budget_period} "
            f"({key.budget_tokens} tokens); it starts over in {math.ceil(state.budget_reset_s)}s.",
            headers=state.headers(),
            retry_after_s=state.budget_reset_s,
        )
    if key.rpm is not None and state.requests_used >= key.rpm:
        return RateLimitExceeded(
            f"Rate limit reached for the key '{key.name}': {key.rpm} requests per minute. "
            f"Try again in {math.ceil(state.reset_s)}s.",
            retry_after_s=state.reset_s,
            headers=state.headers(),
        )
    if key.tpm is not None and state.tokens_used >= key.tpm:
        return RateLimitExceeded(
            f"Rate limit reached for the key '{key.name}': {key.tpm} tokens per minute "
            f"(used {state.tokens_used}). Try again in {math.ceil(state.reset_s)}s.",
            retry_after_s=state.reset_s,
            headers=state.headers(),
        )
    return None


@dataclass(slots=True)
class _Usage:
    opened: float  # the window ends at opened + WINDOW_S
    requests: int = 0
    tokens: int = 0


@dataclass(slots=True)
class _Spent:
    start: float  # the budget period [start, end) the tokens count in; -inf, inf for a lifetime budget
    end: float
    tokens: int = 0


class MemoryRateLimiter:
    """One process's counters. Not shared between replicas: each replica enforces the limits on its own."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._windows: dict[str, _Usage] = {}
        self._spent: dict[str, _Spent] = {}  # per key hash, for keys with a budget

    async def admit(self, key: ApiKey) -> LimitState:
        now = self._clock()
        usage = self._current(key.key_hash, now)
        spent, budget_reset_s = 0, None
        if key.budget_tokens is not None:
            budget = self._budget(key, now)
            spent, budget_reset_s = budget.tokens, None if budget.end == math.inf else budget.end - now
        reset_s = usage.opened + WINDOW_S - now
        refused = refusal(
            key,
            LimitState(
                key.rpm, usage.requests, key.tpm, usage.tokens, key.budget_tokens, spent, reset_s, budget_reset_s
            ),
        )
        if refused is not None:
            raise refused
        usage.requests += 1
        # Built again rather than `dataclasses.replace`d: replace costs a few µs on every keyed request.
        return LimitState(
            key.rpm, usage.requests, key.tpm, usage.tokens, key.budget_tokens, spent, reset_s, budget_reset_s
        )

    async def charge(self, key: ApiKey, tokens: int) -> None:
        if tokens <= 0:
            return
        now = self._clock()
        self._current(key.key_hash, now).tokens += tokens
        if key.budget_tokens is not None:
            self._budget(key, now).tokens += tokens

    def _budget(self, key: ApiKey, now: float) -> _Spent:
        """The key's tokens in the budget period holding `now`; an earlier period's no longer count. The span
        is worked out once per period, not per call (the calendar costs more than the counting)."""
        held = self._spent.get(key.key_hash)
        if held is None or not held.start <= now < held.end:
            span = period_span(key.budget_period, now)
            held = _Spent(-math.inf, math.inf) if span is None else _Spent(span.start, span.end)
            self._spent[key.key_hash] = held
        return held

    async def aclose(self) -> None:
        self._windows.clear()

    def _current(self, key_hash: str, now: float) -> _Usage:
        usage = self._windows.get(key_hash)
        if usage is None or now >= usage.opened + WINDOW_S:
            if usage is None and len(self._windows) >= MAX_TRACKED_KEYS:
                self._windows = {h: u for h, u in self._windows.items() if now < u.opened + WINDOW_S}
            usage = self._windows[key_hash] = _Usage(now)
        return usage
