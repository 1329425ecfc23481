"""Budget periods: the span of UTC time a key's `--budget-tokens` covers before it starts over.

`day` is the calendar day, `week` the ISO week (Monday 00:00 to Monday 00:00), `month` the calendar month,
all in UTC; `total` never resets (the key's lifetime). `period_span` is the rule in Python (the in-process
limiter); the Redis limiter computes the same spans inside its Lua scripts from the Redis server's clock
(`state/redis_limits.py`, `_PERIOD`), so that replicas with skewed clocks agree on the period.
tests/test_state.py holds both to the same timestamps.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum


class BudgetPeriod(StrEnum):
    TOTAL = "total"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


@dataclass(frozen=True, slots=True)
class PeriodSpan:
    """[start, end) in whole Unix seconds."""

    start: int
    end: int


def period_span(period: BudgetPeriod, now: float) -> PeriodSpan | None:
    """The span of `period` that contains the instant `now`; None for `total` (it has no end)."""
    if period is BudgetPeriod.TOTAL:
        return None
    midnight = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period is BudgetPeriod.DAY:
        start, end = midnight, midnight + timedelta(days=1)
    elif period is BudgetPeriod.WEEK:
        start = midnight - timedelta(days=midnight.weekday())  # weekday(): Monday is 0, as in ISO weeks
        end = start + timedelta(days=7)
    else:
        start = midnight.replace(day=1)
        end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return PeriodSpan(int(start.timestamp()), int(end.timestamp()))
