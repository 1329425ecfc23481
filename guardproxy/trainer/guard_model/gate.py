"""The guard model's promotion gate: a candidate must not lower precision or F1 on the gate split.

Not the sidecar's gate (`trainer/sidecar/gate.py`), which asks one metric to improve and bounds the
false-positive rate: a guard fine-tuned on reviewer feedback is meant to catch what it missed, and the way that
goes wrong is a model that calls everything unsafe (precision falls to the share of unsafe answers while
recall rises to 1, so F1 alone can even improve). Precision is the check that catches it; F1 keeps a
candidate that buys precision with recall out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from guardproxy.evaluation.metrics import Confusion

GATED_METRICS: tuple[str, ...] = ("precision", "f1")


@dataclass(frozen=True, slots=True)
class GateCheck:
    metric: str
    current: float | None
    candidate: float | None
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "current": self.current, "candidate": self.candidate, "passed": self.passed}


@dataclass(frozen=True, slots=True)
class GateDecision:
    passed: bool
    checks: tuple[GateCheck, ...]
    reasons: tuple[str, ...]  # why it failed; empty when it passed

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "checks": [c.to_dict() for c in self.checks], "reasons": list(self.reasons)}


def gate(current: Confusion, candidate: Confusion, *, tolerance: float = 0.0) -> GateDecision:
    """Pass when neither precision nor F1 of `candidate` is below `current`'s minus `tolerance` (>= 0).

    An undefined candidate figure (it flags nothing: no precision) fails; an undefined current one (the current
    model flags nothing) is no bar.
    """
    if tolerance < 0:
        raise ValueError("tolerance: must be >= 0")
    checks: list[GateCheck] = []
    reasons: list[str] = []
    pairs = {"precision": (current.precision, candidate.precision), "f1": (current.f1, candidate.f1)}
    for metric in GATED_METRICS:
        before, after = pairs[metric]
        if after is None:
            ok = False
            reasons.append(f"{metric}: undefined for the candidate (it flags nothing)")
        else:
            ok = before is None or after >= before - tolerance
            if not ok:
                reasons.append(f"{metric}: {before:.4f} -> {after:.4f}, may fall at most {tolerance:.4f}")
        checks.append(GateCheck(metric, before, after, ok))
    return GateDecision(not reasons, tuple(checks), tuple(reasons))
