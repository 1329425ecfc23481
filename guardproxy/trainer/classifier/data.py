"""Training data: read JSONL with a label mapping, deduplicate, split by a stable hash, cut long texts into windows.

Torch-free on purpose: the serving side's windowing (`window_starts`) is reused so training windows look like
the windows the detector scores.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from guardproxy.detectors.onnx_classifier import window_starts
from guardproxy.trainer.classifier.config import CATEGORIES, ClassifierTrainConfig, DatasetSpec

_WORDS = re.compile(r"[a-z0-9']+")
_SPACES = re.compile(r"\s+")


def normalise(text: str) -> str:
    """NFKC, lower case, collapsed whitespace: the key for deduplication and splitting."""
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", text).lower()).strip()


def word_set(text: str) -> frozenset[str]:
    """The words of `normalise(text)`: what near-duplicate checks between training and evaluation texts compare."""
    return frozenset(_WORDS.findall(normalise(text)))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    """Word-set overlap in [0, 1]; two empty sets share nothing."""
    return len(a & b) / len(a | b) if a and b else 0.0


def stable_fraction(key: str, salt: str) -> float:
    """A number in [0, 1) that depends only on the key: the same record always lands in the same split."""
    digest = hashlib.sha256(f"{salt}|{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def dotted(record: dict[str, Any], path: str) -> Any:
    value: Any = record
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    label: int  # softmax: index into cfg.labels; sigmoid: 1 when any label is true
    source_label: str  # the dataset's own label (benign, jailbreak, ...)
    dataset: str
    evidence: str | None
    split: str  # "train" | "calibration" | "test" (the held-out halves: threshold choice, reported metrics)
    targets: tuple[int, ...] = ()  # sigmoid: per label 1 true, 0 false, -1 unknown (masked)


@dataclass
class DataReport:
    """What went in: file hashes, counts per dataset and split, and what was dropped and why."""

    files: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    dropped: Counter[str] = field(default_factory=Counter)

    def as_json(self) -> dict[str, Any]:
        return {"files": self.files, "counts": self.counts, "dropped": dict(self.dropped)}


def _dataset_name(spec: DatasetSpec) -> str:
    path = Path(spec.path)
    generic = path.stem in {"train", "test", "validation", "data"}  # e.g. <dataset>/train.jsonl
    return spec.name or (path.parent.name if generic else path.stem)


def load_examples(cfg: ClassifierTrainConfig) -> tuple[list[Example], DataReport]:
    """All datasets, mapped, deduplicated on normalised text (conflicting labels dropped), split by group hash."""
    report = DataReport()
    seen: dict[str, int] = {}  # normalised text -> index in `kept`
    kept: list[Example | None] = []
    for spec in cfg.datasets:
        path = Path(spec.path)
        name = _dataset_name(spec)
        label_map = spec.label_map if spec.label_map is not None else cfg.label_map
        per_label: Counter[str] = Counter()
        with path.open(encoding="utf-8") as fh:  # not str.splitlines(): texts may hold U+2028 and friends
            records = [json.loads(line) for line in fh if line.strip()]
        # Subsampling by hash order keeps the choice stable when the file grows.
        records.sort(key=lambda r: stable_fraction(normalise(str(r.get("text", ""))), cfg.split_salt + "|sample"))
        report.files.append({"name": name, "path": str(path), "sha256": file_sha256(path), "records": len(records)})
        for record in records:
            text, source_label = record.get("text"), record.get("label")
            if not isinstance(text, str) or not text.strip() or source_label not in label_map:
                report.dropped[f"{name}:unmapped_or_empty"] += 1
                continue
            cap = (spec.max_per_label or {}).get(source_label)
            if cap is not None and per_label[source_label] >= cap:
                report.dropped[f"{name}:over_max_per_label"] += 1
                continue
            key = normalise(text)
            targets = _targets(cfg, spec, label_map[source_label], record)
            if targets is None:
                report.dropped[f"{name}:no_known_category"] += 1
                continue
            target = label_map[source_label]
            label = int(1 in targets) if cfg.head == "sigmoid" else cfg.labels.index(str(target))
            replace_at: int | None = None
            if key in seen:
                prior = kept[seen[key]]
                conflict = prior is not None and (prior.label != label or not _compatible(prior.targets, targets))
                if conflict and spec.overrides:
                    replace_at = seen[key]  # a reviewer's correction wins over the base data's label
                    report.dropped[f"overridden_by_{name}"] += 1
                elif conflict:
                    kept[seen[key]] = None  # contradictory duplicates teach nothing
                    report.dropped["conflicting_duplicate"] += 2
                    continue
                else:
                    report.dropped["duplicate"] += 1
                    continue
            per_label[source_label] += 1
            group = dotted(record, spec.group_field) if spec.group_field else None
            group_key = normalise(str(group)) if group is not None else key
            evidence = dotted(record, spec.evidence_field) if spec.evidence_field else None
            split = _split(group_key, cfg)
            example = Example(
                text=text,
                label=label,
                source_label=source_label,
                dataset=name,
                evidence=evidence if isinstance(evidence, str) and evidence.strip() else None,
                split=split,
                targets=targets,
            )
            if replace_at is not None:
                kept[replace_at] = example
                continue
            seen[key] = len(kept)
            kept.append(example)
    examples = [e for e in kept if e is not None]
    for e in examples:
        counts = report.counts.setdefault(f"{e.dataset}/{e.split}", {})
        counts[e.source_label] = counts.get(e.source_label, 0) + 1
    return examples, report


def training_split(examples: list[Example], cfg: ClassifierTrainConfig) -> list[Example]:
    """The examples trained on: the train split, each record of a dataset with `repeat: n` in it n times."""
    repeats = {_dataset_name(spec): spec.repeat for spec in cfg.datasets}
    return [e for e in examples if e.split == "train" for _ in range(repeats.get(e.dataset, 1))]


def _split(group_key: str, cfg: ClassifierTrainConfig) -> str:
    if stable_fraction(group_key, cfg.split_salt) >= cfg.validation_fraction:
        return "train"
    return "calibration" if stable_fraction(group_key, cfg.split_salt + "|calibration") < 0.5 else "test"


def _targets(
    cfg: ClassifierTrainConfig, spec: DatasetSpec, target: str | list[str], record: dict[str, Any]
) -> tuple[int, ...] | None:
    """sigmoid: the per-label target vector of a record (None: it names no known category); softmax: ()."""
    if cfg.head == "softmax":
        return ()
    true = set(target) - {CATEGORIES}
    if CATEGORIES in target:
        listed = dotted(record, spec.categories_field)
        known = {c for c in listed if c in cfg.labels} if isinstance(listed, list) else set()
        if not known:
            return None
        true |= known
    return tuple(1 if name in true else -1 if name in spec.unknown_labels else 0 for name in cfg.labels)


def _compatible(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    return all(x == y or -1 in (x, y) for x, y in zip(a, b, strict=True))


@dataclass(frozen=True, slots=True)
class Window:
    ids: list[int]  # with [CLS] ... [SEP]
    label: int
    targets: tuple[int, ...] = ()


def _evenly(items: list[int], k: int) -> list[int]:
    if len(items) <= k:
        return items
    if k == 1:
        return items[:1]
    return [items[round(i * (len(items) - 1) / (k - 1))] for i in range(k)]


def training_windows(
    examples: list[Example], tokenizer: Tokenizer, cfg: ClassifierTrainConfig, cls_id: int, sep_id: int
) -> list[Window]:
    """Token windows to train on. A long positive with known evidence is trained on windows that contain the
    evidence (a window without it is not an injection); other long texts on evenly spaced windows."""
    width = cfg.max_length - 2
    encodings = tokenizer.encode_batch([e.text for e in examples], add_special_tokens=False)
    windows: list[Window] = []
    for example, enc in zip(examples, encodings, strict=True):
        ids = enc.ids
        starts = window_starts(len(ids), width, cfg.stride)
        chosen = starts
        if len(starts) > 1 and example.evidence is not None and example.label != 0:
            at = example.text.find(example.evidence)
            if at >= 0:
                first = next(i for i, (s, e) in enumerate(enc.offsets) if e > at)
                last = max(i for i, (s, e) in enumerate(enc.offsets) if s < at + len(example.evidence))
                chosen = [s for s in starts if s <= first and last < s + width] or chosen
        for s in _evenly(chosen, cfg.train_max_windows):
            windows.append(
                Window(ids=[cls_id, *ids[s : s + width], sep_id], label=example.label, targets=example.targets)
            )
    return windows
