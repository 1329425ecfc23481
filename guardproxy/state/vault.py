"""The anonymize vault: a conversation's placeholders, kept between its turns for `state.conversation_ttl_s`.

`Vault` is the storage seam, with two implementations: `MemoryVault` here (the embedded default, one
process) and `RedisVault` (`state/redis_vault.py`, shared by replicas). `Conversations` is the one place
that decides, per request, which conversation it joins (`state/conversation.py`), fills the request's
`MemoryScope` from the vault, issues new placeholders through it and links the next turn — and what a
vault failure does (`state.on_error`).

Placeholders are issued by the vault, not by the request: two replicas serving turns of one conversation at
the same moment still give each value one placeholder and each placeholder one value.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from guardproxy.policies.operators import MemoryScope
from guardproxy.state.conversation import ConversationRef
from guardproxy.state.failure import StateFailures, StateStoreError

# Conversations (and history links) one process keeps; past it, expired ones are dropped, then the oldest.
MAX_MEMORY_CONVERSATIONS = 100_000
_V = TypeVar("_V")


@dataclass(frozen=True, slots=True)
class Sensitive:
    """A value an anonymize step found: its label and the original text."""

    label: str
    original: str


@dataclass(frozen=True, slots=True)
class Placeholder:
    placeholder: str
    label: str
    original: str


class Vault(Protocol):
    async def open(self, conversation: str, link: str | None) -> tuple[str, list[Placeholder]]:
        """The conversation `link` points at (else `conversation` itself) and the placeholders it holds.
        Refreshes its TTL. StateStoreError when the store does not answer."""
        ...

    async def issue(self, conversation: str, values: Sequence[Sensitive]) -> list[str]:
        """One placeholder per value, in order: the one it already has in the conversation, else the next
        number of its label. Atomic: concurrent requests of one conversation never get clashing numbers."""
        ...

    async def link(self, link: str, conversation: str) -> None:
        """Make the history digest `link` (the next turn's) find `conversation`, for the TTL."""
        ...

    async def aclose(self) -> None: ...


class MemoryVault:
    """In-process: conversations live in this process only (each replica on its own)."""

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        self._scopes: dict[str, tuple[float, MemoryScope]] = {}
        self._links: dict[str, tuple[float, str]] = {}

    async def open(self, conversation: str, link: str | None) -> tuple[str, list[Placeholder]]:
        now = self._clock()
        if link is not None:
            linked = self._links.get(link)
            if linked is not None and now < linked[0]:
                conversation = linked[1]
        scope = self._scope(conversation, now)
        return conversation, [Placeholder(p, label, original) for p, label, original in scope.entries()]

    async def issue(self, conversation: str, values: Sequence[Sensitive]) -> list[str]:
        scope = self._scope(conversation, self._clock())
        return [scope.placeholder_for(v.label, v.original) for v in values]

    async def link(self, link: str, conversation: str) -> None:
        now = self._clock()
        self._links[link] = (now + self._ttl_s, conversation)
        self._links = _bounded(self._links, now)

    async def aclose(self) -> None:
        self._scopes.clear()
        self._links.clear()

    def _scope(self, conversation: str, now: float) -> MemoryScope:
        held = self._scopes.get(conversation)
        scope = held[1] if held is not None and now < held[0] else MemoryScope()
        self._scopes[conversation] = (now + self._ttl_s, scope)  # every turn renews the TTL
        self._scopes = _bounded(self._scopes, now)
        return scope


def _bounded(entries: dict[str, tuple[float, _V]], now: float) -> dict[str, tuple[float, _V]]:
    """Past the cap: drop the expired, then the least recently renewed down to 90% of the cap (amortized: a
    full map is trimmed once per tenth of the cap's inserts, not on every insert)."""
    if len(entries) <= MAX_MEMORY_CONVERSATIONS:
        return entries
    alive = {k: v for k, v in entries.items() if now < v[0]}
    keep = MAX_MEMORY_CONVERSATIONS * 9 // 10
    if len(alive) > keep:
        alive = dict(sorted(alive.items(), key=lambda kv: kv[1][0])[-keep:])
    return alive


@dataclass(slots=True)
class OpenConversation:
    """One request's view of its conversation. `conversation` None: the placeholders stay in the request
    (not a conversation, no anonymize step, or the vault failed open)."""

    scope: MemoryScope
    conversation: str | None
    ref: ConversationRef | None = None


class Conversations:
    """Per request: open the conversation, issue placeholders, link the next turn (see the module doc)."""

    def __init__(self, vault: Vault, failures: StateFailures) -> None:
        self.vault = vault
        self._failures = failures

    async def open(self, ref: ConversationRef | None, request_id: str) -> OpenConversation:
        """`ref` None: the request keeps its placeholders to itself and the vault is not asked."""
        if ref is None or (ref.explicit is None and not ref.history):
            return OpenConversation(MemoryScope(), None)
        if ref.explicit is None and ref.earlier is None:  # a first turn: nothing to load, no round trip
            return OpenConversation(MemoryScope(), f"c:{request_id}", ref)
        try:
            conversation, held = await self.vault.open(ref.explicit or f"c:{request_id}", ref.earlier)
        except StateStoreError as exc:
            self._failures.handle("anonymize vault", exc)
            return OpenConversation(MemoryScope(), None)
        scope = MemoryScope()
        for p in held:
            scope.learn(p.placeholder, p.label, p.original)
        return OpenConversation(scope, conversation, ref)

    async def issue(self, opened: OpenConversation, values: Sequence[Sensitive]) -> None:
        """Placeholders for `values` from the vault, learnt by the request's scope (apply_edits then finds them)."""
        if opened.conversation is None or not values:
            return
        unique = list(dict.fromkeys(values))
        try:
            placeholders = await self.vault.issue(opened.conversation, unique)
        except StateStoreError as exc:
            self._failures.handle("anonymize vault", exc)
            opened.conversation = None  # fail open: this request numbers its own placeholders
            return
        for value, placeholder in zip(unique, placeholders, strict=True):
            opened.scope.learn(placeholder, value.label, value.original)

    async def finish(self, opened: OpenConversation, answer: str | None) -> None:
        """After the answer: link the history the next turn will send to this conversation. Never raises (the
        answer is delivered already); a failure is logged and the next turn starts a new conversation."""
        if opened.conversation is None or opened.ref is None or answer is None or not len(opened.scope):
            return  # nothing to carry over: a later turn that anonymizes starts its conversation then
        link = opened.ref.next_turn(answer)
        if link is None:
            return
        try:
            await self.vault.link(link, opened.conversation)
        except StateStoreError as exc:
            self._failures.note("anonymize vault link (the next turn starts a new conversation)", exc)
