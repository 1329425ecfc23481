"""The request flow: input chain -> backend (with fallbacks) -> output chain -> audit.

Framework-free: `app.py` adapts it to litestar. Every failure is a `GuardproxyError`, rendered
once by the app's error handler.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import structlog

from guardproxy.backends.base import Endpoint
from guardproxy.core import JSON, Context
from guardproxy.errors import (
    Blocked,
    GuardproxyError,
    UpstreamStatus,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from guardproxy.policies.chain import StepResult, Verdict
from guardproxy.policies.operators import MemoryVault, Vault, apply_edits, redact_all, restore
from guardproxy.proxy.admission import admit
from guardproxy.proxy.audit_sink import AuditSink
from guardproxy.proxy.exchange import Exchange
from guardproxy.proxy.metrics import Metrics
from guardproxy.proxy.moderation import moderation_response
from guardproxy.proxy.relay import StreamRelay
from guardproxy.proxy.revise import PreferenceRecorder, PreferenceWriter, revise_choice
from guardproxy.proxy.runtime import RuntimeHolder, Target
from guardproxy.proxy.texts import Kind, TextSlot, choice_slots, request_slots, validate

log = structlog.get_logger(__name__)

ENDPOINTS: dict[Kind, Endpoint] = {
    "chat": "chat/completions",
    "completion": "completions",
    "embedding": "embeddings",
    "moderation": "moderations",
}


@dataclass(frozen=True, slots=True)
class JSONResult:
    status: int
    body: JSON


@dataclass(frozen=True, slots=True)
class StreamResult:
    chunks: AsyncIterator[bytes]


def new_request_id() -> str:
    # 128 random bits without uuid4's os.urandom syscall (3 us -> 0.4 us); ids need uniqueness, not secrecy.
    return f"gp-{random.getrandbits(128):032x}"


def client_label(host: str | None, authorization: str | None) -> str:
    """Who sent it, without keeping the key: the address and a short hash of the credential."""
    label = host or "unknown"
    if authorization:
        label += " key:" + hashlib.sha256(authorization.encode()).hexdigest()[:12]
    return label


class Gateway:
    def __init__(
        self,
        holder: RuntimeHolder,
        sink: AuditSink,
        metrics: Metrics,
        vault: Vault | None = None,
        preferences: PreferenceWriter | None = None,
    ) -> None:
        self.holder = holder
        self.sink = sink
        self.metrics = metrics
        self.vault: Vault = vault or MemoryVault()
        # Where `revise` steps store their triples; None: the policy's audit file, opened on first use.
        self.preferences = PreferenceRecorder(preferences)

    async def handle(self, kind: Kind, body: JSON, *, request_id: str, client: str) -> JSONResult | StreamResult:
        admit(body, self.holder.current.policy.proxy)  # size limits, before any detector runs
        validate(kind, body)
        rt = self.holder.acquire()
        ex = Exchange(request_id, kind, ENDPOINTS[kind], client, body, rt, self.vault.open(request_id), self.metrics)
        ex.model = str(body.get("model") or "")
        ex.stream = bool(body.get("stream")) and kind in ("chat", "completion")
        handed_over = False
        try:
            if kind == "moderation":
                return JSONResult(200, await self._moderate(ex))
            targets = rt.targets(ex.model)
            if kind == "chat":  # output detectors such as `canary` mark the request before anything reads it
                for detector in {id(s.detector): s.detector for s in rt.output.text_steps}.values():
                    if (instrument := getattr(detector, "instrument", None)) is not None:
                        instrument(ex.body, ex.request_id)
            await self._guard_input(ex)
            if ex.stream:
                relay = await StreamRelay.open(ex, targets, on_done=self._finish)
                handed_over = True
                return StreamResult(relay.run())
            response = await self._complete(ex, targets)
            if kind in ("chat", "completion"):
                await self._guard_output(ex, response)
            ex.take_usage(response)
            return JSONResult(200, response)
        except GuardproxyError as exc:
            ex.status = exc.status
            ex.outcome = "blocked_input" if isinstance(exc, Blocked) else "error"
            ex.error = None if isinstance(exc, Blocked) else f"{type(exc).__name__}: {exc.message}"
            raise
        finally:
            if not handed_over:
                await self._finish(ex)

    async def _finish(self, ex: Exchange) -> None:
        self.vault.close(ex.request_id)
        self.holder.release(ex.rt)
        # Only policy model names become label values: client-chosen names would grow metrics without bound.
        model = ex.model if ex.rt.policy.route(ex.model) is not None else "unknown"
        self.metrics.requests.labels(ex.endpoint, model, ex.outcome).inc()
        self.metrics.request_latency.labels(ex.endpoint).observe(time.perf_counter() - ex.started)
        await self.sink.submit(ex.record(store_raw=ex.rt.policy.audit.store_raw))

    async def _check_slots(self, ex: Exchange, slots: list[TextSlot]) -> list[Verdict]:
        chain = ex.rt.input
        if len(slots) == 1 or chain.inline_only:
            return [
                await chain.check(s.text, Context(ex.request_id, "input", s.role, ex.model, ex.body, ex.client))
                for s in slots
            ]
        return list(
            await asyncio.gather(
                *(
                    chain.check(s.text, Context(ex.request_id, "input", s.role, ex.model, ex.body, ex.client))
                    for s in slots
                )
            )
        )

    async def _guard_input(self, ex: Exchange) -> None:
        slots = request_slots(ex.kind, ex.body)
        chain = ex.rt.input
        verdicts = await self._check_slots(ex, slots)
        request_verdict = await chain.check_request(
            Context(ex.request_id, "input", "request", ex.model, ex.body, ex.client)
        )
        ex.add([request_verdict, *verdicts])
        ex.input_text = "\n".join(
            f"{s.role}: {redact_all(s.text, v.sensitive)}" for s, v in zip(slots, verdicts, strict=True)
        )
        if ex.rt.policy.audit.store_raw:
            ex.raw_input = "\n".join(f"{s.role}: {s.text}" for s in slots)
        blocked = request_verdict.blocked_by or next((v.blocked_by for v in verdicts if v.blocked_by), None)
        if blocked is not None:
            raise _blocked_error(blocked, ex.rt.policy.proxy.block_error_code)
        for s, v in zip(slots, verdicts, strict=True):
            if v.edits:
                s.set(apply_edits(s.text, v.edits, ex.scope))

    async def _complete(self, ex: Exchange, targets: list[Target]) -> JSON:
        last: GuardproxyError | None = None
        for target in targets:
            ex.body["model"] = target.upstream_model
            ex.backend = target.route.backend
            started = time.perf_counter()
            try:
                response = await target.backend.complete(ex.endpoint, ex.body)
            except (UpstreamUnavailable, UpstreamTimeout) as exc:
                last = exc
            except UpstreamStatus as exc:
                if exc.status < 500 and exc.status != 429:
                    raise
                last = exc
            else:
                return response
            finally:
                elapsed = time.perf_counter() - started
                ex.upstream_latency_ms = elapsed * 1000.0
                self.metrics.upstream_latency.labels(target.route.backend, ex.endpoint).observe(elapsed)
            log.warning("upstream_failed", backend=target.route.backend, error=last.message, request_id=ex.request_id)
        assert last is not None
        raise last

    async def _guard_output(self, ex: Exchange, response: JSON) -> None:
        chain = ex.rt.output
        refusal = ex.rt.policy.proxy.refusal_message
        audit: list[str] = []
        raw: list[str] = []
        for choice in response.get("choices") or ():
            slots = choice_slots(ex.kind, choice)
            ctxs = [Context(ex.request_id, "output", s.role, ex.model, ex.body, ex.client) for s in slots]
            if chain.inline_only:
                verdicts = [await chain.check(s.text, c) for s, c in zip(slots, ctxs, strict=True)]
            else:
                verdicts = list(
                    await asyncio.gather(*(chain.check(s.text, c) for s, c in zip(slots, ctxs, strict=True)))
                )
            ex.add(verdicts)
            verdicts = await revise_choice(ex, slots, verdicts, self.preferences) or verdicts
            audit.extend(redact_all(s.text, v.sensitive) for s, v in zip(slots, verdicts, strict=True))
            raw.extend(s.text for s in slots)
            blocked = next((v.blocked_by for v in verdicts if v.blocked_by), None)
            if blocked is not None:
                _block_choice(ex.kind, choice, refusal)
                ex.outcome = "blocked_output"
                continue
            for s, v in zip(slots, verdicts, strict=True):
                if v.edits:
                    choice.pop("logprobs", None)  # token logprobs would repeat the redacted text
                s.set(restore(apply_edits(s.text, v.edits, None), ex.scope))
        ex.output_text = "\n".join(audit)
        ex.raw_output = "\n".join(raw)

    async def _moderate(self, ex: Exchange) -> JSON:
        slots = request_slots("moderation", ex.body)
        verdicts = await self._check_slots(ex, slots)
        ex.add(verdicts)
        ex.input_text = "\n".join(redact_all(s.text, v.sensitive) for s, v in zip(slots, verdicts, strict=True))
        if any(v.flagged for v in verdicts):
            ex.outcome = "flagged"
        return moderation_response(ex.request_id, ex.model or "guardproxy-policy", verdicts)


def _block_choice(kind: Kind, choice: JSON, refusal: str | None) -> None:
    choice["finish_reason"] = "content_filter"
    choice.pop("logprobs", None)
    if kind == "completion":
        choice["text"] = refusal or ""
        return
    msg = choice.setdefault("message", {"role": "assistant"})
    msg["content"] = refusal
    msg.pop("tool_calls", None)
    msg.pop("function_call", None)


def _blocked_error(result: StepResult, code: str) -> Blocked:
    step = result.step
    why = f"fired {list(result.labels)}" if result.ran else "could not run and fails closed"
    return Blocked(
        f"Request blocked by policy: step '{step.name}' ({step.detector_name}) {why}.",
        code=code,
        step=step.name,
        detector=step.detector_name,
        labels=result.labels if result.ran else ("detector_error",),
    )
