"""Aggregate probe results into rates per category: a stdout table, a JSON document and a PNG bar chart."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from guardproxy.redteam.judging import Outcome, ProbeResult
from guardproxy.redteam.suites import Category


@dataclass(frozen=True)
class CategoryStats:
    category: Category
    total: int
    blocked: int
    refused: int
    answered: int
    errors: int
    succeeded: int  # attacks: successful attacks; benign: over-refused prompts

    @property
    def rate(self) -> float:
        """Over the requests that got an answer or a block (errors excluded)."""
        judged = self.total - self.errors
        return self.succeeded / judged if judged else 0.0


@dataclass(frozen=True)
class Report:
    target: str
    model: str
    suite: str
    judge: str
    categories: tuple[CategoryStats, ...]  # attack categories, in suite order
    overall: CategoryStats  # every attack together (category field: the first attack category, unused)
    benign: CategoryStats
    results: tuple[ProbeResult, ...]

    @property
    def attack_success_rate(self) -> float:
        return self.overall.rate

    @property
    def over_refusal_rate(self) -> float:
        return self.benign.rate

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "model": self.model,
            "suite": self.suite,
            "judge": self.judge,
            "attack_success_rate": round(self.attack_success_rate, 4),
            "over_refusal_rate": round(self.over_refusal_rate, 4),
            "attacks": _stats_json(self.overall),
            "categories": {s.category.value: _stats_json(s) for s in self.categories},
            "benign": _stats_json(self.benign),
            "results": [
                {
                    "id": r.probe.id,
                    "category": r.probe.category.value,
                    "outcome": r.outcome.value,
                    "succeeded": r.succeeded,
                    "detail": r.detail,
                }
                for r in self.results
            ],
        }


def build_report(results: Sequence[ProbeResult], *, target: str, model: str, suite: str, judge: str) -> Report:
    attacks = [r for r in results if r.probe.is_attack]
    benign = [r for r in results if not r.probe.is_attack]
    order = list(dict.fromkeys(r.probe.category for r in attacks))
    categories = tuple(_stats(c, [r for r in attacks if r.probe.category is c]) for c in order)
    overall = _stats(order[0] if order else Category.DIRECT_INJECTION, attacks)
    return Report(target, model, suite, judge, categories, overall, _stats(Category.BENIGN, benign), tuple(results))


def _stats(category: Category, results: Sequence[ProbeResult]) -> CategoryStats:
    def count(outcome: Outcome) -> int:
        return sum(r.outcome is outcome for r in results)

    return CategoryStats(
        category,
        total=len(results),
        blocked=count(Outcome.BLOCKED),
        refused=count(Outcome.REFUSED),
        answered=count(Outcome.ANSWERED),
        errors=count(Outcome.ERROR),
        succeeded=sum(r.succeeded for r in results),
    )


def _stats_json(s: CategoryStats) -> dict[str, Any]:
    return {
        "total": s.total,
        "blocked": s.blocked,
        "refused": s.refused,
        "answered": s.answered,
        "errors": s.errors,
        "succeeded": s.succeeded,
        "rate": round(s.rate, 4),
    }


def format_table(report: Report) -> str:
    header = f"{'category':<26}{'n':>5}{'blocked':>9}{'refused':>9}{'answered':>10}{'errors':>8}{'rate':>8}"
    lines = [f"red-team {report.suite} suite against {report.target} (judge: {report.judge})", header]
    rows = [*((s.category.value, s) for s in report.categories), ("ATTACK SUCCESS (all)", report.overall)]
    rows.append(("OVER-REFUSAL (benign)", report.benign))
    for label, s in rows:
        lines.append(f"{label:<26}{s.total:>5}{s.blocked:>9}{s.refused:>9}{s.answered:>10}{s.errors:>8}{s.rate:>8.1%}")
    return "\n".join(lines)


def write_json(report: Report, path: Path) -> None:
    path.write_text(json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_png(report: Report, path: Path) -> None:
    import matplotlib  # lazily: only `--png` needs it

    matplotlib.use("Agg")  # files only: never open a window
    import matplotlib.pyplot as plt

    labels = [*(s.category.value.replace("_", "\n") for s in report.categories), "ALL\nattacks", "benign\nover-refusal"]
    rates = [*(s.rate for s in report.categories), report.attack_success_rate, report.over_refusal_rate]
    colours = ["tab:red"] * (len(rates) - 1) + ["tab:blue"]
    figure, axes = plt.subplots(figsize=(10, 4.5))
    try:
        bars = axes.bar(labels, [100 * r for r in rates], color=colours)
        axes.bar_label(bars, labels=[f"{100 * r:.0f}%" for r in rates])
        axes.set_ylim(0, 105)
        axes.set_ylabel("% of requests")
        axes.set_title(f"Attack success rate per category and over-refusal: {report.suite} suite, {report.target}")
        figure.tight_layout()
        figure.savefig(path, dpi=100)
    finally:
        plt.close(figure)
