"""Run named detectors of a policy over a dataset, at the operating point the policy gives them.

Each detector is wrapped in a `flag` step with the threshold (and timeout) of the policy step
that uses it, and run through the chain runner's own `run_step`, so "fired" means exactly what
it means in the proxy (score >= threshold; a detector that reports spans fires when a span's
score reaches the threshold). Records run concurrently up to a bound; the detectors of one
record run together, as the chain runs them. Latency is the wall time of each detect call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from guardproxy.core import Context, Stage
from guardproxy.detectors.base import Detector
from guardproxy.evaluation.data import Dataset, Record
from guardproxy.policies.chain import CompiledStep, StepResult, run_step
from guardproxy.policies.schema import Policy

DEFAULT_THRESHOLD = 0.5
DEFAULT_TIMEOUT_MS = 2000


class SetupError(ValueError):
    """The evaluation cannot start (unknown detector, request-scoped detector, ...)."""


@dataclass(frozen=True, slots=True)
class Target:
    """A detector under evaluation and its operating point."""

    name: str
    type: str
    threshold: float
    timeout_ms: int
    # Where the threshold came from: the policy step names, or empty when no step uses the detector.
    steps: tuple[str, ...]
    entities: tuple[str, ...] | None  # the entity types its config asks for, when it has that option

    @property
    def threshold_source(self) -> str:
        if not self.steps:
            return f"default {DEFAULT_THRESHOLD} (no policy step uses this detector)"
        return f"lowest threshold of policy step(s) {', '.join(self.steps)}"


@dataclass(frozen=True, slots=True)
class RecordResult:
    record: Record
    results: Mapping[str, StepResult]  # by detector name, in the order the detectors were named
    wall_ms: float  # all detectors of the record, run together


def resolve_targets(policy: Policy, names: Sequence[str]) -> list[Target]:
    """The operating point of each named detector: the lowest threshold among the steps that use it."""
    if not names:
        raise SetupError("--detector: name at least one detector")
    targets: list[Target] = []
    for name in names:
        config = policy.detectors.get(name)
        if config is None:
            raise SetupError(f"--detector: {name!r} is not in the policy's detectors: {', '.join(policy.detectors)}")
        steps = [
            (step.threshold, step.timeout_ms, step.name or f"{stage}.{i}.{step.detector}")
            for stage, chain in (("input", policy.input), ("output", policy.output))
            for i, step in enumerate(chain)
            if step.detector == name
        ]
        entities = getattr(config, "entities", None)
        threshold, timeout_ms = DEFAULT_THRESHOLD, DEFAULT_TIMEOUT_MS
        if steps:
            threshold, timeout_ms, _ = min(steps, key=lambda s: s[0])
        targets.append(
            Target(
                name=name,
                type=config.type,
                threshold=threshold,
                timeout_ms=timeout_ms,
                steps=tuple(step_name for t, _, step_name in steps if t == threshold),
                entities=tuple(str(e) for e in entities) if isinstance(entities, list) else None,
            )
        )
    if len({t.name for t in targets}) != len(targets):
        raise SetupError("--detector: a detector is named twice")
    return targets


def compile_targets(targets: Sequence[Target], detectors: Mapping[str, Detector], stage: Stage) -> list[CompiledStep]:
    steps: list[CompiledStep] = []
    for target in targets:
        detector = detectors[target.name]
        if detector.scope != "text":
            raise SetupError(
                f"--detector: {target.name!r} checks whole requests (scope {detector.scope!r}), not texts; "
                "it cannot be scored on a text dataset"
            )
        steps.append(
            CompiledStep(
                name=f"eval.{target.name}",
                stage=stage,
                detector_name=target.name,
                detector=detector,
                action="flag",
                threshold=target.threshold,
                timeout_s=target.timeout_ms / 1000.0,
                on_error="allow",
            )
        )
    return steps


async def evaluate(
    dataset: Dataset,
    steps: Sequence[CompiledStep],
    *,
    stage: Stage,
    role: str,
    concurrency: int,
    on_progress: Callable[[int], None] | None = None,
) -> list[RecordResult]:
    """Every record through every step; results in record order whatever order they finish in."""
    if concurrency < 1:
        raise SetupError("--concurrency must be at least 1")
    results: list[RecordResult | None] = [None] * len(dataset.records)
    pending = iter(dataset.records)
    done = 0

    async def one(record: Record) -> RecordResult:
        ctx = Context(request_id=f"eval-{record.index}", stage=stage, role=role)
        started = time.perf_counter()
        step_results = await asyncio.gather(*(run_step(step, record.text, ctx) for step in steps))
        wall_ms = (time.perf_counter() - started) * 1000.0
        return RecordResult(record, {s.detector_name: r for s, r in zip(steps, step_results, strict=True)}, wall_ms)

    async def worker() -> None:
        nonlocal done
        # A shared iterator is safe here: workers only take the next record between awaits.
        for record in pending:
            results[record.index] = await one(record)
            done += 1
            if on_progress is not None:
                on_progress(done)

    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(dataset.records)))))
    return [r for r in results if r is not None]
