"""Process-level settings of the proxy (everything about *what* to guard lives in the policy)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Settings:
    policy_path: Path
    watch_policy: bool = True
    watch_interval_s: float = 1.0
    # The wall clock of in-process state (rate-limit windows); tests skew it. Redis state uses the server's.
    clock: Callable[[], float] = field(default=time.time)
