"""The `revise` output action (Constitutional AI): rewrite a firing answer instead of blocking it.

When a `revise` step fires on a non-streamed chat answer, the backend that wrote it is shown the
conversation, its answer and the policy's constitution, asked for a critique, then for a rewrite.
The rewrite goes through the whole output chain again; only an answer that no blocking or revise
step fires on is released. Anything else — the rewrite still fires after `max_revisions` rounds,
the backend fails, the time budget runs out — leaves the choice blocked, exactly as `block` would.
Each released rewrite is stored as a (prompt, rejected, chosen) triple: training data for DPO.

Streams cannot be revised (the client already holds part of the answer), so there a `revise` step
blocks; the chain treats a firing `revise` step as blocking, and only this module lifts that.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog

from guardproxy.audit.preferences import ChatTurn, Preference
from guardproxy.audit.records import Outcome
from guardproxy.backends.base import Backend
from guardproxy.core import JSON, Context
from guardproxy.errors import AuditUnavailable, GuardproxyError
from guardproxy.policies.chain import StepResult, Verdict
from guardproxy.policies.operators import redact_all
from guardproxy.policies.schema import PRINCIPLES_PLACEHOLDER, Constitution
from guardproxy.proxy.exchange import Exchange
from guardproxy.proxy.walker import Slot

log = structlog.get_logger(__name__)

# Request fields that would change what the critique/rewrite calls return or how: they ask for one plain answer.
_DROPPED_FIELDS = frozenset(
    {"stream", "stream_options", "n", "tools", "tool_choice", "functions", "function_call", "response_format"}
    | {"logprobs", "top_logprobs", "parallel_tool_calls", "audio", "modalities", "prediction"}
)


class PreferenceWriter(Protocol):
    def add_preference(self, pref: Preference) -> int: ...


class RevisionFailed(Exception):
    """The backend's critique or rewrite was unusable (no text in the answer)."""


@dataclass(frozen=True, slots=True)
class Revision:
    text: str  # the released rewrite
    verdict: Verdict  # the output chain's verdict on it (not blocking)
    critique: str


class PreferenceRecorder:
    """Writes triples off the event loop to the app's audit sink (which scrubs them, then stores them)."""

    def __init__(self, writer: PreferenceWriter) -> None:
        self._writer = writer

    async def record(self, pref: Preference) -> None:
        try:
            await asyncio.to_thread(self._writer.add_preference, pref)
        except (sqlite3.Error, OSError, RuntimeError, AuditUnavailable) as exc:  # AuditUnavailable: PostgreSQL down
            # The rewrite passed every check: losing its training triple is no reason to withhold it.
            log.error("preference_store_failed", request_id=pref.request_id, error=repr(exc))


async def revise_choice(
    ex: Exchange, slots: Sequence[Slot], verdicts: Sequence[Verdict], recorder: PreferenceRecorder
) -> list[Verdict] | None:
    """Rewrite the content of one checked choice whose only block is a `revise` step.

    Returns the verdicts with the content's replaced by the rewrite's (the slot now holds the rewrite),
    or None when the choice must stay blocked (or nothing asked for a revision).
    """
    target = _revisable(ex, slots, verdicts)
    constitution = ex.rt.policy.constitution
    if target is None or constitution is None:
        return None
    index, fired = target
    slot = slots[index]
    rejected = slot.text
    try:
        async with asyncio.timeout(constitution.timeout_s):
            revision = await _revise(ex, rejected, constitution)
    except TimeoutError:
        log.warning("revision_timeout", request_id=ex.request_id, after_s=constitution.timeout_s)
        return None
    except (GuardproxyError, RevisionFailed) as exc:
        log.warning("revision_failed", request_id=ex.request_id, error=repr(exc))
        return None
    if revision is None:
        return None
    slot.set(revision.text)
    if ex.outcome == Outcome.ALLOWED:
        ex.outcome = Outcome.REVISED
    pref = Preference(
        request_id=ex.request_id,
        ts=time.time(),
        model=ex.model,
        step=fired.step.name,
        prompt=_conversation(ex.body),
        # Only what redact/anonymize steps found is removed: the rejected text must keep what the revise step
        # objected to, or the pair teaches nothing. The sink scrubs PII patterns from all of it on top.
        rejected=redact_all(rejected, verdicts[index].edits),
        chosen=redact_all(revision.text, revision.verdict.edits),
        critique=revision.critique,
    )
    await recorder.record(pref)
    return [revision.verdict if i == index else v for i, v in enumerate(verdicts)]


def _revisable(ex: Exchange, slots: Sequence[Slot], verdicts: Sequence[Verdict]) -> tuple[int, StepResult] | None:
    """The content slot to rewrite and the revise step that fired on it, if revising can save the choice."""
    if ex.kind != "chat" or ex.stream:
        return None
    blocking = [(i, v.blocked_by) for i, v in enumerate(verdicts) if v.blocked_by is not None]
    if len(blocking) != 1:
        return None
    [(index, fired)] = blocking
    slot = slots[index]
    # Tool-call arguments are not prose a critique could fix; a failed step (ran=False) is an error, not a finding.
    if (
        fired.step.action != "revise"
        or not fired.ran
        or slot.role != "assistant"
        or not slot.path.endswith(".message.content")
    ):
        return None
    # fold() names only the first blocking step: a later `block` (or a revise step that failed) still blocks.
    if any(r.blocks and (r.step.action != "revise" or not r.ran) for r in verdicts[index].results):
        return None
    return index, fired


async def _revise(ex: Exchange, answer: str, constitution: Constitution) -> Revision | None:
    backend = ex.rt.backends[ex.backend]
    conversation: list[JSON] = list(ex.body["messages"])
    principles = "\n".join(f"{n}. {p.strip()}" for n, p in enumerate(constitution.principles, start=1))
    critique_prompt = constitution.critique_prompt.replace(PRINCIPLES_PLACEHOLDER, principles)
    for round_number in range(1, constitution.max_revisions + 1):
        asked = [*conversation, {"role": "assistant", "content": answer}, {"role": "user", "content": critique_prompt}]
        critique = await _ask(ex, backend, asked)
        asked += [{"role": "assistant", "content": critique}, {"role": "user", "content": constitution.revision_prompt}]
        answer = await _ask(ex, backend, asked)
        verdict = await ex.chains.output.check(
            answer, Context(ex.request_id, "output", "assistant", ex.model, ex.body, ex.client)
        )
        ex.add([verdict])
        if verdict.blocked_by is None:
            return Revision(answer, verdict, critique)
        log.info(
            "revision_still_fires", request_id=ex.request_id, round=round_number, step=verdict.blocked_by.step.name
        )
    return None


async def _ask(ex: Exchange, backend: Backend, messages: list[JSON]) -> str:
    body = {k: v for k, v in ex.body.items() if k not in _DROPPED_FIELDS}
    body["messages"] = messages
    response = await backend.complete("chat/completions", body)
    try:
        content = response["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise RevisionFailed("the backend's answer has no choices[0].message.content") from None
    if not isinstance(content, str) or not content.strip():
        raise RevisionFailed("the backend answered with no text")
    return content.strip()


def _conversation(body: JSON) -> tuple[ChatTurn, ...]:
    turns: list[ChatTurn] = []
    for message in body.get("messages") or ():
        content = message.get("content")
        if isinstance(content, list):
            content = "\n".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
        if isinstance(content, str) and content:
            turns.append(ChatTurn(str(message.get("role", "user")), content))
    return tuple(turns)
