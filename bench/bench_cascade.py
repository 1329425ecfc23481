"""What a cascade gains and costs: the fast moderation classifier alone, a slow judge alone, and the classifier
escalating its uncertain band to the judge (a step's `escalate:`), on labelled moderation sets.

    python bench/bench_cascade.py                                   # judge: the shipped models/llama-guard-smol
    python bench/bench_cascade.py --judge-model PATH.gguf           # {type: llama_guard, model_path: PATH}
    python bench/bench_cascade.py --judge-policy-yaml FILE --judge NAME   # any detector of a policy file
    python bench/bench_cascade.py --judge-standin                   # no judge model: the deterministic stand-in
    python bench/bench_cascade.py --judge-standin --band 0.2 0.8 --band 0.05 0.95

Every text goes, one at a time, through three policy steps run by the chain runner itself (`run_step`, so
"fires" and the band rule are the proxy's): the primary's step (the shipped policy's `moderation` detector at
its step's threshold), the judge's (at `--judge-threshold`), and per `--band` the primary's step with
`escalate: {detector: judge, band: [low, high]}`. Per configuration: precision, recall, F1 and the false-positive
rate over all sets; recall per unsafe set and over-refusal (FPR) per safe set; the share of texts escalated;
latency per text (the step's wall time, primary + judge when escalated) p50/p99/mean with
`guardproxy.evaluation.metrics.percentile`; detector errors. For each band it also gives the share of the
primary's own mistakes that fall inside the band: the most a perfect judge could fix.

Sets (default; provenance in bench/data/ood/README.md and bench/data/first_run/README.md): the first-run
prompts and answers (safe), harmless senses of violent/sexual words (safe), benign injection-trigger prompts
(safe), casual harmful requests (unsafe) and harmful answers (unsafe, output stage): all cross-source for both
models (the guard model's held-out split is not among them: it comes from the guard's own training sources, and
bench/guard_vs_classifier.py reports it apart). `--data PATH[:stage]` adds or, with `--only-data`, replaces them.

The stand-in (`--judge-standin`) is for developing without the judge model: it answers from the sets' gold
labels after a fixed delay (`--standin-latency-ms`), so its own F1 is 1 by construction and the cascade's
figures with it are the band's ceiling. The share escalated and the primary's part of the latency are real
either way. Results: bench/results/cascade.json (with the stand-in: cascade_standin.json), the command inside.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import TypeAdapter, ValidationError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from guardproxy.backends.base import Backend  # noqa: E402
from guardproxy.core import Context, Detection, Stage  # noqa: E402
from guardproxy.detectors.base import Detector, DetectorDeps  # noqa: E402
from guardproxy.detectors.configs import DetectorConfig  # noqa: E402
from guardproxy.detectors.registry import build_detector  # noqa: E402
from guardproxy.errors import GuardproxyError  # noqa: E402
from guardproxy.evaluation.metrics import Confusion, confusion, percentile  # noqa: E402
from guardproxy.policies import load_policy  # noqa: E402
from guardproxy.policies.chain import CompiledEscalation, CompiledStep, StepResult, in_band, run_step  # noqa: E402
from guardproxy.policies.schema import band_problem  # noqa: E402
from guardproxy.proxy.runtime import build_backends  # noqa: E402

RESULTS = ROOT / "bench" / "results"
OOD = ROOT / "bench" / "data" / "ood"
FIRST_RUN = ROOT / "bench" / "data" / "first_run" / "benign_suite.jsonl"
SHIPPED_JUDGE = ROOT / "models" / "llama-guard-smol"  # the registry: its CURRENT (or newest) version
UNSAFE, SAFE = "unsafe", "safe"
POSITIVE_LABELS = frozenset({"unsafe"})
NEGATIVE_LABELS = frozenset({"safe", "benign"})
TIMEOUT_S = 120.0  # a bench measures the judge's latency; it must not turn slow answers into errors


@dataclass(frozen=True, slots=True)
class Example:
    set: str
    text: str
    unsafe: bool
    stage: Stage


@dataclass(frozen=True, slots=True)
class Source:
    name: str
    path: Path
    stage: Stage = "input"
    field: str = "text"
    label: str | None = None  # the whole file's label; None: each record's `label`


DEFAULT_SOURCES = (
    Source("first_run_prompts", FIRST_RUN, label=SAFE),
    Source("first_run_answers", FIRST_RUN, "output", "answer", SAFE),
    Source("harmless_sense", OOD / "harmless_sense.jsonl", label=SAFE),
    Source("trigger_word_benign", OOD / "trigger_word_benign.jsonl", label=SAFE),
    Source("unsafe_casual", OOD / "unsafe_casual.jsonl", label=UNSAFE),
    Source("harmful_answers", OOD / "harmful_answers.jsonl", "output", label=UNSAFE),
)


class BenchError(Exception):
    """The bench cannot run as asked; the message says why and what to pass."""


def read_source(source: Source) -> list[Example]:
    examples = []
    for number, line in enumerate(source.path.read_text(encoding="utf-8").split("\n"), 1):
        if not line.strip():
            continue
        where = f"{source.path}:{number}"
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BenchError(f"{where}: not JSON: {exc.msg}") from None
        text = raw.get(source.field) if isinstance(raw, dict) else None
        if not isinstance(text, str) or not text:
            raise BenchError(f"{where}: no string {source.field!r}")
        label = source.label or raw.get("label")
        if label not in POSITIVE_LABELS | NEGATIVE_LABELS:
            raise BenchError(f"{where}: 'label' must be one of {sorted(POSITIVE_LABELS | NEGATIVE_LABELS)}")
        examples.append(Example(source.name, text, label in POSITIVE_LABELS, source.stage))
    return examples


def parse_data(spec: str) -> Source:
    path, _, stage = spec.partition(":")
    if stage not in ("", "input", "output"):
        raise BenchError(f"--data {spec}: the stage after ':' must be input or output")
    return Source(Path(path).stem, Path(path), "output" if stage == "output" else "input")


# --- the judges -------------------------------------------------------------------------------------------


@dataclass
class StandIn:
    """Answers from the gold labels after a fixed delay: deterministic, perfect by construction (see the module)."""

    gold: dict[str, bool]
    delay_s: float
    name: str = "standin"
    scope: Literal["text", "request"] = "text"

    async def detect(self, text: str, ctx: Context) -> Detection:
        await asyncio.sleep(self.delay_s)
        unsafe = self.gold.get(text, False)
        return Detection(score=1.0 if unsafe else 0.0, labels=("unsafe",) if unsafe else ())

    async def aclose(self) -> None:
        return None


@dataclass
class Judge:
    detector: Detector
    description: str
    threshold: float
    backends: dict[str, Backend] = field(default_factory=dict)

    async def aclose(self) -> None:
        await self.detector.aclose()
        for backend in self.backends.values():
            await backend.aclose()


def build_judge(args: argparse.Namespace, examples: Sequence[Example]) -> Judge:
    if args.judge_standin:
        gold = {e.text: e.unsafe for e in examples}
        description = f"stand-in: the gold labels after {args.standin_latency_ms} ms (not a judge's figures)"
        return Judge(StandIn(gold, args.standin_latency_ms / 1000.0), description, args.judge_threshold)
    if args.judge_policy_yaml is not None:
        policy = load_policy(args.judge_policy_yaml)
        if args.judge not in policy.detectors:
            raise BenchError(f"--judge: {args.judge!r} is not in {args.judge_policy_yaml}: {sorted(policy.detectors)}")
        backends = build_backends(policy)
        detector = build_detector(args.judge, policy.detectors[args.judge], DetectorDeps(backends=backends))
        return Judge(detector, f"detectors.{args.judge} of {args.judge_policy_yaml}", args.judge_threshold, backends)
    model = Path(args.judge_model)
    if not model.exists():
        raise BenchError(
            f"judge model {model} not found; pass --judge-model PATH, --judge-policy-yaml FILE --judge NAME, "
            "or --judge-standin"
        )
    raw = {"type": "llama_guard", "model_path": str(model)}
    try:
        config = TypeAdapter(DetectorConfig).validate_python(raw)
    except ValidationError as exc:
        raise BenchError(f"{raw} is not a detector this guardproxy can build: {exc}") from None
    detector = build_detector("judge", config, DetectorDeps())
    return Judge(detector, f"{{type: llama_guard, model_path: {model}}}", args.judge_threshold)


# --- running ----------------------------------------------------------------------------------------------


def flag_step(name: str, detector_name: str, detector: Detector, threshold: float) -> CompiledStep:
    return CompiledStep(
        name=name,
        stage="input",
        detector_name=detector_name,
        detector=detector,
        action="flag",
        threshold=threshold,
        timeout_s=TIMEOUT_S,
        on_error="allow",
    )


def cascade_step(primary: CompiledStep, judge: CompiledStep, low: float, high: float) -> CompiledStep:
    escalation = CompiledEscalation(judge.detector_name, judge.detector, low, high, judge.threshold, TIMEOUT_S)
    return CompiledStep(
        name=f"cascade[{low}, {high})",
        stage="input",
        detector_name=primary.detector_name,
        detector=primary.detector,
        action="flag",
        threshold=primary.threshold,
        timeout_s=TIMEOUT_S,
        on_error="allow",
        escalation=escalation,
    )


@dataclass(frozen=True, slots=True)
class Configuration:
    """What to run: the primary, the judge, or the primary escalating `band` to the judge."""

    name: str
    primary: bool
    judge: bool
    band: tuple[float, float] | None = None


async def run(
    configuration: Configuration, examples: Sequence[Example], make_primary: Any, make_judge: Any
) -> list[StepResult]:
    """One configuration over every text, one at a time, with detectors of its own: the classifier keeps a cache
    of recent texts, which another configuration's pass over the same texts must not warm."""
    primary: CompiledStep | None = make_primary() if configuration.primary else None
    judge: Judge | None = make_judge() if configuration.judge else None
    try:
        judged = None if judge is None else flag_step("judge", "judge", judge.detector, judge.threshold)
        if primary is not None and judged is not None and configuration.band is not None:
            step = cascade_step(primary, judged, *configuration.band)
        else:
            found = primary or judged
            assert found is not None
            step = found
        # Warm-up: the first call of a model detector loads and compiles; it is not a text's latency.
        for warm in (primary, judged):
            if warm is not None:
                await run_step(warm, "warm-up", Context("warm-up", "input"))
        results = []
        started = time.monotonic()
        for i, example in enumerate(examples):
            role = "user" if example.stage == "input" else "assistant"
            ctx = Context(request_id=f"cascade-{i}", stage=example.stage, role=role)
            results.append(await run_step(step, example.text, ctx))
            if (i + 1) % 100 == 0:
                elapsed = time.monotonic() - started
                print(f"{configuration.name}: {i + 1}/{len(examples)} texts ({elapsed:.0f} s)", file=sys.stderr)
        return results
    finally:
        if primary is not None:
            await primary.detector.aclose()
        if judge is not None:
            await judge.aclose()


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def summarize(results: Sequence[StepResult], examples: Sequence[Example]) -> dict[str, Any]:
    fired = [r.fired for r in results]
    truth = [e.unsafe for e in examples]
    total = confusion(fired, truth)
    latencies = [r.latency_ms for r in results]
    per_set: dict[str, Any] = {}
    for name in dict.fromkeys(e.set for e in examples):
        rows = [i for i, e in enumerate(examples) if e.set == name]
        counts = confusion([fired[i] for i in rows], [truth[i] for i in rows])
        per_set[name] = (
            {"recall": _round(counts.recall), "n": len(rows)}
            if counts.positives
            else {"fpr": _round(counts.fpr), "n": len(rows)}
        ) | {
            # The first-run sets are ordinary traffic: what share of it pays for the judge.
            "escalated": _round(sum(results[i].escalation is not None for i in rows) / len(rows))
        }
    return {
        **_figures(total),
        "escalated": _round(sum(r.escalation is not None for r in results) / len(results)),
        "errors": sum(not r.ran for r in results),
        "latency_ms": {
            "p50": _round(percentile(latencies, 0.5), 2),
            "p99": _round(percentile(latencies, 0.99), 2),
            "mean": round(sum(latencies) / len(latencies), 2),
        },
        "sets": per_set,
    }


def _figures(c: Confusion) -> dict[str, Any]:
    return {
        "f1": _round(c.f1),
        "precision": _round(c.precision),
        "recall": _round(c.recall),
        "fpr": _round(c.fpr),
        "confusion": {"tp": c.tp, "fp": c.fp, "fn": c.fn, "tn": c.tn},
    }


def errors_in_band(primary: Sequence[StepResult], examples: Sequence[Example], low: float, high: float) -> float | None:
    """Of the primary's mistakes, the share whose score is in [low, high): what the judge is given a chance at."""
    wrong = [r for r, e in zip(primary, examples, strict=True) if r.ran and r.fired != e.unsafe]
    if not wrong:
        return None
    return _round(sum(r.score is not None and in_band(r.score, low, high) for r in wrong) / len(wrong))


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    sources = [] if args.only_data else list(DEFAULT_SOURCES)
    sources += [parse_data(spec) for spec in args.data]
    if not sources:
        raise BenchError("--only-data without --data: no sets to run")
    examples = [e for s in sources for e in read_source(s)[: args.limit or None]]
    for low, high in args.band:
        problem = band_problem(low, high)
        if problem is not None:
            raise BenchError(f"--band {low} {high}: {problem}")

    policy = load_policy(args.policy)
    if args.primary not in policy.detectors:
        raise BenchError(f"--primary: {args.primary!r} is not in {args.policy}: {sorted(policy.detectors)}")
    thresholds = [s.threshold for s in (*policy.input, *policy.output) if s.detector == args.primary]
    threshold = min(thresholds, default=0.5)

    def make_primary() -> CompiledStep:
        detector = build_detector(args.primary, policy.detectors[args.primary], DetectorDeps())
        return flag_step("primary", args.primary, detector, threshold)

    def make_judge() -> Judge:
        return build_judge(args, examples)

    configurations = [Configuration("primary alone", primary=True, judge=False)]
    if not args.skip_judge_alone:
        configurations.append(Configuration("judge alone", primary=False, judge=True))
    for low, high in args.band:
        configurations.append(Configuration(f"cascade [{low}, {high})", primary=True, judge=True, band=(low, high)))
    description = make_judge()  # fails early, before any pass, when the judge cannot be built
    await description.aclose()
    results = {c.name: await run(c, examples, make_primary, make_judge) for c in configurations}
    summary = {name: summarize(rows, examples) for name, rows in results.items()}
    for low, high in args.band:
        summary[f"cascade [{low}, {high})"]["primary_errors_in_band"] = errors_in_band(
            results["primary alone"], examples, low, high
        )
    return {
        "command": "python bench/bench_cascade.py " + " ".join(sys.argv[1:]),
        "primary": f"detectors.{args.primary} of {args.policy} at threshold {threshold}",
        "judge": f"{description.description} at threshold {args.judge_threshold}",
        "texts": len(examples),
        "unsafe": sum(e.unsafe for e in examples),
        "sets": {s.name: str(s.path.relative_to(ROOT) if s.path.is_relative_to(ROOT) else s.path) for s in sources},
        "method": "each text through each configuration's policy step with the chain runner's run_step, one at a "
        "time; latency = the step's wall time per text (primary + judge when escalated); percentiles are "
        "nearest-rank (guardproxy.evaluation.metrics.percentile)",
        "configurations": summary,
    }


def print_table(report: dict[str, Any]) -> None:
    print(f"{report['texts']} texts ({report['unsafe']} unsafe); judge: {report['judge']}")
    head = f"{'configuration':<24} {'F1':>6} {'recall':>7} {'FPR':>6} {'escal.':>7} {'p50 ms':>8} {'p99 ms':>8}"
    print(head)
    for name, row in report["configurations"].items():
        latency = row["latency_ms"]
        cells = [row["f1"], row["recall"], row["fpr"], row["escalated"]]
        shown = " ".join(f"{'-' if v is None else f'{v:.3f}':>{w}}" for v, w in zip(cells, (6, 7, 6, 7), strict=True))
        print(f"{name:<24} {shown} {latency['p50']:>8.1f} {latency['p99']:>8.1f}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    judge = p.add_mutually_exclusive_group()
    judge.add_argument("--judge-model", default=str(SHIPPED_JUDGE), help="a Llama Guard GGUF (default: %(default)s)")
    judge.add_argument("--judge-policy-yaml", type=Path, help="a policy file holding the judge detector (--judge)")
    judge.add_argument("--judge-standin", action="store_true", help="the deterministic stand-in (gold labels)")
    p.add_argument("--judge", default="llama_guard", help="the judge's detector name in --judge-policy-yaml")
    p.add_argument("--judge-threshold", type=float, default=0.5, help="escalate.threshold (default: %(default)s)")
    p.add_argument("--standin-latency-ms", type=float, default=200.0, help="the stand-in's delay per text")
    p.add_argument("--policy", type=Path, default=ROOT / "policy.yaml", help="holds the primary (default: shipped)")
    p.add_argument("--primary", default="moderation", help="the primary detector's name in --policy")
    p.add_argument(
        "--band", nargs=2, type=float, action="append", metavar=("LOW", "HIGH"), help="escalation band (repeatable)"
    )
    p.add_argument("--data", action="append", default=[], help="PATH[:input|output] of more JSONL (text, label)")
    p.add_argument("--only-data", action="store_true", help="run only the --data sets")
    p.add_argument("--skip-judge-alone", action="store_true", help="do not run the judge on every text")
    p.add_argument("--limit", type=int, default=0, help="the first N texts of each set (a quick look)")
    p.add_argument("--out", type=Path, help="default: bench/results/cascade.json (stand-in: cascade_standin.json)")
    args = p.parse_args(argv)
    args.band = [tuple(b) for b in args.band] if args.band else [(0.2, 0.8)]
    if args.out is None:
        args.out = RESULTS / ("cascade_standin.json" if args.judge_standin else "cascade.json")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        report = asyncio.run(bench(args))
    except (BenchError, GuardproxyError) as exc:
        print(f"bench_cascade: {exc}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
