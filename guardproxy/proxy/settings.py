"""Process-level settings of the proxy (everything about *what* to guard lives in the policy)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Settings:
    policy_path: Path
    watch_policy: bool = True
    watch_interval_s: float = 1.0
