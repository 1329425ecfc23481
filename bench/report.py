"""Table, ratios and target checks for the gateway benchmark."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

DIRECT, GUARDPROXY, LITELLM = "direct", "guardproxy", "litellm"

# The targets: guardproxy adds at most 1 ms p50 at concurrency 1, and serves at least 5x LiteLLM's req/s.
MAX_P50_OVERHEAD_MS = 1.0
MIN_THROUGHPUT_RATIO = 5.0


@dataclass(frozen=True, slots=True)
class Point:
    """One measured (target, concurrency) pair.

    ``server_cpu_ms_per_req`` is the CPU time of the measured server alone (not the upstream, not the generator).
    """

    target: str
    concurrency: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    ok_requests: int
    errors: int
    duration_s: float
    server_cpu_ms_per_req: float | None
    loadavg_1m_before: float


@dataclass(frozen=True, slots=True)
class TargetCheck:
    description: str
    value: float | None
    met: bool | None  # None: not measurable in this run (a column was skipped)


def _find(points: Sequence[Point], target: str, concurrency: int) -> Point | None:
    return next((p for p in points if p.target == target and p.concurrency == concurrency), None)


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def format_table(points: Sequence[Point]) -> str:
    header = f"{'target':<11} {'conc':>4} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6} {'cpu ms/req':>10}"
    rows = [header, "-" * len(header)]
    for p in points:
        rows.append(
            f"{p.target:<11} {p.concurrency:>4} {p.requests_per_s:>9.1f} {_fmt(p.p50_ms, 2):>8} "
            f"{_fmt(p.p99_ms, 2):>8} {p.errors:>6} {_fmt(p.server_cpu_ms_per_req, 3):>10}"
        )
    return "\n".join(rows)


def compute_ratios(points: Sequence[Point], concurrencies: Sequence[int]) -> dict[str, dict[str, float | None]]:
    """Per concurrency: each gateway's added p50/p99 over direct, and guardproxy req/s over LiteLLM's."""

    def minus(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else a - b

    def divide(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None or b == 0 else a / b

    ratios: dict[str, dict[str, float | None]] = {}
    for c in concurrencies:
        direct, guard, lite = (_find(points, t, c) for t in (DIRECT, GUARDPROXY, LITELLM))

        def field(point: Point | None, name: str) -> float | None:
            return None if point is None else float(getattr(point, name))

        ratios[str(c)] = {
            "guardproxy_overhead_p50_ms": minus(field(guard, "p50_ms"), field(direct, "p50_ms")),
            "guardproxy_overhead_p99_ms": minus(field(guard, "p99_ms"), field(direct, "p99_ms")),
            "litellm_overhead_p50_ms": minus(field(lite, "p50_ms"), field(direct, "p50_ms")),
            "litellm_overhead_p99_ms": minus(field(lite, "p99_ms"), field(direct, "p99_ms")),
            "guardproxy_rps_over_litellm_rps": divide(field(guard, "requests_per_s"), field(lite, "requests_per_s")),
            "guardproxy_rps_over_direct_rps": divide(field(guard, "requests_per_s"), field(direct, "requests_per_s")),
            "litellm_rps_over_direct_rps": divide(field(lite, "requests_per_s"), field(direct, "requests_per_s")),
        }
    return ratios


def format_ratios(ratios: dict[str, dict[str, float | None]]) -> str:
    rows = [
        f"{'concurrency':<12} {'gp +p50 ms':>10} {'gp +p99 ms':>10} {'ll +p50 ms':>10} {'ll +p99 ms':>10} "
        f"{'gp/ll req/s':>11} {'gp/direct':>9}"
    ]
    for c, r in ratios.items():
        rows.append(
            f"{c:<12} {_fmt(r['guardproxy_overhead_p50_ms'], 2):>10} {_fmt(r['guardproxy_overhead_p99_ms'], 2):>10} "
            f"{_fmt(r['litellm_overhead_p50_ms'], 2):>10} {_fmt(r['litellm_overhead_p99_ms'], 2):>10} "
            f"{_fmt(r['guardproxy_rps_over_litellm_rps'], 2):>11} {_fmt(r['guardproxy_rps_over_direct_rps'], 3):>9}"
        )
    return "\n".join(rows)


def evaluate_targets(ratios: dict[str, dict[str, float | None]]) -> list[TargetCheck]:
    checks: list[TargetCheck] = []
    if "1" in ratios:
        overhead = ratios["1"]["guardproxy_overhead_p50_ms"]
        checks.append(
            TargetCheck(
                f"guardproxy p50 overhead at concurrency 1 <= {MAX_P50_OVERHEAD_MS:g} ms",
                overhead,
                None if overhead is None else overhead <= MAX_P50_OVERHEAD_MS,
            )
        )
    for c, r in ratios.items():
        ratio = r["guardproxy_rps_over_litellm_rps"]
        checks.append(
            TargetCheck(
                f"guardproxy req/s >= {MIN_THROUGHPUT_RATIO:g}x LiteLLM's at concurrency {c}",
                ratio,
                None if ratio is None else ratio >= MIN_THROUGHPUT_RATIO,
            )
        )
    return checks


def format_checks(checks: Sequence[TargetCheck]) -> str:
    labels = {True: "MET    ", False: "MISSED ", None: "SKIPPED"}
    return "\n".join(f"[{labels[c.met]}] {c.description}: {_fmt(c.value, 2)}" for c in checks)


def checks_as_json(checks: Sequence[TargetCheck]) -> list[dict[str, Any]]:
    return [{"description": c.description, "value": c.value, "met": c.met} for c in checks]
