"""Labeled evaluation data (JSONL) and what each detector type counts as a positive.

Two record shapes, one per file:
- label mode: `{"text": ..., "label": "injection"}` (or `"label": ["hate", "violence"]` for multi-label);
- span mode (PII): `{"text": ..., "spans": [{"start": 0, "end": 4, "entity_type": "PERSON"}, ...]}`.
Other fields are kept only for `--group-by`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from guardproxy.evaluation.metrics import LabeledSpan

Mode = Literal["label", "span"]

# Detector `type` -> the dataset labels it is meant to catch; None = it finds spans (PII), scored per entity.
# A type missing here (custom, blocklist, ...) needs --positive-labels in label mode.
DEFAULT_POSITIVE_LABELS: Mapping[str, tuple[str, ...] | None] = MappingProxyType(
    {
        "injection_heuristic": ("injection", "jailbreak"),
        "injection_classifier": ("injection", "jailbreak"),
        "moderation_classifier": ("unsafe",),
        "llama_guard": ("unsafe",),
        "openai_moderation": ("unsafe",),
        "llm_judge": ("unsafe",),
        "pii_regex": None,
        "presidio": None,
    }
)


class DataError(ValueError):
    """The data file cannot be evaluated; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class Record:
    index: int
    text: str
    labels: tuple[str, ...]  # label mode: the gold labels (usually one); span mode: empty
    spans: tuple[LabeledSpan, ...]  # span mode: gold spans with entity names already mapped
    group: str | None = None


@dataclass(frozen=True, slots=True)
class Dataset:
    mode: Mode
    records: tuple[Record, ...]


def parse_entity_map(text: str | None) -> dict[str, str]:
    """`A=B,C=D` -> {"A": "B", "C": "D"}: dataset entity name -> detector entity name."""
    mapping: dict[str, str] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        source, sep, target = item.partition("=")
        if not sep or not source.strip() or not target.strip():
            raise DataError(f"--entity-map: {item!r} is not DATASET_NAME=DETECTOR_NAME")
        mapping[source.strip()] = target.strip()
    return mapping


def split_names(text: str | None) -> list[str]:
    return [name.strip() for name in (text or "").split(",") if name.strip()]


def load_dataset(path: Path, *, entity_map: Mapping[str, str], group_by: str | None = None) -> Dataset:
    """Read every record; the first record decides the mode, and every other must have the same shape."""
    try:
        lines = path.read_text(encoding="utf-8-sig").split("\n")  # not splitlines(): texts may hold U+2028
    except FileNotFoundError:
        raise DataError(f"{path}: data file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read: {exc}") from None
    mode: Mode | None = None
    records: list[Record] = []
    for line_number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{line_number}"
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: not JSON: {exc.msg}") from None
        if not isinstance(raw, dict) or not isinstance(raw.get("text"), str):
            raise DataError(f"{where}: a record must be an object with a string 'text'")
        record_mode: Mode = "span" if "spans" in raw else "label"
        if mode is None:
            mode = record_mode
        elif record_mode != mode:
            raise DataError(f"{where}: a {record_mode}-mode record in a {mode}-mode file (first record decides)")
        group = _group(raw, group_by, where)
        index = len(records)
        if mode == "span":
            records.append(Record(index, raw["text"], (), _spans(raw, entity_map, where), group))
        else:
            records.append(Record(index, raw["text"], _labels(raw, where), (), group))
    if mode is None:
        raise DataError(f"{path}: no records")
    return Dataset(mode, tuple(records))


def _labels(raw: dict[str, Any], where: str) -> tuple[str, ...]:
    label = raw.get("label")
    if isinstance(label, str) and label:
        return (label,)
    if isinstance(label, list) and all(isinstance(item, str) for item in label):
        return tuple(label)
    raise DataError(f"{where}: 'label' must be a non-empty string or a list of strings (or give 'spans' for PII)")


def _spans(raw: dict[str, Any], entity_map: Mapping[str, str], where: str) -> tuple[LabeledSpan, ...]:
    spans = raw["spans"]
    if not isinstance(spans, list):
        raise DataError(f"{where}: 'spans' must be a list")
    text_length = len(raw["text"])
    parsed: list[LabeledSpan] = []
    for number, span in enumerate(spans):
        start, end = (span.get("start"), span.get("end")) if isinstance(span, dict) else (None, None)
        entity = span.get("entity_type") if isinstance(span, dict) else None
        if not (isinstance(start, int) and isinstance(end, int) and isinstance(entity, str)):
            raise DataError(f"{where}: spans[{number}] needs integer 'start', 'end' and a string 'entity_type'")
        if not 0 <= start < end <= text_length:
            raise DataError(f"{where}: spans[{number}] [{start}, {end}) is outside the text (length {text_length})")
        parsed.append(LabeledSpan(start, end, entity_map.get(entity, entity)))
    return tuple(parsed)


def _group(raw: dict[str, Any], group_by: str | None, where: str) -> str | None:
    if group_by is None:
        return None
    value = raw.get(group_by)
    if value is None:
        return "(none)"
    if isinstance(value, str | int | float | bool):
        return str(value)
    raise DataError(f"{where}: --group-by field {group_by!r} must be a string or number, not {type(value).__name__}")
