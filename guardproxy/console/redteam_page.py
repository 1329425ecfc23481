"""The red-team page: the last `guardproxy redteam --json` report, read from GUARDPROXY_REDTEAM_REPORT.

The report is a file the CLI writes (a CI job, a person); the console only reads it, so a replica shows
what its environment points at. A missing or unreadable file is said on the page, never an error page."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

REPORT_ENV = "GUARDPROXY_REDTEAM_REPORT"


@dataclass(frozen=True, slots=True)
class RateRow:
    name: str
    total: int
    blocked: int
    refused: int
    succeeded: int
    errors: int
    rate: float


@dataclass(frozen=True, slots=True)
class RedteamView:
    path: Path | None
    problem: str | None = None  # why there is no report to show
    written: str = ""
    target: str = ""
    suite: str = ""
    judge: str = ""
    attack_success_rate: float = 0.0
    over_refusal_rate: float = 0.0
    rows: tuple[RateRow, ...] = ()
    benign: RateRow | None = None

    @property
    def table(self) -> tuple[RateRow, ...]:
        """The attack categories, then the benign prompts."""
        return (*self.rows, self.benign) if self.benign is not None else self.rows


def _row(name: str, stats: dict[str, object]) -> RateRow:
    def count(key: str) -> int:
        value = stats.get(key, 0)
        return value if isinstance(value, int) else 0

    rate = stats.get("rate", 0.0)
    return RateRow(
        name, count("total"), count("blocked"), count("refused"), count("succeeded"), count("errors"),
        float(rate) if isinstance(rate, int | float) else 0.0,
    )  # fmt: skip


def load_redteam(path: Path | None) -> RedteamView:
    if path is None:
        return RedteamView(
            None, f"No report configured: set {REPORT_ENV} to the file `guardproxy redteam --json` writes."
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        written = datetime.fromtimestamp(path.stat().st_mtime, UTC).strftime("%Y-%m-%d %H:%M UTC")
    except FileNotFoundError:
        return RedteamView(path, "No report yet: run `guardproxy redteam --target URL --json PATH`.")
    except (OSError, ValueError) as exc:
        return RedteamView(path, f"The report could not be read: {type(exc).__name__}.")
    if not isinstance(data, dict) or not isinstance(data.get("categories"), dict):
        return RedteamView(path, "The file is not a `guardproxy redteam` report.")
    benign = data.get("benign")
    return RedteamView(
        path=path,
        written=written,
        target=str(data.get("target", "")),
        suite=str(data.get("suite", "")),
        judge=str(data.get("judge", "")),
        attack_success_rate=float(data.get("attack_success_rate", 0.0)),
        over_refusal_rate=float(data.get("over_refusal_rate", 0.0)),
        rows=tuple(_row(str(k), v) for k, v in data["categories"].items() if isinstance(v, dict)),
        benign=_row("benign (over-refusal)", benign) if isinstance(benign, dict) else None,
    )
