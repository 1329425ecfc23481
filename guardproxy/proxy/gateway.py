"""The request flow: input chain -> backend (with fallbacks) -> output chain -> audit.

Framework-free: `app.py` adapts it to litestar. Every failure is a `GuardproxyError`, rendered
once by the app's error handler.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Literal

import structlog

from guardproxy.audit.records import AuditRecord, Outcome, Segment
from guardproxy.audit.sink import AuditSink
from guardproxy.backends.base import Endpoint
from guardproxy.core import JSON, Context, TextRole
from guardproxy.detectors.response_schema import requested_schema
from guardproxy.errors import Blocked, GuardproxyError
from guardproxy.policies.chain import Chain, CompiledStep, StepResult, Verdict, fold, run_inline, run_step
from guardproxy.policies.conversation import check_conversation
from guardproxy.policies.operators import MemoryScope, apply_edits, redact_all, restore
from guardproxy.proxy.admission import admit
from guardproxy.proxy.exchange import Exchange, TokenCharge, segment
from guardproxy.proxy.failover import failover
from guardproxy.proxy.metrics import Metrics
from guardproxy.proxy.moderation import moderation_response
from guardproxy.proxy.relay import StreamFormat, StreamRelay
from guardproxy.proxy.revise import PreferenceRecorder, revise_choice
from guardproxy.proxy.runtime import RuntimeHolder, Target
from guardproxy.proxy.shielded import ShieldedTasks
from guardproxy.proxy.texts import Kind, validate
from guardproxy.proxy.upstream_errors import screen_upstream_error
from guardproxy.proxy.walker import (
    CheckedText,
    Slot,
    Unscanned,
    checked_texts,
    clean_envelope,
    drop_stale_logprobs,
    walk_choice,
    walk_request,
)
from guardproxy.state.conversation import ConversationKey, conversation_of
from guardproxy.state.failure import StateFailures
from guardproxy.state.vault import Conversations, MemoryVault, OpenConversation, Sensitive

log = structlog.get_logger(__name__)

ENDPOINTS: dict[Kind, Endpoint] = {
    "chat": "chat/completions",
    "completion": "completions",
    "embedding": "embeddings",
    "moderation": "moderations",
}
# The APIs clients call: the kinds above, and the Responses API, served as a translated chat request.
Api = Kind | Literal["responses"]
API_ENDPOINTS: dict[Api, str] = {kind: endpoint for kind, endpoint in ENDPOINTS.items()} | {"responses": "responses"}


@dataclass(frozen=True, slots=True)
class JSONResult:
    status: int
    body: JSON


@dataclass(frozen=True, slots=True)
class StreamResult:
    chunks: AsyncGenerator[bytes, None]


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
        conversations: Conversations | None = None,
    ) -> None:
        self.holder = holder
        self.sink = sink
        self.metrics = metrics
        # Where anonymize placeholders live between turns (guardproxy/state): in-process unless `state.url`.
        self.conversations = conversations or Conversations(
            MemoryVault(holder.current.policy.state.conversation_ttl_s), StateFailures("fail_closed")
        )
        # `revise` steps store their triples through the sink: scrubbed there, like every audit row.
        self.preferences = PreferenceRecorder(sink)
        # Finishing a request (runtime release, audit record) outlives a client that hangs up.
        self.cleanups = ShieldedTasks()

    async def handle(
        self,
        kind: Kind,
        body: JSON,
        *,
        request_id: str,
        client: str,
        charge: TokenCharge | None = None,
        profile: str | None = None,
        api: Api | None = None,
        wire: StreamFormat | None = None,
        identity: str | None = None,
        conversation: ConversationKey | None = None,
    ) -> JSONResult | StreamResult:
        """`charge` receives the tokens the request spent once they are known (the key's rate limits);
        `profile`: the caller's policy profile (its key's), None for the default. `api` names the API the
        client called when the body was translated into `kind` (the Responses API), and `wire` writes a
        stream in that API's format. `identity`: who the caller is across requests (the key's name), None
        for `client`. `conversation`: the caller and the conversation header, to find the conversation whose
        placeholders the request shares (guardproxy/state/conversation.py); None: the request keeps its own."""
        try:
            admit(body, self.holder.current.policy.proxy)  # size limits, before any detector runs
            validate(kind, body)
        except GuardproxyError as exc:
            await self.record_rejected(request_id, api or kind, client, exc)
            raise
        rt = self.holder.acquire()
        try:
            chains = rt.chains(profile)
        except GuardproxyError as exc:  # a profile the policy lacks fails closed (403), never the default's rules
            self.holder.release(rt)
            await self.record_rejected(request_id, api or kind, client, exc)
            raise
        own = OpenConversation(MemoryScope(), None)
        ex = Exchange(request_id, kind, ENDPOINTS[kind], client, body, rt, own, self.metrics, chains)
        ex.model = str(body.get("model") or "")
        ex.stream = bool(body.get("stream")) and kind in ("chat", "completion")
        ex.charge = charge
        ex.api = API_ENDPOINTS[api] if api is not None else None
        ex.identity = identity or client
        handed_over = False
        try:
            if chains.input.anonymizes and conversation is not None:  # else no turn needs another's placeholders
                # Read before anything rewrites the body (the canary below, anonymize).
                ref = conversation_of(kind, body, conversation.header, conversation.tenant)
                ex.conversation = await self.conversations.open(ref, request_id)
            if kind == "moderation":
                return JSONResult(200, await self._moderate(ex))
            targets = rt.targets(ex.model)
            if kind == "chat":  # output detectors such as `canary` mark the request before anything reads it
                for instrumenter in chains.instrumenters:
                    instrumenter.instrument(ex.body, ex.request_id)
            await self._guard_input(ex)
            if ex.stream:
                relay = await StreamRelay.open(ex, targets, on_done=self._finish, cleanups=self.cleanups, wire=wire)
                handed_over = True
                return StreamResult(relay.run())
            response = await self._complete(ex, targets)
            if kind in ("chat", "completion"):
                await self._guard_output(ex, response)
            ex.take_usage(response)
            return JSONResult(200, response)
        except GuardproxyError as exc:
            await screen_upstream_error(ex, exc)  # an upstream's error text passes the output chain first
            ex.status = exc.status
            ex.outcome = Outcome.BLOCKED_INPUT if isinstance(exc, Blocked) else Outcome.ERROR
            ex.error = None if isinstance(exc, Blocked) else f"{type(exc).__name__}: {exc.message}"
            raise
        finally:
            if not handed_over:
                await self.cleanups.run(self._finish(ex), what="request_finish")

    async def record_rejected(
        self, request_id: str, kind: Api, client: str, error: GuardproxyError, *, started: float | None = None
    ) -> None:
        """The audit row of a request refused before it became an exchange (unreadable, too large, invalid).

        Keeps the error's class and code, never its message: parse and validation messages can quote the body.
        """
        await self.record_refusal(
            request_id,
            API_ENDPOINTS[kind],
            client,
            error.status,
            f"{type(error).__name__}: {error.code}",
            started=started,
        )

    async def record_refusal(
        self, request_id: str, endpoint: str, client: str, status: int, error: str, *, backend: str = "",
        started: float | None = None,
    ) -> None:  # fmt: skip
        """One rule for every API (chat, Responses, MCP): a refused request is counted, timed and audited as an
        error row with no texts; `endpoint` must be a bounded label (a metric label)."""
        self.metrics.requests.labels(endpoint, "unknown", Outcome.ERROR).inc()
        latency_s = 0.0 if started is None else time.perf_counter() - started
        self.metrics.request_latency.labels(endpoint).observe(latency_s)
        record = AuditRecord(
            request_id=request_id,
            ts=time.time(),
            client=client,
            endpoint=endpoint,
            model="",
            backend=backend,
            stream=False,
            outcome=Outcome.ERROR,
            status=status,
            latency_ms=latency_s * 1000.0,
            error=error,
        )
        await self.sink.submit(record)

    async def drain(self) -> None:
        """Wait for requests that are still finishing (their clients may be gone): call before the sink closes."""
        await self.cleanups.drain()

    async def _finish(self, ex: Exchange) -> None:
        self.holder.release(ex.rt)
        if ex.status == 200 and ex.outcome not in (Outcome.BLOCKED_OUTPUT, Outcome.ERROR):
            await self.conversations.finish(ex.conversation, "".join(ex.answer_parts))
        if ex.charge is not None and ex.status == 200:  # refused or failed requests spent no upstream tokens
            await ex.charge(ex.tokens_spent())
        # Only policy model names become label values: client-chosen names would grow metrics without bound.
        model = ex.model if ex.rt.policy.route(ex.model) is not None else "unknown"
        self.metrics.requests.labels(ex.served_as, model, ex.outcome).inc()
        self.metrics.request_latency.labels(ex.served_as).observe(time.perf_counter() - ex.started)
        await self.sink.submit(ex.record(store_raw=ex.rt.policy.audit.store_raw))

    async def check_slots(self, ex: Exchange, chain: Chain, slots: Sequence[CheckedText]) -> list[Verdict]:
        ctxs = [Context(ex.request_id, chain.stage, s.role, ex.model, ex.body, ex.client) for s in slots]
        if len(slots) == 1 or chain.inline_only:
            return [await chain.check(s.text, c) for s, c in zip(slots, ctxs, strict=True)]
        return list(await asyncio.gather(*(chain.check(s.text, c) for s, c in zip(slots, ctxs, strict=True))))

    async def check_unscanned(self, ex: Exchange, step: CompiledStep, parts: list[Unscanned]) -> list[Verdict]:
        """Parts no detector can read are recorded, counted, and decided by `proxy.unscanned`."""
        if not parts:
            return []
        for part in parts:
            self.metrics.unscanned.labels(step.stage, part.kind).inc()
        ctx = Context(ex.request_id, step.stage, "unscanned", ex.model, ex.body, ex.client)
        return [fold([await run_inline(step, "\n".join(p.kind for p in parts), ctx)])]

    async def _guard_input(self, ex: Exchange) -> None:
        if ex.kind == "chat" and ex.rt.response_schema is not None:
            requested_schema(ex.body)  # a schema that cannot check the answer is the client's error: 400 now
        walk = walk_request(ex.kind, ex.body)
        texts: list[CheckedText] = checked_texts(walk.slots)
        parts = walk.unscanned
        if ex.rt.images is not None and any(p.image is not None for p in parts):  # OCR only when there is an image
            read = await ex.rt.images.read(parts)
            texts, parts = [*texts, *read.slots], read.unscanned
        chain = ex.chains.input
        verdicts = await self.check_slots(ex, chain, texts)
        request_verdict = await chain.check_request(
            Context(ex.request_id, "input", "request", ex.model, ex.body, ex.client)
        )
        unscanned = await self.check_unscanned(ex, ex.chains.unscanned_input, parts)
        whole = [request_verdict, *unscanned]  # verdicts on the request as a whole, not on one text
        if ex.kind == "chat" and ex.rt.tool_pins is not None:
            ctx = Context(ex.request_id, "input", "request", ex.model, ex.body, ex.identity)
            whole.append(fold([await run_step(ex.rt.tool_pins, "", ctx)]))
        if chain.conversation_steps:
            messages = [(t.role, t.path, t.text) for t in texts if isinstance(t, Slot)]
            ctx = Context(ex.request_id, "input", "conversation", ex.model, ex.body, ex.client)
            whole.append(await check_conversation(chain.conversation_steps, messages, ctx, ex.rt.windows))
        ex.add([*whole, *verdicts])
        ex.input_segments = tuple(
            segment(s.role, s.path, redact_all(s.text, v.sensitive)) for s, v in zip(texts, verdicts, strict=True)
        )
        if ex.rt.policy.audit.store_raw:
            ex.raw_input_segments = tuple(segment(s.role, s.path, s.text) for s in texts)
        blocked = next((v.blocked_by for v in [*whole, *verdicts] if v.blocked_by), None)
        if blocked is not None:
            raise _blocked_error(blocked, ex.rt.policy.proxy.block_error_code)
        # The conversation's vault issues the placeholders (one round trip), then `apply` finds them in the scope.
        values = [Sensitive(*value) for s, v in zip(texts, verdicts, strict=True) for value in s.anonymized(v.edits)]
        await self.conversations.issue(ex.conversation, values)
        for s, v in zip(texts, verdicts, strict=True):
            if v.edits and s.role == TextRole.IMAGE_TEXT:
                raise _image_not_editable(v, ex.rt.policy.proxy.block_error_code)
        for s, v in zip(texts, verdicts, strict=True):
            if v.edits:
                s.apply(v.edits, ex.scope)

    async def _complete(self, ex: Exchange, targets: list[Target]) -> JSON:
        async def attempt(target: Target) -> JSON:
            return await target.backend.complete(ex.endpoint, ex.body)

        return await failover(ex, targets, attempt)

    async def _guard_output(self, ex: Exchange, response: JSON) -> None:
        """Every text of the answer is checked; what goes back is rebuilt from what was checked."""
        chain = ex.chains.output
        refusal = ex.rt.policy.proxy.refusal_message
        audit: list[Segment] = []
        raw: list[Segment] = []
        envelope = clean_envelope(response)
        choices = response.get("choices")
        response.clear()
        response.update(envelope)
        response["choices"] = choices = [c for c in choices if isinstance(c, dict)] if isinstance(choices, list) else []
        for i, choice in enumerate(choices):
            walk = walk_choice(ex.kind, choice, f".choices[{i}]")
            slots = walk.slots
            verdicts = await self.check_slots(ex, chain, slots)
            unscanned = await self.check_unscanned(ex, ex.chains.unscanned_output, walk.unscanned)
            ex.add([*unscanned, *verdicts])
            verdicts = await revise_choice(ex, slots, verdicts, self.preferences) or verdicts
            audit.extend(
                segment(s.role, s.path, redact_all(s.text, v.sensitive)) for s, v in zip(slots, verdicts, strict=True)
            )
            raw.extend(segment(s.role, s.path, s.text) for s in slots)
            blocked = next((v.blocked_by for v in [*unscanned, *verdicts] if v.blocked_by), None)
            if blocked is not None:
                _block_choice(ex.kind, choice, refusal, i)
                ex.outcome = Outcome.BLOCKED_OUTPUT
                continue
            for s, v in zip(slots, verdicts, strict=True):
                s.set(restore(apply_edits(s.text, v.edits, None), ex.scope))
            drop_stale_logprobs(ex.kind, choice)  # token logprobs that no longer spell the delivered text
            if not await self._follows_schema(ex, choice):
                _block_choice(ex.kind, choice, refusal, i)
                ex.outcome = Outcome.BLOCKED_OUTPUT
                continue
            if i == 0 and ex.kind == "chat":  # what the client will send back as this turn's answer
                message = choice.get("message")
                content = message.get("content") if isinstance(message, dict) else None
                ex.answer_parts.append(content if isinstance(content, str) else "")
        ex.output_segments = tuple(audit)
        ex.raw_output_segments = tuple(raw)

    async def _follows_schema(self, ex: Exchange, choice: JSON) -> bool:
        """False when the delivered content breaks the request's `response_format` and the policy blocks that."""
        step = ex.rt.response_schema
        content = (choice.get("message") or {}).get("content")
        if step is None or ex.kind != "chat" or not isinstance(content, str):
            return True
        ctx = Context(ex.request_id, "output", "assistant", ex.model, ex.body, ex.client)
        verdict = fold([await run_inline(step, content, ctx)])
        ex.add([verdict])
        return verdict.blocked_by is None

    async def _moderate(self, ex: Exchange) -> JSON:
        walk = walk_request("moderation", ex.body)
        verdicts = await self.check_slots(ex, ex.chains.input, walk.slots)
        unscanned = await self.check_unscanned(ex, ex.chains.unscanned_input, walk.unscanned)
        ex.add([*unscanned, *verdicts])
        ex.input_segments = tuple(
            segment(s.role, s.path, redact_all(s.text, v.sensitive)) for s, v in zip(walk.slots, verdicts, strict=True)
        )
        blocked = next((v.blocked_by for v in unscanned if v.blocked_by), None)
        if blocked is not None:
            raise _blocked_error(blocked, ex.rt.policy.proxy.block_error_code)
        if any(v.flagged for v in verdicts):
            ex.outcome = Outcome.FLAGGED
        return moderation_response(ex.request_id, ex.model or "guardproxy-policy", verdicts)


def _block_choice(kind: Kind, choice: JSON, refusal: str | None, index: int) -> None:
    """A blocked choice keeps nothing the upstream sent: no reasoning, tool calls, audio or logprobs."""
    original = choice.get("index")
    index = original if isinstance(original, int) else index
    choice.clear()
    choice.update(index=index, finish_reason="content_filter", logprobs=None)
    if kind == "completion":
        choice["text"] = refusal or ""
    else:
        choice["message"] = {"role": "assistant", "content": refusal}


def _image_not_editable(verdict: Verdict, code: str) -> Blocked:
    """A step would redact or anonymize text inside an image: the image cannot be edited, so it is refused."""
    result = next(r for r in verdict.results if r.fired and r.spans)
    step = result.step
    return Blocked(
        f"Request blocked by policy: step '{step.name}' ({step.detector_name}) would {step.action} "
        f"{list(result.labels)} in the text of an image, and an image cannot be edited.",
        code=code,
        step=step.name,
        detector=step.detector_name,
        labels=result.labels,
    )


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
