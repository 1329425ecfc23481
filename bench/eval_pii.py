"""Evaluate the `presidio` detector on presidio_synth_pii (held-out part), and time it.

Split: a record is held out iff sha256("guardproxy-pii-v1|" + text) mod 100 < 30. Nothing was
tuned on it: recognizers, context words and NER fine-tuning looked only at the other 70% ("tune");
`--show-errors` only works on the tune part, and only shows records of seen templates. Records whose template group (source + template_id)
hashes into `UNSEEN_TEMPLATE_PERCENT` were also kept out of NER fine-tuning, so held-out records
of those templates show how the detector does on sentence shapes it has never seen (the sealed
test set is split by template).

Entities are scored under the dataset's names, which are Presidio's except ADDRESS (street
addresses, which Presidio has no recognizer for); LOCATION is the dataset's GPE (cities,
countries). Two matchings, both reported:
- exact: a prediction counts only with the gold span's exact offsets and entity;
- overlap: a gold span is found when a prediction of its entity overlaps it, and a prediction is
  right when it overlaps a gold span of its entity.
A LOCATION predicted inside a gold ADDRESS (the city of a street address) is not counted as a
false positive in the `lenient` tables, and is in the `strict` ones.

    python bench/eval_pii.py                        # held-out tables + bench/results/pii_eval.json
    python bench/eval_pii.py --split tune --show-errors PERSON
    python bench/eval_pii.py --latency-only --iterations 500   # timings only, nothing written
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import statistics
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

from guardproxy.core import Span
from guardproxy.detectors.base import DetectorDeps
from guardproxy.detectors.presidio import PresidioConfig, PresidioDetector
from guardproxy.evaluation.metrics import percentile

DATA = Path("/work/shared/datasets/presidio_synth_pii/train.jsonl")
RESULTS = Path(__file__).parent / "results" / "pii_eval.json"
SPLIT_SALT = "guardproxy-pii-v1|"
HELDOUT_PERCENT = 30
TEMPLATE_SALT = "guardproxy-pii-template-v1|"
UNSEEN_TEMPLATE_PERCENT = 20
STRUCTURED = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IBAN_CODE")
SCORED = ("PERSON", "LOCATION", "ADDRESS", *STRUCTURED, "IP_ADDRESS")


def _bucket(key: str) -> int:
    return int(hashlib.sha256(key.encode()).hexdigest(), 16) % 100


def is_heldout(text: str) -> bool:
    return _bucket(SPLIT_SALT + text) < HELDOUT_PERCENT


def template_group(record: dict[str, Any]) -> str:
    return f"{record['source']}#{record['meta']['template_id']}"


def is_unseen_template(record: dict[str, Any]) -> bool:
    return _bucket(TEMPLATE_SALT + template_group(record)) < UNSEEN_TEMPLATE_PERCENT


def load(split: str, path: Path = DATA) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in path.open(encoding="utf-8")]
    return [r for r in records if is_heldout(r["text"]) == (split == "heldout")]


@dataclass
class Counts:
    gold: int = 0
    predicted: int = 0
    exact_tp: int = 0
    gold_found: int = 0  # gold spans overlapped by a prediction of their entity
    predicted_right: int = 0  # predictions overlapping a gold span of their entity
    predicted_right_lenient: int = 0  # ... or a LOCATION inside a gold ADDRESS
    errors: list[str] = field(default_factory=list)

    def table(self) -> dict[str, Any]:
        def prf(tp_recall: int, tp_precision: int) -> dict[str, float | None]:
            recall = tp_recall / self.gold if self.gold else None
            precision = tp_precision / self.predicted if self.predicted else None
            f1 = (
                2 * precision * recall / (precision + recall)
                if precision is not None and recall is not None and precision + recall
                else None
            )
            return {
                k: None if v is None else round(v, 4)
                for k, v in (("precision", precision), ("recall", recall), ("f1", f1))
            }

        return {
            "gold": self.gold,
            "predicted": self.predicted,
            "exact": prf(self.exact_tp, self.exact_tp),
            "overlap_strict": prf(self.gold_found, self.predicted_right),
            "overlap_lenient": prf(self.gold_found, self.predicted_right_lenient),
        }


def _overlaps(a_start: int, a_end: int, b_start: int, b_end: int) -> bool:
    return a_start < b_end and b_start < a_end


def score(records: Iterable[dict[str, Any]], predictions: Iterable[list[Span]], keep_errors: bool) -> dict[str, Counts]:
    counts = {entity: Counts() for entity in SCORED}
    for record, spans in zip(records, predictions, strict=True):
        text = record["text"]
        gold = [(g["start"], g["end"], g["entity_type"]) for g in record["spans"]]
        addresses = [(s, e) for s, e, t in gold if t == "ADDRESS"]
        for start, end, entity in gold:
            if entity not in counts:
                continue
            c = counts[entity]
            c.gold += 1
            c.exact_tp += any((p.start, p.end, p.label) == (start, end, entity) for p in spans)
            found = any(p.label == entity and _overlaps(p.start, p.end, start, end) for p in spans)
            c.gold_found += found
            if keep_errors and not found:
                c.errors.append(f"MISS {text[start:end]!r} in {text[max(0, start - 60) : end + 30]!r}")
        for p in spans:
            if p.label not in counts:
                continue
            c = counts[p.label]
            c.predicted += 1
            right = any(t == p.label and _overlaps(p.start, p.end, s, e) for s, e, t in gold)
            c.predicted_right += right
            in_address = p.label == "LOCATION" and any(_overlaps(p.start, p.end, s, e) for s, e in addresses)
            c.predicted_right_lenient += right or in_address
            if keep_errors and not right and not in_address:
                others = [t for s, e, t in gold if _overlaps(p.start, p.end, s, e)]
                c.errors.append(
                    f"FP {text[p.start : p.end]!r} (gold there: {others}) in {text[max(0, p.start - 60) : p.end + 30]!r}"
                )
    return counts


# Ordinary prose with a little personal data, as a prompt would have; cut to a token count.
PROSE = (
    "Hi, this is Maria Gonzalez from the Lisbon office. Following up on our call last Tuesday, the committee met to "
    "review the draft budget for the coming year. Most of the discussion was about the library renovation, which has "
    "run over schedule because the contractor found asbestos in the old reading room. Members agreed to move part of "
    "the maintenance reserve into the project, and asked the treasurer to prepare two scenarios for the next meeting. "
    "Please send the revised figures to maria.gonzalez@example.org or call me on +44 20 7946 0958 before Friday. "
    "David Chen will present the plan in Toronto and then travel to Nairobi for the regional review. "
)


def text_of_tokens(detector: PresidioDetector, n_tokens: int) -> str:
    nlp = detector.analysis.nlp
    text = PROSE
    while len(nlp.make_doc(text)) <= n_tokens:
        text += PROSE
    doc = nlp.make_doc(text)
    return text[: doc[n_tokens].idx].rstrip()


def latency(detector: PresidioDetector, n_tokens: int, iterations: int) -> dict[str, Any]:
    import asyncio

    from guardproxy.core import Context

    text = text_of_tokens(detector, n_tokens)
    for _ in range(5):
        detector.detect_sync(text)
    sync_ms = []
    for _ in range(iterations):
        began = time.perf_counter()
        detector.detect_sync(text)
        sync_ms.append((time.perf_counter() - began) * 1000)

    async def through_executor() -> list[float]:
        ctx = Context(request_id="bench", stage="input")
        samples = []
        for _ in range(iterations):
            began = time.perf_counter()
            await detector.detect(text, ctx)
            samples.append((time.perf_counter() - began) * 1000)
        return samples

    async_ms = asyncio.run(through_executor())
    return {
        "tokens": n_tokens,
        "chars": len(text),
        "sync": _percentiles(sync_ms),
        "async_detect": _percentiles(async_ms),
    }


# Ordinary requests that rarely hold personal data, none used in NER training or rehearsal.
BENIGN_SETS = ("do_not_answer", "strongreject", "advbench_harmful_behaviors", "jailbreakbench_behaviors")


def benign_flag_rate(detector: PresidioDetector) -> dict[str, Any]:
    """Share of such prompts with any finding: mostly false positives (some do name real people or places)."""
    texts = [
        json.loads(line)["text"]
        for name in BENIGN_SETS
        for line in (DATA.parents[1] / name / "train.jsonl").open(encoding="utf-8")
    ]
    flagged: dict[str, int] = {}
    examples: list[str] = []
    n_flagged = 0
    for text in texts:
        spans = detector.analysis.analyze(text)
        n_flagged += bool(spans)
        for span in spans:
            flagged[span.label] = flagged.get(span.label, 0) + 1
            if len(examples) < 12:
                examples.append(f"{span.label}: {text[span.start : span.end]!r}")
    return {
        "datasets": list(BENIGN_SETS),
        "prompts": len(texts),
        "flagged_share": round(n_flagged / len(texts), 4),
        "spans_by_entity": dict(sorted(flagged.items())),
        "first_findings": examples,
    }


def event_loop_lag(detector: PresidioDetector, n_tokens: int, calls: int = 30) -> dict[str, float]:
    """How late a 1 ms asyncio timer fires while analyses run on the detector's thread.

    spaCy holds the GIL for part of its work; whatever it holds delays the event loop (other
    requests, onnxruntime-based steps) even though the analysis runs off it.
    """
    import asyncio

    from guardproxy.core import Context

    text = text_of_tokens(detector, n_tokens)

    async def measure() -> tuple[list[float], float]:
        lags: list[float] = []
        done = asyncio.Event()

        async def ticker() -> None:
            while not done.is_set():
                began = time.perf_counter()
                await asyncio.sleep(0.001)
                lags.append((time.perf_counter() - began) * 1000 - 1.0)

        ticking = asyncio.create_task(ticker())
        began = time.perf_counter()
        for _ in range(calls):
            await detector.detect(text, Context(request_id="bench", stage="input"))
        busy_s = time.perf_counter() - began
        done.set()
        await ticking
        return lags, busy_s

    lags, busy_s = asyncio.run(measure())
    return {
        "tokens": n_tokens,
        "timer_lateness_p50_ms": round(statistics.median(lags), 2),
        "timer_lateness_p99_ms": round(sorted(lags)[int(0.99 * (len(lags) - 1))], 2),
        "timer_ticks_per_analysis": round(len(lags) / calls, 1),
        "analysis_ms_with_ticker": round(busy_s * 1000 / calls, 2),
    }


def _percentiles(samples: list[float]) -> dict[str, float]:
    p50, p99 = percentile(samples, 0.5), percentile(samples, 0.99)
    assert p50 is not None and p99 is not None, "no samples"
    return {"p50_ms": round(p50, 2), "p99_ms": round(p99, 2), "n": len(samples)}


def _print_latency(t: dict[str, Any]) -> None:
    print(
        f"{t['tokens']} spaCy tokens ({t['chars']} chars): sync p50 {t['sync']['p50_ms']} ms p99 {t['sync']['p99_ms']} ms; "
        f"async detect p50 {t['async_detect']['p50_ms']} ms p99 {t['async_detect']['p99_ms']} ms"
    )


def _print_table(title: str, counts: dict[str, Counts]) -> None:
    print(f"\n{title}")
    print(
        f"{'entity':14} {'gold':>5} {'pred':>5} | {'exact P':>7} {'R':>6} {'F1':>6} | {'overlap P':>9} {'R':>6} {'F1':>6} | {'lenient P':>9} {'F1':>6}"
    )
    for entity, c in counts.items():
        if not c.gold and not c.predicted:
            continue
        t = c.table()

        def f(v: float | None) -> str:
            return "   -  " if v is None else f"{v:6.3f}"

        ex, ov, le = t["exact"], t["overlap_strict"], t["overlap_lenient"]
        print(
            f"{entity:14} {c.gold:5} {c.predicted:5} | {f(ex['precision']):>7} {f(ex['recall'])} {f(ex['f1'])} | "
            f"{f(ov['precision']):>9} {f(ov['recall'])} {f(ov['f1'])} | {f(le['precision']):>9} {f(le['f1'])}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", choices=["heldout", "tune"], default="heldout")
    parser.add_argument(
        "--config", default="{}", help="PresidioConfig options as JSON, e.g. '{\"full_pipeline\": true}'"
    )
    parser.add_argument("--show-errors", metavar="ENTITY", help="print misses and false positives (tune only)")
    parser.add_argument("--iterations", type=int, default=200, help="latency samples per length")
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument("--latency-only", action="store_true", help="only time the detector; writes no results")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.show_errors and args.split != "tune":
        parser.error("--show-errors is only allowed on the tune split")

    options = json.loads(args.config)
    began = time.perf_counter()
    detector = PresidioDetector("pii", PresidioConfig(type="presidio", **options), DetectorDeps())
    build_s = time.perf_counter() - began
    if args.latency_only:
        for t in (latency(detector, n, args.iterations) for n in (128, 512)):
            _print_latency(t)
        return 0
    entities = [e for e in SCORED if e in detector.analysis.engine.get_supported_entities()]
    detector = PresidioDetector(
        "pii", PresidioConfig(type="presidio", **{"entities": entities, **options}), DetectorDeps()
    )
    config = detector.analysis.config
    records = load(args.split)
    predictions = [detector.analysis.analyze(r["text"]) for r in records]
    everything = score(records, predictions, keep_errors=False)
    unseen = [(r, p) for r, p in zip(records, predictions, strict=True) if is_unseen_template(r)]
    unseen_counts = score([r for r, _ in unseen], [p for _, p in unseen], keep_errors=False)
    print(
        f"split={args.split}: {len(records)} records ({len(unseen)} of templates unseen in NER training); "
        f"model={config.model} full_pipeline={config.full_pipeline} structured={config.structured}; "
        f"engine built in {build_s:.2f} s"
    )
    _print_table("all records", everything)
    _print_table("records of unseen templates", unseen_counts)
    if args.show_errors:
        # Only from templates that NER fine-tuning saw: the unseen-template figures stay untouched by looking.
        seen = [(r, p) for r, p in zip(records, predictions, strict=True) if not is_unseen_template(r)]
        shown = score([r for r, _ in seen], [p for _, p in seen], keep_errors=True)
        for line in shown[args.show_errors].errors:
            print(" ", line)

    benign = benign_flag_rate(detector)
    print(
        f"PII-free-ish prompts ({', '.join(BENIGN_SETS)}): {benign['flagged_share']:.1%} of {benign['prompts']} "
        f"have a finding; {benign['spans_by_entity']}; e.g. {benign['first_findings'][:6]}"
    )
    timings = [] if args.no_latency else [latency(detector, n, args.iterations) for n in (128, 512)]
    lag = [] if args.no_latency else [event_loop_lag(detector, 512)]
    for t in timings:
        _print_latency(t)

    for row in lag:
        print(f"event loop while analysing {row['tokens']} tokens: {row}")

    if args.split == "heldout":
        result = {
            "detector": "presidio",
            "config": config.model_dump(exclude={"type"}),
            "split": f"held-out {HELDOUT_PERCENT}% by sha256('{SPLIT_SALT}' + text) mod 100 < {HELDOUT_PERCENT}",
            "unseen_templates": f"sha256('{TEMPLATE_SALT}' + source#template_id) mod 100 < {UNSEEN_TEMPLATE_PERCENT}",
            "records": len(records),
            "records_unseen_templates": len(unseen),
            "scoring": "dataset entity names; exact = same offsets and entity; overlap = same entity and any overlap; "
            "lenient also accepts LOCATION predicted inside a gold ADDRESS",
            "per_entity": {e: c.table() for e, c in everything.items() if c.gold or c.predicted},
            "per_entity_unseen_templates": {e: c.table() for e, c in unseen_counts.items() if c.gold or c.predicted},
            "benign_prompts": benign,
            "latency_spacy_tokens": timings,
            "event_loop_lag": lag,
            "engine_build_s": round(build_s, 3),
            "versions": {p: version(p) for p in ("presidio-analyzer", "spacy")} | {"python": sys.version.split()[0]},
            "machine": f"{platform.machine()}, shared 2-core dev machine",
        }
        if not args.no_latency:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
            print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
