"""Export a snapshot as plain JSONL or as an Argilla dataset directory for annotation teams.

Argilla target: the v2 SDK (argilla 2.8.0). `--format argilla --out DIR` writes the layout of
`rg.Dataset.to_disk`, so `rg.Dataset.from_disk(DIR, workspace=...)` creates the dataset with its settings
and records in one call; `DIR/records.json` alone can be added to an existing dataset with
`dataset.records.from_json(path)`. Each record has the text as field `text`, the snapshot's label as a
*suggestion* for the label question (annotators confirm or correct it), and source/signal as metadata.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Literal

from guardproxy.trainer.dataset.dedup import text_key
from guardproxy.trainer.dataset.signals import CANDIDATE
from guardproxy.trainer.dataset.snapshot import CANDIDATES_FILE, DATA_FILE, SnapshotInfo, read_jsonl

ExportFormat = Literal["jsonl", "argilla"]
ARGILLA_SDK_VERSION = "2.8.0"
_FIELD = "text"
_QUESTION = "label"
_METADATA = ("source_kind", "signal", "snapshot_label")


def export(info: SnapshotInfo, fmt: ExportFormat, out: Path, *, include_candidates: bool = False) -> int:
    """Write the snapshot to `out` (a file for jsonl, a new directory for argilla); returns records written."""
    rows = list(read_jsonl(info.path / DATA_FILE))
    if include_candidates and (info.path / CANDIDATES_FILE).is_file():
        rows += list(read_jsonl(info.path / CANDIDATES_FILE))
    if fmt == "jsonl":
        out.parent.mkdir(parents=True, exist_ok=True)
        if not include_candidates:
            shutil.copyfile(info.path / DATA_FILE, out)  # byte for byte: the manifest's sha256 still applies
            return len(rows)
        with out.open("w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
        return len(rows)
    return _export_argilla(info, rows, out)


def _labels(info: SnapshotInfo, rows: list[dict[str, Any]]) -> list[str]:
    config = info.manifest.get("config", {})
    positive = config.get("positive_label") or config.get("target") or "positive"
    negative = config.get("negative_label") or "negative"
    extra = sorted({str(r["label"]) for r in rows} - {positive, negative, CANDIDATE})
    # `candidate` is not an answer: a reviewer decides whether a candidate is positive or negative.
    return [positive, negative, *extra]


def argilla_settings(info: SnapshotInfo, labels: list[str]) -> dict[str, Any]:
    """`rg.Settings.serialize()` shape (what `Settings.from_json` reads)."""

    def meta(name: str) -> dict[str, Any]:
        return {
            "id": None,
            "inserted_at": None,
            "updated_at": None,
            "name": name,
            "settings": {"visible_for_annotators": True, "type": "terms", "values": None},
            "title": name,
            "visible_for_annotators": True,
            "dataset_id": None,
        }

    target = info.manifest.get("target", "the detector")
    return {
        "guidelines": (
            f"Guardproxy training snapshot {info.ref} for the `{target}` detector. The suggestion is the label "
            f"the snapshot gives the text (from the detector's decision, reviewer feedback or a base dataset); "
            f"confirm or correct it. Texts are PII-scrubbed: [EMAIL_ADDRESS] and similar are placeholders."
        ),
        "questions": [
            {
                "id": None,
                "inserted_at": None,
                "updated_at": None,
                "name": _QUESTION,
                "settings": {
                    "type": "label_selection",
                    "options": [{"text": label, "value": label} for label in labels],
                    "visible_options": None,
                },
                "title": f"Is this text {labels[0]}?",
                "description": None,
                "required": True,
                "dataset_id": None,
                "type": "label_selection",
            }
        ],
        "fields": [
            {
                "id": None,
                "inserted_at": None,
                "updated_at": None,
                "name": _FIELD,
                "settings": {"type": "text", "use_markdown": False},
                "title": "Text",
                "required": True,
                "description": None,
                "dataset_id": None,
                "type": "text",
            }
        ],
        "vectors": [],
        "metadata": [meta(name) for name in _METADATA],
        "allow_extra_metadata": True,
        "distribution": {"strategy": "overlap", "min_submitted": 1},
        "mapping": None,
    }


def argilla_record(info: SnapshotInfo, row: dict[str, Any]) -> dict[str, Any]:
    """`rg.Record.to_dict()` shape (what `Record.from_dict` and `records.from_json` read)."""
    source = str(row.get("source", ""))
    label = str(row["label"])
    suggestions: dict[str, Any] = {}
    if label != CANDIDATE:
        suggestions[_QUESTION] = {"value": label, "score": None, "agent": f"guardproxy:{info.ref}"}
    return {
        "id": text_key(str(row["text"])),  # stable across snapshots: re-importing updates, not duplicates
        "fields": {_FIELD: row["text"]},
        "metadata": {
            "source_kind": "audit" if source.startswith("audit:") else "dataset",
            "signal": str(row.get("signal", "")),
            "snapshot_label": label,
            "source": source,
        },
        "suggestions": suggestions,
        "responses": {},
        "vectors": {},
        "status": "pending",
        "_server_id": None,
    }


def _export_argilla(info: SnapshotInfo, rows: list[dict[str, Any]], out: Path) -> int:
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty (Argilla's to_disk layout needs a fresh directory)")
    (out / ".argilla").mkdir(parents=True, exist_ok=True)
    settings = argilla_settings(info, _labels(info, rows))
    dataset = {
        "id": None,
        "inserted_at": None,
        "updated_at": None,
        "name": f"guardproxy-{info.name}-{info.version}",
        "status": "draft",
        "guidelines": settings["guidelines"],
        "allow_extra_metadata": True,
        "distribution": settings["distribution"],
        "workspace_id": None,
        "last_activity_at": None,
    }
    (out / ".argilla" / "settings.json").write_text(json.dumps(settings, ensure_ascii=False, indent=1))
    (out / ".argilla" / "dataset.json").write_text(json.dumps(dataset, ensure_ascii=False, indent=1))
    records = [argilla_record(info, row) for row in rows]
    (out / "records.json").write_text(json.dumps(records, ensure_ascii=False))
    return len(records)
