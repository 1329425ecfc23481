"""Guard-model versions in a registry directory (`<registry>/vN/model.gguf` + `model_card.json`).

The layout `{type: llama_guard, model_path: <registry>}` serves from, and `guardproxy.trainer.registry`
promotes and rolls back (it moves `CURRENT`; this only adds versions, never touches existing ones).
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

from guardproxy.core import JSON
from guardproxy.detectors.model_card import ModelCard
from guardproxy.detectors.model_files import version_number

GGUF_FILE = "model.gguf"


def add_version(registry: Path, gguf: Path, *, name: str, training: JSON, evaluation: JSON | None = None) -> Path:
    """Copy `gguf` into the next free `vN` of `registry` with its card; returns the version directory.

    Written in a staging directory and renamed into place, so a proxy watching the registry never sees a
    version without its model file.
    """
    if not gguf.is_file():
        raise FileNotFoundError(f"{gguf}: no such GGUF file")
    registry.mkdir(parents=True, exist_ok=True)
    taken = [n for p in registry.iterdir() if (n := version_number(p.name)) is not None]
    version = f"v{max(taken, default=0) + 1}"
    staging = registry / f".staging-{version}-{os.getpid()}"
    staging.mkdir()
    try:
        shutil.copyfile(gguf, staging / GGUF_FILE)
        created = datetime.now(UTC).isoformat(timespec="seconds")
        ModelCard(name=name, version=version, created=created, training=training, evaluation=evaluation or {}).dump(
            staging
        )
        staging.rename(registry / version)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return registry / version
