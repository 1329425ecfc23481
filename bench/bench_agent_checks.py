"""What the issue-15 checks cost per request, measured in-process on the real components, in one run.

- `ocr`: one screenshot-sized image (1280x800 PNG, 22 lines of text) read by `ImageReader`: Pillow decode to
  grayscale + one `tesseract` process. Requests without an image pay nothing (the reader is not called).
- `conversation`: a 50-turn chat (25 user turns) through a `scope: conversation` step (window of 4 user turns)
  with the injection heuristic (the shipped choice) and, with `--model`, the shipped injection classifier:
  `cold` (no window known: every window of the history), `warm` (the history known, one new turn: one new
  window), beside the message-scoped check of the same 50 texts.
- `url_guard`: one ~1,500-character answer with three links, and one without, through the detector; and the
  answer streamed in 4-character deltas through the stream guard with and without a url_guard step.
- `control_chars`, `response_schema`, `tool_pinning` (SQLite store): per answer / per request.

    python bench/bench_agent_checks.py [--repeats 200] [--ocr-repeats 15] [--model] [--out bench/results/agent_checks.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from guardproxy.core import Context, TextRole
from guardproxy.detectors.base import Detector, DetectorDeps
from guardproxy.detectors.configs import (
    BlocklistConfig,
    ControlCharsConfig,
    InjectionClassifierConfig,
    InjectionHeuristicConfig,
    UrlGuardConfig,
)
from guardproxy.detectors.registry import build_detector
from guardproxy.detectors.response_schema import ResponseSchemaCheck
from guardproxy.evaluation.metrics import percentile
from guardproxy.images.reader import ImageReader
from guardproxy.pins.check import ToolPinCheck
from guardproxy.pins.store import SqlitePinStore
from guardproxy.policies.chain import Chain, CompiledStep
from guardproxy.policies.conversation import WindowCache, check_conversation
from guardproxy.policies.schema import ImageSettings, ProxySettings
from guardproxy.proxy.streaming import StreamGuard
from guardproxy.proxy.walker import Unscanned
from tests.images import data_url, screenshot

Timed = Callable[[int], Awaitable[None]]

LINES = [
    "Quarterly operations review - Q3",
    "Revenue grew 12% against the same quarter last year, driven by the new",
    "subscription tier and lower churn in the enterprise segment.",
    "Open items:",
    "  1. Migrate the billing service to the new message queue by October 14.",
    "  2. Renew the TLS certificates for api.example.com and status.example.com.",
    "  3. Hire two support engineers for the Lisbon office.",
    "Risks: the vendor contract for data storage ends in December; a renewal",
    "quote is expected next week. Latency of the search API rose to 180 ms p95.",
] * 2 + ["Prepared by the operations team.", "Next review: January.", "Questions: ops@example.com", "Page 1 of 1"]
ANSWER = (
    "Here is a summary of the report. Revenue grew twelve percent, mostly from the new subscription tier. "
    "See the [billing migration plan](https://docs.example.com/billing/migration-plan) and the chart below.\n\n"
    "![revenue by quarter](https://cdn.example.com/charts/revenue-q3.png)\n\n"
    "The open items are the queue migration, the certificate renewals and two hires in Lisbon. "
    "For the certificates, follow https://docs.example.com/ops/tls-renewal#staging before the deadline. "
) * 3
PLAIN = ANSWER.replace("https://", "").replace("](", "] (")


def _step(name: str, detector: Detector, scope: str = "message") -> CompiledStep:
    return CompiledStep(
        name, "input" if scope == "conversation" else "output", name, detector, "block", 0.5, 30.0, "block",
        roles=frozenset({"user"}) if scope == "conversation" else None,
        scope="conversation" if scope == "conversation" else "message",
    )  # fmt: skip


async def _time(fn: Timed, repeats: int) -> dict[str, float]:
    await fn(-1)  # warm-up
    timings = []
    for i in range(repeats):
        started = time.perf_counter()
        await fn(i)
        timings.append((time.perf_counter() - started) * 1000.0)
    p50, p99 = percentile(timings, 0.5), percentile(timings, 0.99)
    assert p50 is not None and p99 is not None
    return {"p50_ms": round(p50, 3), "p99_ms": round(p99, 3), "n": repeats}


async def bench_ocr(repeats: int) -> dict[str, Any]:
    reader = ImageReader(ProxySettings(images=ImageSettings(ocr=True)))
    image = screenshot(LINES)
    url = data_url(image)
    texts: list[str] = []

    async def once(_: int) -> None:
        read = await reader.read([Unscanned(".messages[0].content[1]", "image_url", {"url": url})])
        texts.append(read.slots[0].text)

    result = await _time(once, repeats)
    return {**result, "image_bytes": len(image), "size": "1280x800", "chars_read": len(texts[-1])}


async def bench_conversation(repeats: int, detector: Detector) -> dict[str, Any]:
    history = [f"Turn {i}: could you check flight {i} from Berlin to Lisbon and the weather there?" for i in range(25)]

    def texts(turns: list[str]) -> list[tuple[TextRole, str, str]]:
        out = []
        for i, t in enumerate(turns):
            out += [
                (TextRole.USER, f".messages[{2 * i}].content", t),
                (TextRole.ASSISTANT, f".messages[{2 * i + 1}].content", f"Answer {i}."),
            ]
        return out  # fmt: skip

    step = _step("conv", detector, "conversation")
    message_chain = Chain.build("input", (_step("msg", detector),))
    ctx = Context("bench", "input", "conversation")

    async def message_scope(i: int) -> None:
        turns = [f"{t} #{i}" for t in history]  # fresh texts: no model-side cache answers
        await asyncio.gather(*(message_chain.check(t, Context("b", "input", "user")) for _, _, t in texts(turns)))

    async def cold(i: int) -> None:
        await check_conversation([step], texts([f"{t} #{i}" for t in history]), ctx, WindowCache())

    warm_cache = WindowCache()
    await check_conversation([step], texts(history), ctx, warm_cache)

    async def warm(i: int) -> None:
        await check_conversation([step], texts([*history, f"And tomorrow, case {i}?"]), ctx, warm_cache)

    return {
        "messages": 50,
        "window_turns": 4,
        "message_scope_50_texts": await _time(message_scope, repeats),
        "conversation_cold": await _time(cold, repeats),
        "conversation_warm_one_new_turn": await _time(warm, repeats),
    }


async def bench_links(repeats: int) -> dict[str, Any]:
    deps = DetectorDeps()
    guard = build_detector("links", UrlGuardConfig(type="url_guard", allow_hosts=["example.com"]), deps)
    banned = build_detector("banned", BlocklistConfig(type="blocklist", patterns=["(?i)internal use only"]), deps)
    ctx = Context("bench", "output", "assistant")

    async def links(_: int) -> None:
        await guard.detect(ANSWER, ctx)

    async def plain(_: int) -> None:
        await guard.detect(PLAIN, ctx)

    def streamed(chain: Chain) -> Timed:
        async def run(_: int) -> None:
            sg = StreamGuard(chain, ctx, None, 256, 200)
            for i in range(0, len(ANSWER), 4):
                await sg.feed(ANSWER[i : i + 4])
            await sg.finish()

        return run

    base = Chain.build("output", (_step("banned", banned),))
    with_links = Chain.build("output", (_step("banned", banned), _step("links", guard)))
    return {
        "answer_chars": len(ANSWER),
        "detect_answer_with_3_links": await _time(links, repeats),
        "detect_answer_without_links": await _time(plain, repeats),
        "stream_blocklist_only": await _time(streamed(base), max(20, repeats // 10)),
        "stream_blocklist_and_url_guard": await _time(streamed(with_links), max(20, repeats // 10)),
    }


async def bench_small(repeats: int) -> dict[str, Any]:
    ctx = Context("bench", "output", "assistant")
    control = build_detector("t", ControlCharsConfig(type="control_chars"), DetectorDeps())
    schema = {"type": "object", "properties": {"answer": {"type": "string"}, "score": {"type": "number"}}}
    request = {"response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": schema}}}
    checker = ResponseSchemaCheck()
    schema_ctx = Context("bench", "output", "assistant", request=request)
    with tempfile.TemporaryDirectory() as tmp:
        pins = ToolPinCheck(SqlitePinStore(Path(tmp) / "pins.db"))
        tools = [{"type": "function", "function": {"name": f"tool{i}", "description": "Does a thing.", "parameters": {"type": "object"}}} for i in range(4)]  # fmt: skip
        pin_ctx = Context("bench", "input", "request", request={"tools": tools}, client="key-a")

        async def control_chars(_: int) -> None:
            await control.detect(ANSWER + "\x1b[31mred\x1b[0m", ctx)

        async def response_schema(_: int) -> None:
            await checker.detect('{"answer": "twelve percent", "score": 0.9}', schema_ctx)

        async def tool_pinning(_: int) -> None:
            await pins.detect("", pin_ctx)

        out = {
            "control_chars_answer": await _time(control_chars, repeats),
            "response_schema_answer": await _time(response_schema, repeats),
            "tool_pinning_4_tools_sqlite": await _time(tool_pinning, repeats),
        }
        await pins.aclose()
    return out


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    configs: dict[str, Any] = {"injection_heuristic": InjectionHeuristicConfig(type="injection_heuristic")}
    if args.model:
        configs["injection_classifier"] = InjectionClassifierConfig(type="injection_classifier")
    conversation: dict[str, Any] = {}
    for name, config in configs.items():
        detector = build_detector("inj", config, DetectorDeps())
        repeats = args.conversation_repeats if name == "injection_classifier" else args.repeats // 4
        conversation[name] = await bench_conversation(repeats, detector)
        await detector.aclose()
    return {
        "url_guard": await bench_links(args.repeats),
        "small_checks": await bench_small(args.repeats),
        "conversation": conversation,
        "ocr": await bench_ocr(args.ocr_repeats),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--conversation-repeats", type=int, default=50)
    parser.add_argument("--ocr-repeats", type=int, default=15)
    parser.add_argument("--model", action="store_true", help="conversation scope with the shipped classifier")
    parser.add_argument("--out", type=Path, default=Path("bench/results/agent_checks.json"))
    args = parser.parse_args()
    load_before = os.getloadavg()
    results = asyncio.run(main_async(args))
    command = (
        f"python bench/bench_agent_checks.py --repeats {args.repeats} --conversation-repeats "
        f"{args.conversation_repeats} --ocr-repeats {args.ocr_repeats}" + (" --model" if args.model else "")
    )
    record = {
        "command": command,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_1m_before_after": [round(load_before[0], 1), round(os.getloadavg()[0], 1)],
            "note": "cores shared with other jobs: absolute times are inflated by their load",
        },
        "results": results,
    }
    print(json.dumps(record, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
