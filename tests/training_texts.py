"""Every text of the training data this repository ships (configs/train/data), whatever the row format."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

TRAINING_DATA = Path(__file__).resolve().parents[1] / "configs" / "train" / "data"
TEXT_FIELDS = ("text", "user", "answer")  # classifier rows: `text`; guard-model rows: `user` and `answer`


def training_texts(folder: Path = TRAINING_DATA) -> Iterator[str]:
    for path in sorted(folder.rglob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            found = [row[k] for k in TEXT_FIELDS if isinstance(row.get(k), str)]
            if not found:
                raise ValueError(f"{path}: a row with none of {TEXT_FIELDS}: {line[:120]}")
            yield from found
