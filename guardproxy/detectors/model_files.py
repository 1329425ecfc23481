"""Where shipped model directories live: `models/<name>/vN/` with a `model_card.json` each.

A registry directory holds versions `v1/`, `v2/`, ... and optionally a `CURRENT` file naming the promoted
one (written by `guardproxy.trainer.registry`). Without `CURRENT`, the newest version serves.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from guardproxy.detectors.base import ServesModelFiles
from guardproxy.errors import DetectorFailed

MODELS_DIR_ENV = "GUARDPROXY_MODELS_DIR"
CURRENT_FILE = "CURRENT"
CARD_FILE = "model_card.json"
VERSION_NAME = re.compile(r"^v(\d+)$")


@dataclass(frozen=True, slots=True)
class ModelDir:
    """A model directory a running detector depends on.

    `source` is what the configuration names (a registry, or one version); `loaded` is the version directory
    it resolved to when the detector was built. When `source` resolves elsewhere, the detector is stale.
    """

    source: Path
    loaded: Path


def default_models_root() -> Path:
    """`$GUARDPROXY_MODELS_DIR`, else `models/` of the source tree this package lives in."""
    env = os.environ.get(MODELS_DIR_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "models"


def version_number(name: str) -> int | None:
    """`v12` -> 12; anything else -> None."""
    m = VERSION_NAME.match(name)
    return int(m.group(1)) if m else None


def version_dirs(registry: Path) -> list[Path]:
    """The complete versions (a `vN/` with a model card) of a registry, oldest first."""
    if not registry.is_dir():
        return []
    found = [
        (n, p) for p in registry.iterdir() if (n := version_number(p.name)) is not None and (p / CARD_FILE).is_file()
    ]
    return [p for _, p in sorted(found)]


def read_pointer(registry: Path) -> str | None:
    """The version named by the registry's `CURRENT` file, or None when there is none."""
    try:
        text = (registry / CURRENT_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return text.strip()


def resolve_model_dir(path: str | Path) -> Path:
    """A directory with model_card.json; or, for a registry, the version `CURRENT` names, else the newest `vN`.

    A `CURRENT` that names a missing or incomplete version is an error, not a silent fall-back to the
    newest: after a rollback, serving the version that was rolled back from would be the worst outcome.
    """
    path = Path(path)
    if (path / CARD_FILE).is_file():
        return path
    pointer = read_pointer(path)
    if pointer is not None:
        chosen = path / pointer
        if version_number(pointer) is None or not (chosen / CARD_FILE).is_file():
            raise DetectorFailed(f"{path / CURRENT_FILE} names {pointer!r}, which is not a version with a model card")
        return chosen
    versions = version_dirs(path)
    if not versions:
        raise DetectorFailed(f"no model found in {path} (expected model_card.json or vN/ subdirectories)")
    return versions[-1]


def detector_model_dirs(detectors: Iterable[object]) -> tuple[ModelDir, ...]:
    """What the given detectors loaded, from those that tell (`ServesModelFiles`)."""
    found: list[ModelDir] = []
    for detector in detectors:
        if isinstance(detector, ServesModelFiles):
            found.extend(detector.model_dirs())
    return tuple(dict.fromkeys(found))  # detectors sharing one model report it once
