"""A run's evidence: `report.json` (everything), `report.md` (for people), `report.png` (both models' metrics)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from guardproxy.trainer.sidecar.evaluate import REPORTED

log = logging.getLogger(__name__)

SKIPPED = "skipped"
PROMOTED = "promoted"
REFUSED = "refused"


@dataclass
class RunReport:
    run_id: str
    status: str  # skipped | promoted | refused
    new_events: int
    started: float
    finished: float = 0.0
    snapshot: str | None = None
    current_version: str | None = None
    candidate_version: str | None = None
    metric: str = "f1"
    group: str | None = None
    # evaluation set name -> model ("current" | "candidate") -> metrics
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    gate: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    report_dir: Path | None = None

    @property
    def promoted(self) -> bool:
        return self.status == PROMOTED

    def as_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "new_events": self.new_events,
            "started": self.started,
            "finished": self.finished,
            "snapshot": self.snapshot,
            "current_version": self.current_version,
            "candidate_version": self.candidate_version,
            "metric": self.metric,
            "group": self.group,
            "metrics": self.metrics,
            "gate": self.gate,
            "training": self.training,
            "notes": self.notes,
        }


def write_report(report: RunReport, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "report.json").write_text(json.dumps(report.as_json(), indent=2, default=str) + "\n", encoding="utf-8")
    (directory / "report.md").write_text(markdown(report), encoding="utf-8")
    write_chart(report, directory / "report.png")
    report.report_dir = directory
    return directory


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def markdown(report: RunReport) -> str:
    verdict = {PROMOTED: "**promoted**", REFUSED: "**refused**"}.get(report.status, report.status)
    lines = [
        f"# Sidecar run {report.run_id}: {verdict}",
        "",
        f"- new training events: {report.new_events}",
        f"- snapshot: `{report.snapshot}`",
        f"- current version: `{report.current_version}`; candidate: `{report.candidate_version}`",
        f"- gated metric: {report.metric} of `{report.group}`",
    ]
    if report.training:
        t = report.training
        lines.append(
            f"- training: {t.get('steps')} steps in {t.get('seconds')} s from `{t.get('init_from') or 'base model'}`"
            + (f", resumed at step {t['resumed_from_step']}" if t.get("resumed_from_step") else "")
        )
    lines += ["", "## Gate", ""]
    lines += ["| check | current | candidate | delta | limit | passed |", "|---|---|---|---|---|---|"]
    for c in report.gate.get("checks", []):
        limit = c.get("required_delta", c.get("allowed_increase"))
        row = [c["check"], c.get("current"), c.get("candidate"), c.get("delta"), limit, "yes" if c["passed"] else "no"]
        lines.append("| " + " | ".join(_fmt(v) for v in row) + " |")
    lines += ["", *(f"- {r}" for r in report.gate.get("reasons", [])), ""]
    for set_name, models in report.metrics.items():
        lines += [f"## Metrics on {set_name}", "", "| metric | current | candidate |", "|---|---|---|"]
        for name in ("n", "positives", "negatives", "threshold", *REPORTED):
            current = (models.get("current") or {}).get(name)
            candidate = (models.get("candidate") or {}).get(name)
            lines.append(f"| {name} | {_fmt(current)} | {_fmt(candidate)} |")
        lines.append("")
    lines += [*(f"> {n}" for n in report.notes), ""]
    return "\n".join(lines)


def write_chart(report: RunReport, path: Path) -> None:
    """Grouped bars per evaluation set: current vs candidate on each metric (matplotlib, headless)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        report.notes.append("report.png not written: matplotlib is not installed (pip install 'guardproxy[trainer]')")
        log.warning("matplotlib is not installed: no report.png")
        return
    import numpy as np

    sets = list(report.metrics) or ["(none)"]
    fig, axes = plt.subplots(1, len(sets), figsize=(6 * len(sets), 4), squeeze=False)
    x = np.arange(len(REPORTED))
    for ax, set_name in zip(axes[0], sets, strict=True):
        models = report.metrics.get(set_name, {})
        for offset, (model, colour) in zip(
            (-0.2, 0.2), (("current", "#8c8c8c"), ("candidate", "#1f77b4")), strict=True
        ):
            metrics = models.get(model) or {}
            values = [float(metrics.get(m) or 0.0) for m in REPORTED]
            version = report.current_version if model == "current" else report.candidate_version
            ax.bar(x + offset, values, width=0.4, label=f"{model} ({version})", color=colour)
        ax.set_xticks(x, REPORTED)
        ax.set_ylim(0, 1.05)
        ax.set_title(f"{set_name} (n={(models.get('candidate') or {}).get('n', 0)})")
        ax.legend(loc="lower right", fontsize=8)
    fig.suptitle(f"sidecar run {report.run_id}: {report.status} ({report.metric} of {report.group})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
