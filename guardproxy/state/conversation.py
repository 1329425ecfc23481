"""Which conversation a request belongs to, so that its anonymize placeholders outlive one request.

A placeholder issued in turn 1 (`[EMAIL_ADDRESS_1]`) must mean the same value in turn 3, on any replica.
A request names its conversation in one of two ways:

1. **`x-guardproxy-conversation: <id>`** (any string the client picks, e.g. its own chat id). Explicit and
   exact: the recommended way, and the only one for `/v1/completions`.
2. **The conversation's history** (chat, no header): a chat client resends the whole history each turn, so
   turn N+1 starts with turn N's messages and the answer it got. After each answer the proxy records a
   digest of (messages + the delivered answer of choice 0); the next turn's messages up to their last
   assistant message have that same digest and find the conversation. A first turn (no assistant message)
   or a history the proxy never answered (edited, or older than the TTL) starts a new conversation.
   Digests cover each message's role and text (string content or the text of its parts), so SDK details
   such as `refusal: null` or a tool call's id do not matter.

Either way the id is bound to the caller (the API key; with `auth.mode: none`, a hash of the Authorization
header): another key cannot reach a conversation by guessing its id. A history digest includes the model's
own answers, which another client cannot reproduce without knowing the conversation (and so its values)
already. Requests with neither (embeddings, moderations, a completion without the header) keep their
placeholders to themselves.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

CONVERSATION_HEADER = "x-guardproxy-conversation"
_ROLE_END, _MESSAGE_END = b"\x1f", b"\x1e"


@dataclass(frozen=True, slots=True)
class ConversationRef:
    """How the vault finds a request's conversation. `explicit` wins over `earlier`; neither: a new one."""

    tenant: str  # the caller: conversations of different keys never meet
    explicit: str | None = None  # digest of the header's id
    earlier: str | None = None  # digest of the history up to its last assistant message (chat, turn 2+)
    history: tuple[bytes, ...] = ()  # every message, encoded; with the answer, the next turn's `earlier`

    def next_turn(self, answer: str) -> str | None:
        """The digest the next turn's history will have, given the answer delivered now (None: explicit id or
        not a chat, nothing to link)."""
        if self.explicit is not None or not self.history:
            return None
        return _digest(self.tenant, (*self.history, _encode("assistant", answer)))


@dataclass(frozen=True, slots=True)
class ConversationKey:
    """What the app knows of a request's conversation before the body is read: who asks, and its header."""

    tenant: str
    header: str | None


def tenant_of(key_hash: str | None, authorization: str | None) -> str:
    """The caller as the vault sees it: the key's hash, or (keys off) a hash of the Authorization header."""
    if key_hash is not None:
        return "key:" + key_hash
    return "auth:" + hashlib.sha256((authorization or "").encode()).hexdigest()


def conversation_of(kind: str, body: Any, header: str | None, tenant: str) -> ConversationRef:
    """The request's conversation, read before anything rewrites the body (anonymize, the canary)."""
    if header is not None and header.strip():
        return ConversationRef(tenant, explicit=_digest(tenant, (header.strip().encode(),)))
    messages = body.get("messages") if kind == "chat" and isinstance(body, dict) else None
    if not isinstance(messages, list):
        return ConversationRef(tenant)
    encoded = tuple(
        _encode(str(m.get("role", "")).lower(), _text(m.get("content"))) for m in messages if isinstance(m, dict)
    )
    roles = [str(m.get("role", "")).lower() for m in messages if isinstance(m, dict)]
    last_answer = max((i for i, role in enumerate(roles) if role == "assistant"), default=None)
    earlier = None if last_answer is None else _digest(tenant, encoded[: last_answer + 1])
    return ConversationRef(tenant, earlier=earlier, history=encoded)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _encode(role: str, text: str) -> bytes:
    return role.encode() + _ROLE_END + text.encode("utf-8", "surrogatepass") + _MESSAGE_END


def _digest(tenant: str, parts: tuple[bytes, ...]) -> str:
    h = hashlib.sha256(tenant.encode() + b"\x00")
    for part in parts:
        h.update(part)
    return h.hexdigest()
