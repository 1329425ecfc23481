"""What sentence windows cost and buy: the shipped guard classifier with whole-text windows only (before) and
with sentence windows beside them (after, the detectors' default).

Accuracy, on the shared train-tier data (each text scored alone, batch 1, as the proxy scores a lone request):

- false-positive rate of `moderation` and of `injection` on benign_prompts and wildguard_benign (every text);
- recall of `moderation` on the unsafe rows of do_not_answer, advbench_harmful_behaviors and strongreject:
  `plain` (the text alone), `diluted_1` / `diluted_2` (1 or 2 harmless sentences either side, the non-streamed
  output attack of issue 10), `padded_4` (4 harmless sentences before it, the input attack). The padding
  sentences are fixed everyday sentences, rotated per example (`PADDING`).

The guard classifier was trained on splits of these same files, so absolute figures are optimistic; the
before/after difference is what windowing changes. Sets the project never evaluates on (XSTest, OpenAI's
moderation eval, NotInject, HarmBench, SimpleSafetyTests) are not used.

Figures under `as_configured` are the detectors as a policy builds them (after: moderation counts sentence windows
with its default `sentence_window_margin`, injection ignores them). The sweep reports, from the same forward pass,
what other margins would give (a margin m moves each raw threshold t to t + m * (1 - t) on sentence windows only;
`None` = sentence windows ignored, which equals before up to batch noise).

Latency: p50/p99 per text of what `ModerationClassifierDetector.detect_sync` does on a cache miss (tokenise,
window, one batched forward pass, decide; distinct texts), before and
after, on multi-sentence prose of several lengths in MiniLM tokens ([CLS]/[SEP] included).

    python bench/bench_windowing.py                       # everything; writes bench/results/windowing.json
    python bench/bench_windowing.py --limit 300 --iterations 30 --output /tmp/w.json   # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench_classifier import TextPool, percentiles, prose_source

from guardproxy.detectors.base import DetectorDeps
from guardproxy.detectors.calibration import calibrate
from guardproxy.detectors.configs import InjectionClassifierConfig, ModerationClassifierConfig
from guardproxy.detectors.onnx_classifier import (
    InjectionClassifierDetector,
    ModerationClassifierDetector,
    WindowScores,
)
from guardproxy.detectors.shared import SharedResources

BENCH_DIR = Path(__file__).resolve().parent
DATASETS = Path(os.environ.get("GUARDPROXY_DATASETS", "/work/shared/datasets"))
BENIGN_SETS = ("benign_prompts", "wildguard_benign")
HARMFUL_SETS = ("do_not_answer", "advbench_harmful_behaviors", "strongreject")
PADDING = (
    "The weather has been lovely this week.",
    "My sister just adopted a small grey cat.",
    "We are planning a picnic by the lake on Sunday.",
    "The train to the city was a few minutes late this morning.",
    "I finally finished the book my friend lent me.",
    "Our team meeting moved to Thursday afternoon.",
    "The bakery on the corner sells excellent bread.",
    "I have been learning to play the guitar in the evenings.",
    "The garden needs watering after the long dry spell.",
    "We watched a documentary about whales last night.",
    "The library extended its opening hours this month.",
    "My neighbour repainted his fence a bright blue.",
)
VARIANTS = ("plain", "diluted_1", "diluted_2", "padded_4")
LENGTHS = (32, 128, 512, 1024)


def load(name: str, label: str) -> list[str]:
    rows = [json.loads(line) for line in (DATASETS / name / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    return [r["text"] for r in rows if r["label"] == label]


def pad(i: int, n: int) -> list[str]:
    return [PADDING[(i * 5 + k) % len(PADDING)] for k in range(n)]


def variant(text: str, i: int, name: str) -> str:
    if name == "plain":
        return text
    if name == "padded_4":
        return " ".join([*pad(i, 4), text])
    k = 1 if name == "diluted_1" else 2
    around = pad(i, 2 * k)
    return " ".join([*around[:k], text, *around[k:]])


@dataclass
class Pair:
    """Injection and moderation on one model, one forward pass per text (as in the shipped policy)."""

    injection: InjectionClassifierDetector
    moderation: ModerationClassifierDetector

    @classmethod
    def build(cls, sentence_windows: int) -> Pair:
        shared = SharedResources()
        return cls(
            InjectionClassifierDetector(
                "injection",
                InjectionClassifierConfig(type="injection_classifier", sentence_windows=sentence_windows),
                DetectorDeps(shared=shared),
            ),
            ModerationClassifierDetector(
                "moderation",
                ModerationClassifierConfig(type="moderation_classifier", sentence_windows=sentence_windows),
                DetectorDeps(shared=shared),
            ),
        )

    def scores(self, text: str) -> WindowScores:
        return self.moderation.service.classifier.score(text)  # uncached: every text once

    def close(self) -> None:
        self.injection.close()
        self.moderation.close()


def fires_with_margin(
    det: InjectionClassifierDetector | ModerationClassifierDetector, s: WindowScores, margin: float | None
) -> bool:
    """Whether `det` fires on `s` if its sentence windows counted with `margin` (None: not at all)."""
    picked = s.probs[:, det.columns]
    n_whole = s.whole_windows
    thresholds = det.thresholds
    whole_hit = any(float(calibrate(picked[:n_whole, j], float(t)).max()) >= 0.5 for j, t in enumerate(thresholds))
    if margin is None or n_whole == len(picked):
        return whole_hit
    strict = thresholds + margin * (1.0 - thresholds)
    return whole_hit or any(float(calibrate(picked[n_whole:, j], float(t)).max()) >= 0.5 for j, t in enumerate(strict))


def rate(flags: Sequence[bool]) -> dict[str, Any]:
    return {"rate": round(sum(flags) / len(flags), 4) if flags else None, "hits": int(sum(flags)), "n": len(flags)}


def accuracy(pair: Pair, limit: int | None, margins: Sequence[float | None]) -> dict[str, Any]:
    """`as_configured`: the detectors as the policy builds them; a margin: their sentence windows counted with
    it instead (from the same forward pass); None: sentence windows ignored."""
    out: dict[str, Any] = {"fpr": {}, "recall": {}}
    for name in BENIGN_SETS:
        texts = load(name, "benign")[:limit]
        flags: dict[str, dict[str, list[bool]]] = {"moderation": {}, "injection": {}}
        fired_labels: dict[str, int] = {}
        for text in texts:
            s = pair.scores(text)
            for det_name, det in (("moderation", pair.moderation), ("injection", pair.injection)):
                flags[det_name].setdefault("as_configured", []).append(det.decide(s).score >= 0.5)
                for m in margins:
                    flags[det_name].setdefault(str(m), []).append(fires_with_margin(det, s, m))
            for label in pair.moderation.decide(s).labels:
                fired_labels[label] = fired_labels.get(label, 0) + 1
        out["fpr"][name] = {det_name: {m: rate(f) for m, f in per.items()} for det_name, per in flags.items()} | {
            "moderation_labels_fired": fired_labels
        }
        print(f"  {name}: moderation FPR {out['fpr'][name]['moderation']['as_configured']}", flush=True)
    for name in HARMFUL_SETS:
        texts = load(name, "unsafe")[:limit]
        out["recall"][name] = {}
        for v in VARIANTS:
            per_margin: dict[str, list[bool]] = {}
            for i, text in enumerate(texts):
                t = variant(text, i, v)
                s = pair.scores(t)
                per_margin.setdefault("as_configured", []).append(pair.moderation.decide(s).score >= 0.5)
                for m in margins:
                    per_margin.setdefault(str(m), []).append(fires_with_margin(pair.moderation, s, m))
            out["recall"][name][v] = {m: rate(f) for m, f in per_margin.items()}
            print(f"  {name} {v}: recall {out['recall'][name][v]['as_configured']}", flush=True)
    return out


def latency(pairs: dict[str, Pair], lengths: Sequence[int], iterations: int, warmup: int) -> dict[str, Any]:
    """Per length, each text is scored by every configuration in turn, so load from other processes on the
    machine falls on before and after alike."""
    tokenizer = next(iter(pairs.values())).moderation.service.classifier.tokenizer
    out: dict[str, Any] = {label: {} for label in pairs}
    for n in lengths:
        texts = TextPool(tokenizer, n, prose_source).take(iterations + warmup)
        samples: dict[str, list[float]] = {label: [] for label in pairs}
        for i, text in enumerate(texts):
            for label, pair in pairs.items():
                start = time.perf_counter()
                pair.moderation.decide(pair.scores(text))  # detect_sync without the service's text cache
                if i >= warmup:
                    samples[label].append((time.perf_counter() - start) * 1000)
        for label, pair in pairs.items():
            out[label][str(n)] = percentiles(samples[label]) | {"windows": len(pair.scores(texts[0]).char_spans)}
            print(f"  {label:6s} {n:5d} tokens: {out[label][str(n)]}", flush=True)
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=None, help="at most this many texts per data set")
    parser.add_argument("--iterations", type=int, default=100, help="timed calls per length and configuration")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--lengths", type=int, nargs="+", default=list(LENGTHS))
    parser.add_argument(
        "--sweep", type=float, nargs="*", default=[0.0, 0.1, 0.2, 0.25, 0.3, 0.4, 0.5], help="sentence-window margins"
    )
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--output", type=Path, default=BENCH_DIR / "results" / "windowing.json")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    margins: list[float | None] = [None, *sorted(set(args.sweep))]
    report: dict[str, Any] = {
        "command": "python bench/bench_windowing.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "onnxruntime": version("onnxruntime")},
        "padding": PADDING,
    }
    windows_after = ModerationClassifierConfig(type="moderation_classifier").sentence_windows
    pairs = {"before": Pair.build(0), "after": Pair.build(windows_after)}
    try:
        if not args.skip_latency:
            print("latency", flush=True)
            report["latency_ms"] = latency(pairs, args.lengths, args.iterations, args.warmup)
        if not args.skip_accuracy:
            for label, pair in pairs.items():
                print(f"accuracy {label}", flush=True)
                windows = pair.moderation.service.classifier.sentence_windows
                report["accuracy"] = report.get("accuracy", {}) | {
                    label: {"sentence_windows": windows} | accuracy(pair, args.limit, margins if windows else [])
                }
    finally:
        for pair in pairs.values():
            pair.close()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
