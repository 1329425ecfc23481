"""`guardproxy trainer dataset build`: audit log + feedback + base datasets -> one versioned snapshot.

Order matters: label, scrub PII (so two prompts differing only in an e-mail address are one text), remove
exact then near duplicates (keeping the most trusted copy), balance, write. Every record that does not make it
into `data.jsonl` is counted in the manifest's `dropped` under the reason it was dropped.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from guardproxy.audit.export import parse_since
from guardproxy.audit.store import open_store
from guardproxy.detectors.pii_regex import scrub_pii
from guardproxy.trainer.classifier.data import file_sha256, stable_fraction
from guardproxy.trainer.dataset.config import BaseDatasetSpec, DatasetBuildConfig
from guardproxy.trainer.dataset.dedup import deduplicate, text_key
from guardproxy.trainer.dataset.signals import (
    CANDIDATE,
    SIGNAL_DATASET,
    Example,
    label_records,
    relevant_feedback,
)
from guardproxy.trainer.dataset.snapshot import SnapshotInfo, commit_snapshot, read_jsonl


@dataclass
class Balance:
    positives: int
    negatives_wanted: int
    negatives: int

    @property
    def shortfall(self) -> int:
        return max(0, self.negatives_wanted - self.negatives)

    def as_json(self) -> dict[str, int]:
        return {
            "positives": self.positives,
            "negatives_wanted": self.negatives_wanted,
            "negatives": self.negatives,
            "shortfall": self.shortfall,
        }


def build(cfg: DatasetBuildConfig, *, now: float | None = None) -> SnapshotInfo:
    """Build and commit the next snapshot of `cfg.name`; returns it."""
    now = time.time() if now is None else now
    dropped: Counter[str] = Counter()
    since_ts = parse_since(cfg.since, now=now) if cfg.since else None
    audit_examples, audit_source = read_audit(cfg, since_ts, dropped)
    base_examples, base_sources = read_base_datasets(cfg, dropped)

    examples: list[Example] = []
    scrubbed = 0
    for example in (*audit_examples, *base_examples):
        clean = scrub_pii(example.text)
        scrubbed += clean != example.text
        examples.append(example if clean == example.text else Example(clean, *_rest(example)))
    examples = deduplicate(
        examples,
        threshold=cfg.near_duplicate_threshold,
        words=cfg.shingle_words,
        salt=cfg.sample_salt,
        dropped=dropped,
    )
    if cfg.use_candidates:
        examples = [Example(e.text, cfg.pos_label, e.source, e.signal) if e.label == CANDIDATE else e for e in examples]
    candidates = [e for e in examples if e.label == CANDIDATE]
    data, balance = balance_examples([e for e in examples if e.label != CANDIDATE], cfg, dropped)
    data.sort(key=lambda e: text_key(e.text))  # a stable, label-mixed order
    candidates.sort(key=lambda e: text_key(e.text))

    manifest: dict[str, Any] = {
        "name": cfg.name,
        "target": cfg.target,
        "created": datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"),
        "config": cfg.as_json(),
        "since_ts": since_ts,
        "sources": [audit_source, *base_sources],
        "counts": _counts(data, candidates, scrubbed),
        "balance": balance.as_json(),
        "dropped": {reason: n for reason, n in sorted(dropped.items()) if n},
    }
    return commit_snapshot(
        Path(cfg.output_dir) / cfg.name, [e.as_json() for e in data], [e.as_json() for e in candidates], manifest
    )


def _rest(example: Example) -> tuple[str, str, str]:
    return example.label, example.source, example.signal


def read_audit(
    cfg: DatasetBuildConfig, since_ts: float | None, dropped: Counter[str]
) -> tuple[list[Example], dict[str, Any]]:
    """Labelled examples from the audit store, and the manifest's source entry (with a content hash)."""
    if "://" not in cfg.audit_store and not Path(cfg.audit_store).is_file():
        # Opening would create an empty database: a typo must not look like "no traffic".
        raise FileNotFoundError(f"no audit database at {cfg.audit_store}")
    store = open_store(cfg.audit_store)
    digest = hashlib.sha256()
    try:
        records = list(store.query(since=since_ts))
        feedback = list(store.feedback(since=since_ts))
    finally:
        store.close()
    for record in records:
        digest.update(record.to_json().encode())
        digest.update(b"\n")
    for fb in feedback:
        digest.update(json.dumps(fb.to_dict(), sort_keys=True).encode())
        digest.update(b"\n")
    known = {r.request_id for r in records}
    relevant = relevant_feedback(feedback, cfg, records)
    dropped["feedback:no_record_in_range"] += sum(1 for rid in relevant if rid not in known)
    examples = label_records(records, relevant, cfg, dropped)
    source = {
        "kind": "audit",
        "store": cfg.audit_store,
        "records": len(records),
        "feedback": len(feedback),
        "content_sha256": digest.hexdigest(),
    }
    return examples, source


def dataset_name(spec: BaseDatasetSpec) -> str:
    path = Path(spec.path)
    generic = path.stem in {"train", "test", "validation", "data"}  # e.g. <dataset>/train.jsonl
    return spec.name or (path.parent.name if generic else path.stem)


def read_base_datasets(cfg: DatasetBuildConfig, dropped: Counter[str]) -> tuple[list[Example], list[dict[str, Any]]]:
    examples: list[Example] = []
    sources: list[dict[str, Any]] = []
    for spec in cfg.base_datasets:
        path = Path(spec.path)
        name = dataset_name(spec)
        label_map = spec.label_map if spec.label_map is not None else cfg.label_map
        rows = list(read_jsonl(path))
        # Capping by hash order keeps the choice stable when the file grows.
        rows.sort(key=lambda r: stable_fraction(text_key(str(r.get("text", ""))), cfg.sample_salt + "|base"))
        per_label: Counter[str] = Counter()
        for row in rows:
            text, label = row.get("text"), row.get("label")
            if not isinstance(text, str) or not text.strip() or not isinstance(label, str) or label not in label_map:
                dropped[f"{name}:unmapped_or_empty"] += 1
                continue
            cap = (spec.max_per_label or {}).get(label)
            if cap is not None and per_label[label] >= cap:
                dropped[f"{name}:over_max_per_label"] += 1
                continue
            per_label[label] += 1
            examples.append(Example(text, cfg.resolve_label(label_map[label]), name, SIGNAL_DATASET))
        sources.append(
            {"kind": "dataset", "name": name, "path": str(path), "records": len(rows), "sha256": file_sha256(path)}
        )
    return examples, sources


def balance_examples(
    examples: Sequence[Example], cfg: DatasetBuildConfig, dropped: Counter[str]
) -> tuple[list[Example], Balance]:
    """Keep `benign_ratio` negatives per positive. Negatives are taken by trust, then stable hash: reviewer
    corrections (always kept: they are what the model must learn), allowed audit traffic, base datasets."""

    def order(e: Example) -> tuple[int, float]:
        return -e.rank, stable_fraction(text_key(e.text), cfg.sample_salt)

    positives = sorted((e for e in examples if e.label == cfg.pos_label), key=order)
    negatives = sorted((e for e in examples if e.label == cfg.negative_label), key=order)
    if cfg.max_records is not None:
        cap = max(1, math.floor(cfg.max_records / (1 + cfg.benign_ratio)))
        dropped["balance:over_max_records"] += max(0, len(positives) - cap)
        positives = positives[:cap]
    wanted = round(cfg.benign_ratio * len(positives))
    corrections = sum(1 for e in negatives if e.rank >= 3)
    take = max(wanted, corrections)
    if cfg.max_records is not None:
        take = min(take, cfg.max_records - len(positives))
    dropped["balance:surplus_negative"] += max(0, len(negatives) - take)
    kept_negatives = negatives[:take]
    return positives + kept_negatives, Balance(len(positives), wanted, len(kept_negatives))


def _counts(data: Sequence[Example], candidates: Sequence[Example], scrubbed: int) -> dict[str, Any]:
    def kind(e: Example) -> str:
        return "audit" if e.source.startswith("audit:") else e.source

    return {
        "records": len(data),
        "candidates": len(candidates),
        "pii_scrubbed_texts": scrubbed,
        "by_label": dict(sorted(Counter(e.label for e in data).items())),
        "by_source": dict(sorted(Counter(kind(e) for e in data).items())),
        "by_signal": dict(sorted(Counter(e.signal for e in data).items())),
        "by_label_signal": dict(sorted(Counter(f"{e.label}/{e.signal}" for e in data).items())),
    }
