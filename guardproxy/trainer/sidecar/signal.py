"""New training signal in the audit log: what decides whether a run starts, and which snapshot rows are "new".

The examples are labelled by the dataset pipeline's own rules (`label_records`), so the count means exactly
"examples the next snapshot gains": blocks, flags and feedback of the target detector. Allowed traffic is not
signal (it only supplies negatives); neither are output-feedback candidates unless the dataset trains on them.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from guardproxy.audit.export import parse_since
from guardproxy.audit.store import open_store
from guardproxy.trainer.dataset.config import DatasetBuildConfig
from guardproxy.trainer.dataset.signals import (
    CANDIDATE,
    SIGNAL_BLOCK,
    SIGNAL_FEEDBACK,
    SIGNAL_FLAG,
    SIGNAL_OUTPUT_FEEDBACK,
    label_records,
    relevant_feedback,
)

_SIGNALS = frozenset({SIGNAL_BLOCK, SIGNAL_FLAG, SIGNAL_FEEDBACK, SIGNAL_OUTPUT_FEEDBACK})


@dataclass(frozen=True, slots=True)
class NewSignal:
    count: int
    request_ids: frozenset[str]  # every new audit record (allowed traffic too): the "new events" eval rows
    by_signal: dict[str, int]


def count_new_signal(
    dataset: DatasetBuildConfig, since: float, until: float | None = None, *, now: float | None = None
) -> NewSignal:
    """Signal examples whose record, or whose latest feedback, is in [since, until) (unix times)."""
    if "://" not in dataset.audit_store and not Path(dataset.audit_store).is_file():
        raise FileNotFoundError(f"no audit database at {dataset.audit_store}")
    now = time.time() if now is None else now
    window_start = parse_since(dataset.since, now=now) if dataset.since else None
    store = open_store(dataset.audit_store)
    try:
        records = list(store.query(since=window_start))
        feedback = list(store.feedback(since=window_start))
    finally:
        store.close()
    relevant = relevant_feedback(feedback, dataset, records)
    end = float("inf") if until is None else until
    fresh = {r.request_id for r in records if since <= r.ts < end} | {
        rid for rid, fb in relevant.items() if since <= fb.ts < end
    }
    examples = label_records((r for r in records if r.request_id in fresh), relevant, dataset, Counter())
    signal = [e for e in examples if e.signal in _SIGNALS and (e.label != CANDIDATE or dataset.use_candidates)]
    return NewSignal(
        count=len(signal),
        request_ids=frozenset(e.source.removeprefix("audit:") for e in examples),
        by_signal=dict(sorted(Counter(e.signal for e in signal).items())),
    )
