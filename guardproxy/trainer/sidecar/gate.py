"""The promotion gate: the candidate must beat the current version on the configured metric by a margin, and
must not raise the false-positive rate beyond a tolerance on any evaluated set."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from guardproxy.trainer.sidecar.config import SidecarConfig


@dataclass
class GateResult:
    passed: bool
    reasons: list[str] = field(default_factory=list)  # why it failed, or why it passed without a comparison
    checks: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "reasons": self.reasons, "checks": self.checks}


def _value(metrics: Mapping[str, Any] | None, name: str) -> float | None:
    value = (metrics or {}).get(name)
    return None if value is None else float(value)


def decide(
    cfg: SidecarConfig, current: Mapping[str, Mapping[str, Any]] | None, candidate: Mapping[str, Mapping[str, Any]]
) -> GateResult:
    """`current`/`candidate`: evaluation set name -> metrics. `current` None: no version serves yet."""
    if current is None:
        missing = [s for s in cfg.gate_sets if _value(candidate.get(s), cfg.metric) is None]
        if missing:
            return GateResult(False, [f"{cfg.metric} is undefined for the candidate on {missing}"])
        return GateResult(True, ["no current version: the candidate becomes the first"])
    result = GateResult(True)
    for name in cfg.gate_sets:
        before, after = _value(current.get(name), cfg.metric), _value(candidate.get(name), cfg.metric)
        check: dict[str, Any] = {
            "check": f"{cfg.metric} on {name}",
            "current": before,
            "candidate": after,
            "required_delta": cfg.min_improvement,
        }
        if before is None or after is None:
            check |= {"passed": False, "delta": None}
            result.reasons.append(f"{cfg.metric} on {name} is undefined (no positives, or an empty set)")
        else:
            delta = after - before
            check |= {"passed": delta >= cfg.min_improvement, "delta": round(delta, 6)}
            if not check["passed"]:
                result.reasons.append(
                    f"{cfg.metric} on {name}: {before:.4f} -> {after:.4f} ({delta:+.4f}), "
                    f"needs at least {cfg.min_improvement:+.4f}"
                )
        result.checks.append(check)
    for name, metrics in candidate.items():
        before, after = _value(current.get(name), "fpr"), _value(metrics, "fpr")
        if before is None or after is None:
            continue  # no negatives in this set: nothing to compare
        delta = after - before
        ok = delta <= cfg.max_fpr_increase
        result.checks.append(
            {
                "check": f"fpr on {name}",
                "current": before,
                "candidate": after,
                "delta": round(delta, 6),
                "allowed_increase": cfg.max_fpr_increase,
                "passed": ok,
            }
        )
        if not ok:
            result.reasons.append(
                f"fpr on {name}: {before:.4f} -> {after:.4f} ({delta:+.4f}), tolerance {cfg.max_fpr_increase:+.4f}"
            )
    result.passed = all(c["passed"] for c in result.checks)
    return result
