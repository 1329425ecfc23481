"""The SSE relay: upstream chunks in, checked chunks out (see `streaming.StreamGuard`).

The first upstream chunk is awaited before the response starts, so failures before the first
byte still get a proper HTTP status (and fallbacks). After that, errors end the stream with an
OpenAI-style `error` event, and a block ends it with `finish_reason: "content_filter"`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any, Protocol

import msgspec
import structlog

from guardproxy.audit.records import Outcome, Segment
from guardproxy.core import JSON, Context, TextRole
from guardproxy.detectors.response_schema import requested_schema
from guardproxy.errors import GuardproxyError
from guardproxy.policies.chain import run_inline
from guardproxy.policies.operators import apply_edits, restore
from guardproxy.proxy.exchange import Exchange
from guardproxy.proxy.failover import failover
from guardproxy.proxy.runtime import Target
from guardproxy.proxy.shielded import ShieldedTasks
from guardproxy.proxy.streaming import OutputBlocked, StreamGuard
from guardproxy.proxy.upstream_errors import screen_upstream_error
from guardproxy.proxy.walker import clean_envelope

log = structlog.get_logger(__name__)
DONE = b"data: [DONE]\n\n"
_encode = msgspec.json.Encoder().encode


def sse(obj: JSON) -> bytes:
    return b"data: " + _encode(obj) + b"\n\n"


class StreamFormat(Protocol):
    """How checked chat chunks go on the wire: chat's own SSE, or another API's events (Responses)."""

    def chunk(self, chunk: JSON) -> bytes: ...

    def done(self) -> bytes: ...

    def error(self, body: JSON) -> bytes: ...


class ChatStreamFormat:
    """`/v1/chat/completions` and `/v1/completions`: each chunk as `data:`, then `data: [DONE]`."""

    def chunk(self, chunk: JSON) -> bytes:
        return sse(chunk)

    def done(self) -> bytes:
        return DONE

    def error(self, body: JSON) -> bytes:
        return sse(body)


async def _aclose(it: AsyncIterator[JSON]) -> None:
    aclose = getattr(it, "aclose", None)
    if aclose is not None:
        await aclose()


class StreamRelay:
    def __init__(
        self,
        ex: Exchange,
        upstream: AsyncIterator[JSON],
        first: JSON | None,
        on_done: _Done,
        cleanups: ShieldedTasks,
        wire: StreamFormat | None = None,
    ) -> None:
        self.ex = ex
        self.wire = wire or ChatStreamFormat()
        self.upstream = upstream
        self.first = first
        self.on_done = on_done
        self.cleanups = cleanups
        self.guards: dict[int, StreamGuard] = {}
        self.tools: dict[int, dict[int, JSON]] = {}
        self.finished: set[int] = set()
        self.raw: dict[int, list[str]] = {}  # by choice index
        # The answer must follow the request's `response_format`: what each choice delivered, checked at its end.
        self.schema_step = (
            ex.rt.response_schema if ex.kind == "chat" and requested_schema(ex.body, validate=False) else None
        )
        self.delivered: dict[int, list[str]] = {}

    @classmethod
    async def open(
        cls,
        ex: Exchange,
        targets: list[Target],
        on_done: _Done,
        cleanups: ShieldedTasks,
        wire: StreamFormat | None = None,
    ) -> StreamRelay:
        """The relay of the first target whose stream yields its first chunk (see `failover`)."""

        async def attempt(target: Target) -> tuple[AsyncIterator[JSON], JSON | None]:
            upstream = target.backend.stream(ex.endpoint, ex.body)
            try:
                return upstream, await anext(upstream, None)
            except BaseException:
                await _aclose(upstream)
                raise

        upstream, first = await failover(ex, targets, attempt)
        return cls(ex, upstream, first, on_done, cleanups, wire)

    async def run(self) -> AsyncGenerator[bytes, None]:
        ex = self.ex
        completed = False
        try:
            chunk = self.first
            while chunk is not None:
                for out in await self._process(chunk):
                    yield out
                chunk = await anext(self.upstream, None)
            for out in await self._flush():
                yield out
            completed = True
            yield self.wire.done()
        except OutputBlocked:
            completed = True
            ex.outcome = Outcome.BLOCKED_OUTPUT
            for out in self._content_filter():
                yield out
            yield self.wire.done()
        except GuardproxyError as exc:
            completed = True
            await screen_upstream_error(ex, exc)  # an upstream's error event passes the output chain first
            ex.outcome, ex.status = Outcome.ERROR, exc.status
            ex.error = f"{type(exc).__name__}: {exc.message}"
            yield self.wire.error(exc.to_body())
        finally:
            if not completed and ex.outcome == Outcome.ALLOWED:
                ex.outcome, ex.error = Outcome.ERROR, "client disconnected before the end of the stream"
            # A hang-up reaches us as a cancellation that repeats at every await of this scope: the
            # cleanup runs in its own task, so the upstream is closed, the runtime released and the
            # audit record submitted even then (see shielded.py).
            await self.cleanups.run(self._finish(), what="stream_cleanup")

    async def _finish(self) -> None:
        try:
            await _aclose(self.upstream)
        finally:
            self._settle()
            await self.on_done(self.ex)

    def _guard(self, index: int) -> StreamGuard:
        guard = self.guards.get(index)
        if guard is None:
            cfg = self.ex.rt.policy.proxy.stream
            ctx = Context(self.ex.request_id, "output", "assistant", self.ex.model, self.ex.body, self.ex.client)
            guard = StreamGuard(
                self.ex.chains.output,
                ctx,
                self.ex.scope,
                cfg.holdback_chars,
                cfg.context_chars,
                min_window=cfg.min_window_chars,
            )
            # Blocking an answer that breaks its schema means holding it back whole: JSON is valid only at the end.
            guard.hold_all = self.schema_step is not None and self.schema_step.action == "block"
            self.guards[index] = guard
        return guard

    async def _process(self, chunk: JSON) -> list[bytes]:
        choices = chunk.get("choices")
        self.ex.take_usage(chunk)
        if not choices:
            return [self.wire.chunk({**clean_envelope(chunk), "choices": []})]
        chat = self.ex.kind == "chat"
        out: list[bytes] = []
        for pos, choice in enumerate(choices):
            index = choice.get("index", pos)
            guard = self._guard(index)
            delta = (choice.get("delta") or {}) if chat else {}
            text = delta.get("content") if chat else choice.get("text")
            released = ""
            if isinstance(text, str) and text:
                if self.ex.rt.policy.audit.store_raw:
                    self.raw.setdefault(index, []).append(text)
                released = await guard.feed(text)
            if chat and delta.get("tool_calls"):
                self._buffer_tools(index, delta["tool_calls"])
            finish = choice.get("finish_reason")
            tools: list[JSON] = []
            if finish is not None:
                released += await guard.finish()
                await self._check_schema(index, released, guard)
                tools = await self._release_tools(index, guard)
                self.finished.add(index)
            elif released and self.schema_step is not None:
                self.delivered.setdefault(index, []).append(released)
            if released or tools or finish is not None or delta.get("role"):
                out.append(self.wire.chunk(self._chunk(chunk, index, released, tools, finish, delta.get("role"))))
            if index == 0 and released and chat:
                self.ex.answer_parts.append(released)
        return out

    async def _flush(self) -> list[bytes]:
        """Upstream ended: release what is left of choices that never sent a finish_reason."""
        out = []
        template = self.first or {}
        for index, guard in self.guards.items():
            if index in self.finished:
                continue
            released = await guard.finish()
            await self._check_schema(index, released, guard)
            tools = await self._release_tools(index, guard)
            if released or tools:
                out.append(self.wire.chunk(self._chunk(template, index, released, tools, None, None)))
            if index == 0 and released and self.ex.kind == "chat":
                self.ex.answer_parts.append(released)
        return out

    async def _check_schema(self, index: int, last: str, guard: StreamGuard) -> None:
        """At a choice's end: its whole content against the request's schema (held back whole when blocking)."""
        if self.schema_step is None:
            return
        content = "".join([*self.delivered.pop(index, []), last])
        if not content and self.tools.get(index):
            return  # a tool call, not content
        result = await run_inline(self.schema_step, content, guard.ctx)
        guard.results.append(result)
        if result.blocks:
            raise OutputBlocked(result)

    def _buffer_tools(self, index: int, deltas: list[Any]) -> None:
        calls = self.tools.setdefault(index, {})
        for d in deltas:
            slot = calls.setdefault(d.get("index", 0), {"index": d.get("index", 0), "function": {"arguments": ""}})
            for key in ("id", "type"):
                if d.get(key):
                    slot[key] = d[key]
            fn = d.get("function") or {}
            if fn.get("name"):
                slot["function"]["name"] = fn["name"]
            slot["function"]["arguments"] += fn.get("arguments") or ""

    async def _release_tools(self, index: int, guard: StreamGuard) -> list[JSON]:
        """Tool calls are released whole, name and arguments, after the output chain checked them."""
        calls = self.tools.pop(index, {})
        for call in calls.values():
            fn = call["function"]
            for key in ("name", "arguments"):
                if not isinstance(fn.get(key), str):
                    continue
                verdict = await guard.chain.check(fn[key], replace(guard.ctx, role="tool_call"))
                guard.results.extend(verdict.results)
                if verdict.blocked_by is not None:
                    raise OutputBlocked(verdict.blocked_by)
                fn[key] = restore(apply_edits(fn[key], verdict.edits, None), self.ex.scope)
        return [calls[k] for k in sorted(calls)]

    def _chunk(
        self, template: JSON, index: int, text: str, tools: list[JSON], finish: str | None, role: str | None
    ) -> JSON:
        chunk = clean_envelope(template)
        if self.ex.kind == "chat":
            delta: JSON = {"role": role} if role else {}
            if text or role:
                delta["content"] = text
            if tools:
                delta["tool_calls"] = tools
            chunk["choices"] = [{"index": index, "delta": delta, "finish_reason": finish}]
        else:
            chunk["choices"] = [{"index": index, "text": text, "finish_reason": finish}]
        return chunk

    def _content_filter(self) -> list[bytes]:
        template = self.first or {}
        indexes = [i for i in sorted(self.guards) if i not in self.finished] or [0]
        return [self.wire.chunk(self._chunk(template, i, "", [], "content_filter", None)) for i in indexes]

    def _settle(self) -> None:
        for guard in self.guards.values():
            self.ex.add_results(guard.results)
        self.ex.output_segments = tuple(
            Segment(TextRole.ASSISTANT.value, index, "".join(g.audit_parts)) for index, g in self.guards.items()
        )
        self.ex.raw_output_segments = tuple(
            Segment(TextRole.ASSISTANT.value, index, "".join(parts)) for index, parts in self.raw.items()
        )


_Done = Callable[[Exchange], Awaitable[None]]
