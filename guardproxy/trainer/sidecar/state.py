"""The sidecar's small state file, `<work_dir>/<name>/state.json`.

`watermark` is the time up to which audit events have been used; `pending` describes a run that started and has
not finished, so the next run resumes it (same snapshot, same checkpoint directory) instead of starting over.
Written atomically (temporary file + rename): a kill never leaves half a state file.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

STATE_FILE = "state.json"
_HISTORY = 50  # run summaries kept in the state file (the reports keep everything)


@dataclass
class PendingRun:
    run_id: str
    started: float
    watermark: float  # events before this moment belong to this run
    since: float  # ... and after this one (the previous watermark): the run's new events
    snapshot: str  # the snapshot directory
    train_dir: str  # the classifier's work_dir: checkpoints to resume from
    new_events: int
    candidate: str | None = None  # set once the candidate version is exported


@dataclass
class SidecarState:
    watermark: float = 0.0
    pending: PendingRun | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    def finish(self, summary: dict[str, Any]) -> None:
        """Close the pending run: its events are used, whatever the verdict."""
        if self.pending is not None:
            self.watermark = self.pending.watermark
        self.pending = None
        self.history = [*self.history, summary][-_HISTORY:]


def load_state(run_dir: Path) -> SidecarState:
    path = run_dir / STATE_FILE
    if not path.is_file():
        return SidecarState()
    data = json.loads(path.read_text(encoding="utf-8"))
    pending = data.get("pending")
    return SidecarState(
        watermark=float(data.get("watermark", 0.0)),
        pending=PendingRun(**pending) if pending else None,
        history=list(data.get("history", [])),
    )


def save_state(run_dir: Path, state: SidecarState) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / f".{STATE_FILE}.{os.getpid()}"
    tmp.write_text(json.dumps(asdict(state), indent=2) + "\n", encoding="utf-8")
    tmp.replace(run_dir / STATE_FILE)
