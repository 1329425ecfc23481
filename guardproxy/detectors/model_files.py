"""Where shipped model directories live: `models/<name>/vN/` with a `model_card.json` each."""

from __future__ import annotations

import os
import re
from pathlib import Path

from guardproxy.errors import DetectorFailed

MODELS_DIR_ENV = "GUARDPROXY_MODELS_DIR"
_VERSION_DIR = re.compile(r"^v(\d+)$")


def default_models_root() -> Path:
    """`$GUARDPROXY_MODELS_DIR`, else `models/` of the source tree this package lives in."""
    env = os.environ.get(MODELS_DIR_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "models"


def resolve_model_dir(path: str | Path) -> Path:
    """A directory with model_card.json, or the newest `vN` inside a registry directory."""
    path = Path(path)
    if (path / "model_card.json").is_file():
        return path
    versions = [
        (int(m.group(1)), p)
        for p in (path.iterdir() if path.is_dir() else [])
        if (m := _VERSION_DIR.match(p.name)) and (p / "model_card.json").is_file()
    ]
    if not versions:
        raise DetectorFailed(f"no model found in {path} (expected model_card.json or vN/ subdirectories)")
    return max(versions)[1]
