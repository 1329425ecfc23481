"""`guardproxy audit sample`: a reproducible, stratified batch of audit records for reviewers to label.

Each record gets a key from the seed and its request id (sha256), so the same seed over the same log draws the
same batch, whatever order the store returns records in, and a record drawn with `--n 50` is also drawn with
`--n 100`. The batch is spread evenly over the strata (the combinations of the `--stratify` fields seen in the
log): a rare stratum (a detector that fires once a day) is as present as a common one; a stratum with fewer
records than its share gives all of them and the rest goes to the others. Within a stratum, the smallest keys win.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import TextIO

from guardproxy.audit.feedback import Feedback
from guardproxy.audit.records import AuditRecord

NO_VALUE = "none"


def _fired_detector(record: AuditRecord, _: Mapping[str, Feedback]) -> str:
    fired = sorted({s.detector for s in record.steps if s.ran and s.fired})
    return "+".join(fired) if fired else NO_VALUE


def _review(record: AuditRecord, feedback: Mapping[str, Feedback]) -> str:
    fb = feedback.get(record.request_id)
    return NO_VALUE if fb is None else fb.label


STRATA: dict[str, Callable[[AuditRecord, Mapping[str, Feedback]], str]] = {
    "outcome": lambda record, _: record.outcome.value,
    "detector": _fired_detector,  # the detectors that fired, joined by "+", or "none"
    "model": lambda record, _: record.model,
    "review": _review,  # the latest reviewer label, or "none"
}


def parse_stratify(text: str) -> tuple[str, ...]:
    fields = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [f for f in fields if f not in STRATA]
    if unknown or not fields:
        raise ValueError(f"--stratify takes a comma-separated list of {', '.join(STRATA)}; got {text!r}")
    return fields


def sample_key(seed: int, request_id: str) -> bytes:
    return hashlib.sha256(f"{seed}:{request_id}".encode()).digest()


def draw(
    records: Iterable[AuditRecord], n: int, fields: tuple[str, ...], seed: int, feedback: Mapping[str, Feedback]
) -> list[tuple[tuple[str, ...], AuditRecord]]:
    """Up to `n` (stratum, record) pairs, ordered by stratum then key. Memory: at most `n` records per stratum."""
    kept: dict[tuple[str, ...], list[tuple[bytes, int, AuditRecord]]] = {}
    for i, record in enumerate(records):
        stratum = tuple(STRATA[f](record, feedback) for f in fields)
        heap = kept.setdefault(stratum, [])
        item = (_negated(sample_key(seed, record.request_id)), i, record)  # a max-heap of the n smallest keys
        if len(heap) < n:
            heapq.heappush(heap, item)
        elif item[0] > heap[0][0]:
            heapq.heapreplace(heap, item)
    shares = allocate(n, {stratum: len(heap) for stratum, heap in kept.items()})
    batch: list[tuple[tuple[str, ...], AuditRecord]] = []
    for stratum in sorted(kept):
        chosen = sorted(kept[stratum], key=lambda item: item[0], reverse=True)[: shares[stratum]]
        batch.extend((stratum, record) for _, _, record in chosen)
    return batch


def allocate(n: int, available: Mapping[tuple[str, ...], int]) -> dict[tuple[str, ...], int]:
    """Even shares of `n`, capped by what each stratum has; what a small stratum cannot use goes to the others.

    Water-filling: the smallest strata are served first, each with its fair part of what is left; the remainder
    of uneven splits goes one by one to the strata in sorted order (reproducible).
    """
    shares = dict.fromkeys(available, 0)
    order = sorted(available, key=lambda s: (available[s], s))
    left = n
    for index, stratum in enumerate(order):
        shares[stratum] = min(available[stratum], left // (len(order) - index))
        left -= shares[stratum]
    while left > 0:
        roomy = [s for s in sorted(available) if shares[s] < available[s]]
        if not roomy:
            break
        for stratum in roomy[:left]:
            shares[stratum] += 1
            left -= 1
    return shares


def _negated(key: bytes) -> bytes:
    return bytes(255 - b for b in key)


def sample_cmd(
    db: str,
    *,
    n: int,
    stratify: str,
    seed: int,
    since: str | None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Prints the batch as JSON lines: each record (as `audit export` prints it) with its `stratum`."""
    from guardproxy.audit.export import EXIT_OK, EXIT_USAGE, open_existing, parse_since
    from guardproxy.audit.store import latest_feedback

    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    prog = "guardproxy audit sample"
    try:
        fields = parse_stratify(stratify)
        since_ts = None if since is None else parse_since(since)
    except ValueError as exc:
        print(f"{prog}: {exc}", file=err)
        return EXIT_USAGE
    if n < 1:
        print(f"{prog}: --n must be at least 1", file=err)
        return EXIT_USAGE
    store = open_existing(db, prog, err)
    if store is None:
        return EXIT_USAGE
    try:
        feedback = latest_feedback(store.feedback()) if "review" in fields else {}
        batch = draw(store.query(since=since_ts), n, fields, seed, feedback)
    finally:
        store.close()
    for stratum, record in batch:
        row = {"stratum": dict(zip(fields, stratum, strict=True)), **record.to_dict()}
        out.write(json.dumps(row, ensure_ascii=False, separators=(",", ":"), default=str) + "\n")
    return EXIT_OK
