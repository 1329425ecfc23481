"""Latency of the ONNX classifier detectors (int8 MiniLM, onnxruntime) at fixed token lengths, batch 1.

Per length (tokens including [CLS] and [SEP]; 1024 tokens = 3 overlapping windows of 512):

- `tokenize`            the tokenizer alone
- `onnxruntime`         bare `session.run` on the windows the detector would build (the floor)
- `onnxruntime_no_spin` the same with `session.intra_op.allow_spinning = 0` (idle pool threads sleep)
- `injection`           `InjectionClassifierDetector.detect_sync`: tokenise, window, run, calibrate (cache miss)
- `injection_cache_hit` the same text again: what the second detector on a text costs
- `pair_shared`         injection + moderation built on ONE SharedResources: one forward pass, the second call
                        is a cache hit ("one encoder, several heads")
- `pair_separate`       the same two detectors each with its own SharedResources: two loaded copies, two passes
- `*_async`             the pair through `detect()` under `asyncio.gather`, as the chain runs them: shared =
                        one worker thread; separate = two workers competing for the cores

Every timed call gets a text no detector has seen (distinct texts of the same length), so `injection` and the
pairs measure forward passes, not cache hits.

    python bench/bench_classifier.py                                  # models/guard-classifier, 2 threads
    python bench/bench_classifier.py --iterations 20 --lengths 128    # quick look
    python bench/bench_classifier.py --model models/injection-classifier   # softmax, injection only

Targets (issue): injection p50 <= 15 ms at 128 tokens, <= 70 ms at 512, on the 2-core dev machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from guardproxy.core import Context
from guardproxy.detectors.base import DetectorDeps
from guardproxy.detectors.configs import InjectionClassifierConfig, ModerationClassifierConfig
from guardproxy.detectors.model_files import default_models_root, resolve_model_dir
from guardproxy.detectors.onnx_classifier import (
    InjectionClassifierDetector,
    ModerationClassifierDetector,
    OnnxClassifierDetector,
    window_starts,
)
from guardproxy.detectors.shared import SharedResources
from guardproxy.errors import DetectorFailed

BENCH_DIR = Path(__file__).resolve().parent
TARGETS_P50_MS = {128: 15.0, 512: 70.0}
# LLM Guard's published figures (its docs, CPU), for the printed comparison only.
LLM_GUARD_REFERENCE = {
    "PromptInjection (~90 tokens), PyTorch": 213.0,
    "PromptInjection (~90 tokens), ONNX": 104.0,
    "Anonymize": 177.0,
}

PROSE = (
    "The committee met on Tuesday to review the draft budget for the coming year. Most of the discussion was about "
    "the library renovation, which has run over schedule because the contractor found asbestos in the old reading "
    "room. Members agreed to move part of the maintenance reserve into the project, and asked the treasurer to "
    "prepare two scenarios for the next meeting: one that keeps the opening date in September and one that delays "
    "it to January but avoids a loan. The youth sports programme will keep its current funding. "
)

TrainedTokenizer = Any  # tokenizers.Tokenizer (no type stubs)


class TextPool:
    """Distinct texts that each encode to exactly n_tokens, [CLS] and [SEP] included; never the same twice.

    `source_of(i)` is a long text for variant i, cut at a token boundary. A cut inside a word can re-tokenise
    differently, so such variants are skipped.
    """

    def __init__(self, tokenizer: TrainedTokenizer, n_tokens: int, source_of: Callable[[int], str]) -> None:
        self._tokenizer = tokenizer
        self._n = n_tokens
        self._source_of = source_of
        self._next_variant = 0

    def take(self, count: int) -> list[str]:
        texts: list[str] = []
        misses = 0
        while len(texts) < count:
            source = self._source_of(self._next_variant)
            self._next_variant += 1
            enc = self._tokenizer.encode(source, add_special_tokens=False)
            if len(enc.ids) < self._n - 2:
                raise ValueError(f"a source text has only {len(enc.ids)} tokens, {self._n - 2} needed")
            cut = source[: enc.offsets[self._n - 3][1]]
            if len(self._tokenizer.encode(cut, add_special_tokens=False).ids) == self._n - 2:
                texts.append(cut)
            else:
                misses += 1
                if misses > count + 10:
                    raise ValueError(f"cannot cut the source texts at exactly {self._n} tokens")
        return texts


def prose_source(i: int) -> str:
    return f"Note {i + 1}. " + PROSE * 12  # 12 x ~90 tokens covers 1024


def percentiles(samples_ms: Sequence[float]) -> dict[str, float]:
    arr = np.asarray(samples_ms)
    return {
        "p50_ms": round(float(np.percentile(arr, 50)), 2),
        "p90_ms": round(float(np.percentile(arr, 90)), 2),
        "p99_ms": round(float(np.percentile(arr, 99)), 2),
        "mean_ms": round(statistics.fmean(samples_ms), 2),
        "n": len(samples_ms),
    }


def time_calls(fn: Callable[[str], object], texts: Sequence[str], warmup: int) -> list[float]:
    """fn(text) for each text; the first `warmup` calls are not timed."""
    samples = []
    for i, text in enumerate(texts):
        start = time.perf_counter()
        fn(text)
        if i >= warmup:
            samples.append((time.perf_counter() - start) * 1000)
    return samples


async def time_gather(detectors: Sequence[OnnxClassifierDetector], texts: Sequence[str], warmup: int) -> list[float]:
    ctx = Context(request_id="bench", stage="input")
    samples = []
    for i, text in enumerate(texts):
        start = time.perf_counter()
        await asyncio.gather(*(d.detect(text, ctx) for d in detectors))
        if i >= warmup:
            samples.append((time.perf_counter() - start) * 1000)
    return samples


def onnx_feeds(detector: OnnxClassifierDetector, text: str) -> dict[str, np.ndarray[Any, Any]]:
    """The batch of windows the detector builds for `text` (one onnxruntime call up to batch_size windows)."""
    clf = detector.service.classifier
    ids = np.asarray(clf.tokenizer.encode(text, add_special_tokens=False).ids, dtype=np.int64)
    window = clf.max_length - 2
    rows = [
        np.concatenate(([clf.cls_id], ids[s : s + window], [clf.sep_id]))
        for s in window_starts(len(ids), window, clf.stride)
    ]
    batch = np.stack(rows[: clf.batch_size])
    feeds = {"input_ids": batch}
    if "attention_mask" in clf.input_names:
        feeds["attention_mask"] = np.ones_like(batch)
    if "token_type_ids" in clf.input_names:
        feeds["token_type_ids"] = np.zeros_like(batch)
    return feeds


def session_without_spinning(detector: OnnxClassifierDetector, threads: int) -> Any:
    """The detector's model in a session whose idle intra-op threads sleep instead of spin-waiting (onnxruntime
    spins by default), to see what spinning costs when other threads (Presidio, the event loop) want the cores."""
    import onnxruntime as ort  # type: ignore[import-untyped]

    clf = detector.service.classifier
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.x64quantprecision", "1")  # as the detector (onnx_classifier.py)
    assert clf.card.serving is not None  # the classifier refuses a card without one
    onnx_file = clf.model_dir / clf.card.serving.onnx_file
    return ort.InferenceSession(str(onnx_file), opts, providers=["CPUExecutionProvider"])


class Loaded:
    """The detectors under test: a shared pair (one model) and a separate pair (two copies of it)."""

    def __init__(self, model_dir: Path, threads: int) -> None:
        def injection(shared: SharedResources) -> InjectionClassifierDetector:
            cfg = InjectionClassifierConfig(type="injection_classifier", model_path=str(model_dir), threads=threads)
            return InjectionClassifierDetector("injection", cfg, DetectorDeps(shared=shared))

        def moderation(shared: SharedResources) -> ModerationClassifierDetector:
            cfg = ModerationClassifierConfig(type="moderation_classifier", model_path=str(model_dir), threads=threads)
            return ModerationClassifierDetector("moderation", cfg, DetectorDeps(shared=shared))

        started = time.perf_counter()
        shared = SharedResources()
        self.injection = injection(shared)
        self.load_seconds = time.perf_counter() - started
        self.no_spin_session = session_without_spinning(self.injection, threads)
        self.detectors: list[OnnxClassifierDetector] = [self.injection]
        card = self.injection.service.classifier.card
        self.has_moderation = "moderation" in card.groups
        self.pair_shared: list[OnnxClassifierDetector] = []
        self.pair_separate: list[OnnxClassifierDetector] = []
        if self.has_moderation:
            self.pair_shared = [self.injection, moderation(shared)]
            self.pair_separate = [injection(SharedResources()), moderation(SharedResources())]
            self.detectors += [self.pair_shared[1], *self.pair_separate]

    def close(self) -> None:
        for detector in self.detectors:
            detector.close()


def measure_length(loaded: Loaded, n_tokens: int, iterations: int, warmup: int) -> dict[str, Any]:
    """Each measure gets texts no detector has seen, so only `injection_cache_hit` hits the cache."""
    inj = loaded.injection
    clf = inj.service.classifier
    pool = TextPool(clf.tokenizer, n_tokens, prose_source)

    def fresh() -> list[str]:
        return pool.take(warmup + iterations)

    def pair(detectors: Sequence[OnnxClassifierDetector]) -> Callable[[str], object]:
        return lambda text: [d.detect_sync(text) for d in detectors]

    (seen,) = pool.take(1)
    feeds = onnx_feeds(inj, seen)
    rows: dict[str, Any] = {
        "tokenize": percentiles(time_calls(clf.tokenizer.encode, fresh(), warmup)),
        "onnxruntime": percentiles(time_calls(lambda _: clf.session.run(["logits"], feeds), fresh(), warmup)),
        "onnxruntime_no_spin": percentiles(
            time_calls(lambda _: loaded.no_spin_session.run(["logits"], feeds), fresh(), warmup)
        ),
        "injection": percentiles(time_calls(inj.detect_sync, fresh(), warmup)),
        "injection_cache_hit": percentiles(time_calls(inj.detect_sync, [seen] * (warmup + iterations), warmup)),
    }
    if loaded.has_moderation:
        rows["pair_shared"] = percentiles(time_calls(pair(loaded.pair_shared), fresh(), warmup))
        rows["pair_separate"] = percentiles(time_calls(pair(loaded.pair_separate), fresh(), warmup))
        rows["pair_shared_async"] = percentiles(asyncio.run(time_gather(loaded.pair_shared, fresh(), warmup)))
        rows["pair_separate_async"] = percentiles(asyncio.run(time_gather(loaded.pair_separate, fresh(), warmup)))
    return {"windows": int(feeds["input_ids"].shape[0]), "rows": rows}


def ratios(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per length: what the detector adds over bare onnxruntime, and how much sharing one encoder saves."""
    out: dict[str, dict[str, float]] = {}
    for n, r in results.items():
        p50 = {name: row["p50_ms"] for name, row in r["rows"].items()}
        out[n] = {"detector_over_onnxruntime_p50": round(p50["injection"] / p50["onnxruntime"], 2)}
        if "pair_shared" in p50:
            out[n]["separate_over_shared_sync_p50"] = round(p50["pair_separate"] / p50["pair_shared"], 2)
            out[n]["separate_over_shared_async_p50"] = round(p50["pair_separate_async"] / p50["pair_shared_async"], 2)
    return out


def target_checks(results: dict[str, Any]) -> list[dict[str, Any]]:
    checks = []
    for n, limit in TARGETS_P50_MS.items():
        if str(n) in results:
            p50 = results[str(n)]["rows"]["injection"]["p50_ms"]
            checks.append(
                {"what": f"injection p50 at {n} tokens <= {limit:g} ms", "value_ms": p50, "met": p50 <= limit}
            )
    return checks


def print_table(results: dict[str, Any], checks: list[dict[str, Any]], pair_ratios: dict[str, Any]) -> None:
    header = f"{'tokens':>6} {'win':>3}  {'measure':<22} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'mean ms':>8}"
    print("\n" + header + "\n" + "-" * len(header))
    for n, r in results.items():
        for name, s in r["rows"].items():
            print(
                f"{n:>6} {r['windows']:>3}  {name:<22} {s['p50_ms']:>8.2f} {s['p90_ms']:>8.2f} "
                f"{s['p99_ms']:>8.2f} {s['mean_ms']:>8.2f}"
            )
    for n, r in pair_ratios.items():
        line = f"{n:>6} tokens: detector/onnxruntime p50 {r['detector_over_onnxruntime_p50']:.2f}x"
        if "separate_over_shared_sync_p50" in r:
            line += (
                f"; two separate models / one shared p50 {r['separate_over_shared_sync_p50']:.2f}x (sequential), "
                f"{r['separate_over_shared_async_p50']:.2f}x (gather)"
            )
        print(line)
    print("\nTargets:")
    for c in checks:
        print(f"  {'MET ' if c['met'] else 'MISS'} {c['what']}: {c['value_ms']:.2f} ms")
    print("Reference (LLM Guard, published): " + "; ".join(f"{k} {v:g} ms" for k, v in LLM_GUARD_REFERENCE.items()))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model",
        type=Path,
        default=default_models_root() / "guard-classifier",
        help="model dir or registry of vN dirs (default: models/guard-classifier, or $GUARDPROXY_MODELS_DIR)",
    )
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads per inference")
    parser.add_argument("--iterations", type=int, default=200, help="timed calls per measure")
    parser.add_argument("--warmup", type=int, default=10, help="untimed calls before each measure")
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 512, 1024])
    parser.add_argument("--output", type=Path, default=BENCH_DIR / "results" / "classifier.json")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        model_dir = resolve_model_dir(args.model)
    except DetectorFailed as exc:
        print(
            f"{exc}\nTrain the shipped model (about an hour on this machine):\n"
            "    guardproxy train classifier --config configs/train/guard.yaml\n"
            "or point --model at another model directory (e.g. models/injection-classifier).",
            file=sys.stderr,
        )
        return 2
    load_before = os.getloadavg()
    loaded = Loaded(model_dir, args.threads)
    try:
        if not loaded.has_moderation:
            print(f"{model_dir} has no `moderation` outputs: the shared/separate pair comparison is skipped")
        results: dict[str, Any] = {}
        for n in args.lengths:
            results[str(n)] = measure_length(loaded, n, args.iterations, args.warmup)
            print(f"{n:5d} tokens: injection p50 {results[str(n)]['rows']['injection']['p50_ms']:.2f} ms", flush=True)
    finally:
        loaded.close()

    card = loaded.injection.service.classifier.card
    checks = target_checks(results)
    pair_ratios = ratios(results)
    print_table(results, checks, pair_ratios)
    report = {
        "benchmark": "ONNX classifier detectors, batch 1",
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": {
            "dir": str(model_dir),
            "name": card.name,
            "version": card.version,
            "head": card.head,
            "groups": {group: list(members) for group, members in card.groups.items()},
            "quantization": None if card.serving is None else card.serving.extra.get("quantization"),
        },
        "settings": {
            "threads": args.threads,
            "iterations": args.iterations,
            "warmup": args.warmup,
        },
        "model_load_seconds": round(loaded.load_seconds, 3),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "onnxruntime": version("onnxruntime"),
            "tokenizers": version("tokenizers"),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        },
        "results": results,
        "ratios": pair_ratios,
        "targets": checks,
        "reference_llm_guard_ms": LLM_GUARD_REFERENCE,
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
