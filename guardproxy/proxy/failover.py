"""Trying a request on a model's route, then on its fallbacks: one rule for answers and streams.

A target is left for the next one when its upstream is unreachable, timed out, overloaded (429) or
broken (5xx); any other status (a 400, a 401, a 404) is the client's problem, would be the same on
every target, and is passed on at once. Every attempt is timed: its latency is observed per backend,
and the exchange keeps the last attempt's (the one that answered, or the last that failed).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import structlog

from guardproxy.errors import GuardproxyError, UpstreamStatus, UpstreamTimeout, UpstreamUnavailable
from guardproxy.proxy.exchange import Exchange
from guardproxy.proxy.runtime import Target

log = structlog.get_logger(__name__)
T = TypeVar("T")


def worth_another_target(error: GuardproxyError) -> bool:
    """Whether another upstream might answer where this one failed."""
    if isinstance(error, UpstreamStatus):
        return error.status >= 500 or error.status == 429
    return isinstance(error, UpstreamUnavailable | UpstreamTimeout)


async def failover(ex: Exchange, targets: Sequence[Target], attempt: Callable[[Target], Awaitable[T]]) -> T:
    """`attempt(target)` on each target in order until one succeeds; the last failure when none does.

    Before each attempt the request body names the target's upstream model and the exchange its backend.
    """
    last: GuardproxyError | None = None
    for target in targets:
        ex.body["model"] = target.upstream_model
        ex.backend = target.route.backend
        started = time.perf_counter()
        try:
            return await attempt(target)
        except GuardproxyError as exc:
            if not worth_another_target(exc):
                raise
            last = exc
        finally:
            elapsed = time.perf_counter() - started
            ex.upstream_latency_ms = elapsed * 1000.0
            ex.metrics.upstream_latency.labels(target.route.backend, ex.endpoint).observe(elapsed)
        log.warning("upstream_failed", backend=target.route.backend, error=last.message, request_id=ex.request_id)
    if last is None:
        raise ValueError("failover needs at least one target")
    raise last
