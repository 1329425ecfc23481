"""`ModelCard`: what the trainer hands the runtime with a model, as one typed value both sides share.

The card is `model_card.json` in a version directory (`models/<name>/vN/`). The trainer writes it
(`guardproxy.trainer.classifier`), the ONNX classifier detector serves from it, the sidecar and the
registry read it. The fields any of them reads are typed here; everything else the trainer records
(evaluation details, provenance, data, limitations, ...) is kept as it is in `extra`, so a card read and
written again is the same JSON (keys in the file's order) and a newer trainer can add fields freely.

Lives in `detectors/` because the runtime serves from it and the trainer may import the detectors,
never the other way round (and never `guardproxy.proxy`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from guardproxy.core import JSON
from guardproxy.detectors.model_files import CARD_FILE

Head = Literal["softmax", "sigmoid"]
_HEADS: tuple[Head, ...] = ("softmax", "sigmoid")


class ModelCardInvalid(ValueError):
    """A model card that is not JSON, or whose typed fields have the wrong shape."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ServingSpec:
    """How to run the exported classifier: output head, windowing and the files of the version directory."""

    head: Head
    max_length: int
    stride: int
    cls_token_id: int
    sep_token_id: int
    onnx_file: str = "model.onnx"
    tokenizer_file: str = "tokenizer.json"
    extra: Mapping[str, Any] = field(default_factory=dict)  # e.g. quantization facts: recorded, not read

    def to_dict(self) -> JSON:
        return {
            "head": self.head,
            "max_length": self.max_length,
            "stride": self.stride,
            "cls_token_id": self.cls_token_id,
            "sep_token_id": self.sep_token_id,
            "onnx_file": self.onnx_file,
            "tokenizer_file": self.tokenizer_file,
            **self.extra,
        }

    @classmethod
    def from_dict(cls, data: Any) -> ServingSpec:
        if not isinstance(data, dict):
            raise ModelCardInvalid(f"'serving' must be an object, got {type(data).__name__}")
        head = data.get("head")
        if head not in _HEADS:
            raise ModelCardInvalid(f"serving.head must be one of {', '.join(_HEADS)}, got {head!r}")
        known = {"head", "max_length", "stride", "cls_token_id", "sep_token_id", "onnx_file", "tokenizer_file"}
        return cls(
            head=cast(Head, head),
            max_length=_int(data, "max_length", "serving."),
            stride=_int(data, "stride", "serving."),
            cls_token_id=_int(data, "cls_token_id", "serving."),
            sep_token_id=_int(data, "sep_token_id", "serving."),
            onnx_file=_str(data.get("onnx_file", "model.onnx"), "serving.onnx_file"),
            tokenizer_file=_str(data.get("tokenizer_file", "tokenizer.json"), "serving.tokenizer_file"),
            extra={k: v for k, v in data.items() if k not in known},
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelCard:
    """One model version's card. `serving` is None for a card of another kind of model (the spaCy
    `pii-ner` card): the registry lists it, the ONNX classifier refuses it."""

    labels: tuple[str, ...] = ()
    serving: ServingSpec | None = None
    name: str | None = None
    version: str | None = None
    created: str | None = None  # ISO-8601
    positive_labels: tuple[str, ...] = ()  # softmax head: the classes that count as a finding
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # a detector per group of labels
    threshold: float | None = None  # softmax head: the operating point (raw probability)
    thresholds: Mapping[str, float] = field(default_factory=dict)  # sigmoid head: one per label
    evaluation: JSON = field(default_factory=dict)
    training: JSON = field(default_factory=dict)
    extra: JSON = field(default_factory=dict)  # every other field, as written
    # The file's key order, so that a card read and dumped again diffs only where it changed.
    key_order: tuple[str, ...] = field(default=(), compare=False, repr=False)

    @property
    def head(self) -> Head | None:
        return None if self.serving is None else self.serving.head

    def to_dict(self) -> JSON:
        typed: JSON = {
            "name": self.name,
            "version": self.version,
            "created": self.created,
            "labels": list(self.labels),
            "positive_labels": list(self.positive_labels),
            "groups": {group: list(members) for group, members in self.groups.items()},
            "serving": None if self.serving is None else self.serving.to_dict(),
            "threshold": self.threshold,
            "thresholds": dict(self.thresholds),
            "evaluation": self.evaluation,
            "training": self.training,
        }
        # A typed field the file did not have and that is unset stays out, as the trainer never wrote it.
        present = {k: v for k, v in typed.items() if k in self.key_order or v not in (None, [], {})}
        merged = {**present, **self.extra}
        ordered = {k: merged[k] for k in self.key_order if k in merged}
        return ordered | {k: v for k, v in merged.items() if k not in ordered}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_dict(cls, data: Any) -> ModelCard:
        if not isinstance(data, dict):
            raise ModelCardInvalid(f"a model card must be a JSON object, got {type(data).__name__}")
        typed = set(cls.__dataclass_fields__) - {"extra", "key_order"}
        groups = data.get("groups") or {}
        if not isinstance(groups, dict):
            raise ModelCardInvalid("'groups' must be an object of label lists")
        thresholds = data.get("thresholds") or {}
        if not isinstance(thresholds, dict) or not all(_is_number(v) for v in thresholds.values()):
            raise ModelCardInvalid("'thresholds' must be an object of numbers")
        threshold = data.get("threshold")
        if threshold is not None and not _is_number(threshold):
            raise ModelCardInvalid(f"'threshold' must be a number, got {threshold!r}")
        return cls(
            labels=_labels(data.get("labels", []), "labels"),
            serving=None if data.get("serving") is None else ServingSpec.from_dict(data["serving"]),
            name=_opt_str(data.get("name"), "name"),
            version=_opt_str(data.get("version"), "version"),
            created=_opt_str(data.get("created"), "created"),
            positive_labels=_labels(data.get("positive_labels", []), "positive_labels"),
            groups={str(group): _labels(members, f"groups.{group}") for group, members in groups.items()},
            # Numbers kept as written (an int stays an int): a dumped card is byte-for-byte the one read.
            threshold=threshold,
            thresholds=dict(thresholds),
            evaluation=_object(data.get("evaluation"), "evaluation"),
            training=_object(data.get("training"), "training"),
            extra={k: v for k, v in data.items() if k not in typed},
            key_order=tuple(data),
        )

    @classmethod
    def load(cls, path: Path) -> ModelCard:
        """The card of a version directory (or the card file itself)."""
        file = path / CARD_FILE if path.is_dir() else path
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ModelCardInvalid(f"{file}: not JSON: {exc}") from None
        try:
            return cls.from_dict(data)
        except ModelCardInvalid as exc:
            raise ModelCardInvalid(f"{file}: {exc}") from None

    def dump(self, directory: Path) -> Path:
        """Write `model_card.json` into a version directory; returns the file."""
        file = directory / CARD_FILE
        file.write_text(self.to_json(), encoding="utf-8")
        return file


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _labels(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ModelCardInvalid(f"'{where}' must be a list of strings, got {value!r}")
    return tuple(value)


def _object(value: Any, where: str) -> JSON:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ModelCardInvalid(f"'{where}' must be an object, got {type(value).__name__}")
    return value


def _opt_str(value: Any, where: str) -> str | None:
    return None if value is None else _str(value, where)


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ModelCardInvalid(f"'{where}' must be a string, got {value!r}")
    return value


def _int(data: Mapping[str, Any], key: str, prefix: str) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ModelCardInvalid(f"'{prefix}{key}' must be an integer, got {value!r}")
    return value
