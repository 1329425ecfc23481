"""Building the trainer's dataclass configs from YAML mappings, with errors that name the field."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any


def build_dataclass(cls: type[Any], data: dict[str, Any], where: str, lists: Mapping[str, type[Any]] = {}) -> Any:
    """`cls(**data)`, refusing unknown fields; `lists` names fields holding lists of nested dataclasses."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {unknown}; allowed: {sorted(known)}")
    kwargs = dict(data)
    for name, item_cls in lists.items():
        if name in kwargs:
            kwargs[name] = [build_dataclass(item_cls, d, f"{where}.{name}[{i}]") for i, d in enumerate(kwargs[name])]
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ValueError(f"{where}: {exc}") from exc
