"""`guardproxy bench backends`: what each model of a policy costs, and what the guard adds on top.

For every model the same streamed chat requests (temperature 0, so both paths generate the same tokens)
are sent two ways, at each concurrency level:

- `direct`: to the model's backend object in this process (a local model, or the cloud API over HTTP);
- `guarded`: through a real guardproxy server (uvicorn on 127.0.0.1) running the policy's full chains.

Guard overhead = (guarded p50 latency - direct p50 latency) / guarded p50 latency, at concurrency 1.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from guardproxy.backends.base import Backend
from guardproxy.core import JSON
from guardproxy.errors import GuardproxyError, PolicyInvalid
from guardproxy.evaluation.metrics import percentile
from guardproxy.policies.loader import load_policy
from guardproxy.policies.schema import Policy

DEFAULT_PROMPTS = (
    "What is the capital of France?",
    "Give me three tips for writing clear emails.",
    "Explain what a reverse proxy does in two sentences.",
    "Name a fruit that is yellow.",
    "Write a haiku about the sea.",
    "What is 12 times 7?",
    "Why is the sky blue? Answer briefly.",
    "Suggest a name for a friendly robot.",
)
MODES = ("direct", "guarded")
_ROUNDS = 2


@dataclass(frozen=True, slots=True)
class BenchSettings:
    policy_path: Path
    models: list[str] | None = None
    prompts: Sequence[str] = DEFAULT_PROMPTS
    requests: int = 8
    max_tokens: int = 64
    concurrency: tuple[int, ...] = (1, 4)


@dataclass(frozen=True, slots=True)
class Sample:
    outcome: str  # ok | blocked | error
    latency_s: float
    ttft_s: float | None
    tokens: int
    detail: str = ""

    @property
    def tokens_per_s(self) -> float | None:
        """End to end (completion tokens over the whole request): the guard's hold-back releases text in
        bursts, so a rate between first and last chunk would flatter the guarded path."""
        if self.tokens < 1 or self.latency_s <= 0:
            return None
        return self.tokens / self.latency_s


@dataclass(slots=True)
class Cell:
    model: str
    mode: str
    concurrency: int
    wall_s: float
    samples: list[Sample] = field(default_factory=list)

    def summary(self) -> JSON:
        ok = [s for s in self.samples if s.outcome != "error"]
        rates = [r for s in ok if (r := s.tokens_per_s) is not None]
        return {
            "model": self.model,
            "mode": self.mode,
            "concurrency": self.concurrency,
            "requests": len(self.samples),
            "errors": sum(s.outcome == "error" for s in self.samples),
            "blocked": sum(s.outcome == "blocked" for s in self.samples),
            "ttft_p50_ms": _ms(percentile([s.ttft_s for s in ok if s.ttft_s is not None], 0.5)),
            "tokens_per_s_p50": _round(percentile(rates, 0.5)),
            "latency_p50_ms": _ms(percentile([s.latency_s for s in ok], 0.5)),
            "latency_p99_ms": _ms(percentile([s.latency_s for s in ok], 0.99)),
            "throughput_tokens_per_s": _round(sum(s.tokens for s in ok) / self.wall_s if self.wall_s else None),
            "requests_per_s": _round(len(ok) / self.wall_s if self.wall_s else None),
            "first_error": next((s.detail for s in self.samples if s.outcome == "error"), None),
        }


@dataclass(slots=True)
class Report:
    settings: JSON
    cells: list[Cell] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(s.outcome != "error" for c in self.cells for s in c.samples)

    def rows(self) -> list[JSON]:
        return [c.summary() for c in self.cells]

    def overhead(self) -> dict[str, JSON]:
        """Per model: what the guard adds at the lowest concurrency, as ms and as a share of the guarded total."""
        out: dict[str, JSON] = {}
        level = min(self.settings["concurrency"])
        by_key = {(r["model"], r["mode"], r["concurrency"]): r for r in self.rows()}
        for model in dict.fromkeys(c.model for c in self.cells):
            direct, guarded = by_key.get((model, "direct", level)), by_key.get((model, "guarded", level))
            if not direct or not guarded or not direct["latency_p50_ms"] or not guarded["latency_p50_ms"]:
                continue
            added = guarded["latency_p50_ms"] - direct["latency_p50_ms"]
            ttft_added = None
            if direct["ttft_p50_ms"] is not None and guarded["ttft_p50_ms"] is not None:
                ttft_added = round(guarded["ttft_p50_ms"] - direct["ttft_p50_ms"], 2)
            out[model] = {
                "concurrency": level,
                "latency_added_ms": round(added, 2),
                "ttft_added_ms": ttft_added,
                "share_of_total": round(added / guarded["latency_p50_ms"], 4),
            }
        return out

    def to_json(self) -> str:
        return json.dumps(
            {"settings": self.settings, "results": self.rows(), "guard_overhead": self.overhead()}, indent=2
        )


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def load_prompts(path: Path | None) -> Sequence[str]:
    """JSONL with a `prompt` field per line, or plain text with one prompt per line."""
    if path is None:
        return DEFAULT_PROMPTS
    prompts: list[str] = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("{"):
            prompt = json.loads(line).get("prompt")
            if isinstance(prompt, str) and prompt:
                prompts.append(prompt)
        else:
            prompts.append(line)
    if not prompts:
        raise PolicyInvalid(f"{path}: no prompts found (JSONL with a 'prompt' field, or one prompt per line)")
    return prompts


# --- running ---------------------------------------------------------------------------------------


async def run_backends_bench(settings: BenchSettings) -> Report:
    policy = load_policy(settings.policy_path)
    names = settings.models or [m.name for m in policy.models]
    unknown = [n for n in names if policy.route(n) is None]
    if unknown:
        raise PolicyInvalid(f"--models: {unknown} not in the policy; defined: {[m.name for m in policy.models]}")
    report = Report(
        {
            "policy": str(settings.policy_path),
            "models": names,
            "requests": settings.requests,
            "max_tokens": settings.max_tokens,
            "concurrency": list(settings.concurrency),
            "prompts": len(settings.prompts),
        }
    )
    from guardproxy.proxy.runtime import build_backends

    backends = await asyncio.to_thread(build_backends, _only_used_backends(policy, names))
    try:
        with _GuardedServer(settings.policy_path) as server:
            async with httpx.AsyncClient(base_url=server.url, timeout=300) as client:
                for name in names:
                    route = policy.route(name)
                    assert route is not None
                    senders = {
                        "direct": _direct_sender(backends[route.backend], route.upstream_model or route.name),
                        "guarded": _guarded_sender(client, name),
                    }
                    report.cells.extend(await _measure_model(name, senders, settings))
    finally:
        for backend in backends.values():
            await backend.aclose()
    return report


def _only_used_backends(policy: Policy, names: list[str]) -> Policy:
    used = {route.backend for n in names if (route := policy.route(n)) is not None}
    return policy.model_copy(update={"backends": {k: v for k, v in policy.backends.items() if k in used}})


Sender = Callable[[JSON], Awaitable[Sample]]


def _body(prompt: str, max_tokens: int) -> JSON:
    return {
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


async def _measure_model(model: str, senders: dict[str, Sender], settings: BenchSettings) -> list[Cell]:
    """Both modes, each concurrency. Warm-up first (the first answers of a fresh model are slow while
    its weights page in), then the modes alternate in rounds so that drifting machine load hits both."""
    for send in senders.values():
        for prompt in settings.prompts[:2]:
            await send(_body(prompt, settings.max_tokens))
    cells: list[Cell] = []
    for level in settings.concurrency:
        merged = {mode: Cell(model, mode, level, 0.0) for mode in senders}
        rounds = [settings.requests // _ROUNDS + (i < settings.requests % _ROUNDS) for i in range(_ROUNDS)]
        for offset, count in enumerate(rounds):
            for mode, send in senders.items():
                part = await _measure(level, send, settings, count, offset)
                merged[mode].samples.extend(part.samples)
                merged[mode].wall_s += part.wall_s
        cells.extend(merged.values())
    return cells


async def _measure(level: int, send: Sender, settings: BenchSettings, count: int, offset: int) -> Cell:
    gate = asyncio.Semaphore(level)
    prompts = settings.prompts
    bodies = [_body(prompts[(offset * count + i) % len(prompts)], settings.max_tokens) for i in range(count)]

    async def one(body: JSON) -> Sample:
        async with gate:
            return await send(body)

    started = time.perf_counter()
    samples = await asyncio.gather(*(one(b) for b in bodies))
    return Cell("", "", level, time.perf_counter() - started, list(samples))


class _Timer:
    """Follows one streamed answer: first content, token count, and how it ended."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.first: float | None = None
        self.content_chunks = 0
        self.usage_tokens: int | None = None
        self.outcome = "ok"

    def see(self, chunk: JSON) -> None:
        usage = chunk.get("usage")
        if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
            self.usage_tokens = usage["completion_tokens"]
        for choice in chunk.get("choices") or []:
            text = (choice.get("delta") or {}).get("content") or choice.get("text")
            if text:
                self.content_chunks += 1
                if self.first is None:
                    self.first = time.perf_counter()
            if choice.get("finish_reason") == "content_filter":
                self.outcome = "blocked"

    def sample(self, outcome: str | None = None, detail: str = "") -> Sample:
        tokens = self.usage_tokens if self.usage_tokens is not None else self.content_chunks
        ttft = None if self.first is None else self.first - self.started
        return Sample(outcome or self.outcome, time.perf_counter() - self.started, ttft, tokens, detail)


def _direct_sender(backend: Backend, upstream_model: str) -> Sender:
    async def send(body: JSON) -> Sample:
        timer = _Timer()
        try:
            async for chunk in backend.stream("chat/completions", {**body, "model": upstream_model}):
                timer.see(chunk)
        except GuardproxyError as exc:
            return timer.sample("error", f"{type(exc).__name__}: {exc.message}")
        return timer.sample()

    return send


def _guarded_sender(client: httpx.AsyncClient, model: str) -> Sender:
    async def send(body: JSON) -> Sample:
        timer = _Timer()
        try:
            async with client.stream("POST", "/v1/chat/completions", json={**body, "model": model}) as response:
                if response.status_code != 200:
                    error = json.loads(await response.aread()).get("error") or {}
                    blocked = error.get("code") in ("content_filter", "invalid_prompt")
                    return timer.sample("blocked" if blocked else "error", f"HTTP {response.status_code}: {error}")
                async for data in _sse_data(response.aiter_lines()):
                    chunk = json.loads(data)
                    if chunk.get("error"):
                        return timer.sample("error", str(chunk["error"]))
                    timer.see(chunk)
        except httpx.HTTPError as exc:
            return timer.sample("error", f"{type(exc).__name__}: {exc}")
        return timer.sample()

    return send


async def _sse_data(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    async for line in lines:
        if line.startswith("data: ") and line != "data: [DONE]":
            yield line[len("data: ") :]


class _GuardedServer:
    """guardproxy itself (the real app, uvicorn on a free loopback port) in a background thread."""

    def __init__(self, policy_path: Path) -> None:
        import uvicorn

        from guardproxy.proxy.app import create_app
        from guardproxy.proxy.settings import Settings

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        self.url = f"http://127.0.0.1:{port}"
        app = create_app(Settings(policy_path, watch_policy=False))
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="guardproxy-bench-server", daemon=True)

    def __enter__(self) -> _GuardedServer:
        self._thread.start()
        deadline = time.monotonic() + 60
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the guarded proxy did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *_: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)


# --- output ----------------------------------------------------------------------------------------

_COLUMNS = (
    ("model", "model", "{}"),
    ("mode", "mode", "{}"),
    ("conc", "concurrency", "{}"),
    ("TTFT p50 ms", "ttft_p50_ms", "{:.1f}"),
    ("tok/s p50", "tokens_per_s_p50", "{:.1f}"),
    ("lat p50 ms", "latency_p50_ms", "{:.1f}"),
    ("lat p99 ms", "latency_p99_ms", "{:.1f}"),
    ("agg tok/s", "throughput_tokens_per_s", "{:.1f}"),
    ("blocked", "blocked", "{}"),
    ("errors", "errors", "{}"),
)


def render_table(report: Report) -> str:
    header = [title for title, _, _ in _COLUMNS]
    rows = [[("-" if row[key] is None else fmt.format(row[key])) for _, key, fmt in _COLUMNS] for row in report.rows()]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = [" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("-+-".join("-" * w for w in widths))
    lines += [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    for model, o in report.overhead().items():
        lines.append(
            f"guard overhead {model} (concurrency {o['concurrency']}): +{o['latency_added_ms']} ms p50 latency, "
            f"+{o['ttft_added_ms']} ms TTFT = {o['share_of_total'] * 100:.1f}% of the guarded total"
        )
    for row in report.rows():
        if row["first_error"]:
            lines.append(f"first error {row['model']}/{row['mode']}: {row['first_error']}")
    return "\n".join(lines)


def write_plot(report: Report, path: Path) -> None:
    """Grouped bars per model (direct vs guarded) for TTFT, latency p50 and tokens/s at each concurrency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report.rows()
    models = list(dict.fromkeys(r["model"] for r in rows))
    levels = report.settings["concurrency"]
    metrics = (
        ("ttft_p50_ms", "time to first token p50 (ms)"),
        ("latency_p50_ms", "latency p50 (ms)"),
        ("tokens_per_s_p50", "tokens/s per request p50"),
    )
    figure, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 4), squeeze=False)
    groups = [(mode, level) for level in levels for mode in MODES]
    width = 0.8 / len(groups)
    for ax, (key, title) in zip(axes[0], metrics, strict=True):
        for i, (mode, level) in enumerate(groups):
            values = [_value(rows, m, mode, level, key) for m in models]
            positions = [x + i * width for x in range(len(models))]
            ax.bar(positions, values, width, label=f"{mode} c={level}")
        ax.set_xticks([x + width * (len(groups) - 1) / 2 for x in range(len(models))], models)
        ax.set_title(title)
    axes[0][0].legend(fontsize="small")
    figure.suptitle("guardproxy bench backends: direct vs guarded")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _value(rows: list[JSON], model: str, mode: str, level: int, key: str) -> float:
    for row in rows:
        if (row["model"], row["mode"], row["concurrency"]) == (model, mode, level):
            value = row[key]
            return float(value) if value is not None else 0.0
    return 0.0
