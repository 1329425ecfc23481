"""What an upstream says in an error reaches the client only after the output chain checked it.

An upstream under an attacker's control (or one that echoes the prompt in "invalid value: ...") can put
personal data, blocked text or injected instructions into the `message` of a 4xx body or of an SSE
`error` event, which clients show to users and log. So the error's fields are checked like an answer:
- `message`: blocked by a step -> our own generic message; redacted spans -> the redacted text;
- `type`, `code`, `param`: machine identifiers (`invalid_request_error`, `context_length_exceeded`,
  `messages[0].content`); kept only when identifier-shaped and no output step fires on them, else dropped.
The HTTP status is always kept, so the SDK still raises the right exception class.
"""

from __future__ import annotations

import asyncio
import re

from guardproxy.core import Context
from guardproxy.errors import UpstreamErrorFields, UpstreamStatus
from guardproxy.policies.operators import apply_edits, restore
from guardproxy.proxy.exchange import Exchange

# OpenAI's error types, codes and params: snake_case names and JSON paths, no spaces, no "@", no "-".
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*|\[\d{1,4}\]){0,8}")
_MAX_IDENTIFIER = 80


async def screen_upstream_error(ex: Exchange, exc: BaseException) -> None:
    """Set `exc.forwarded` to what of the upstream's error may reach the client (no-op for other errors)."""
    if not isinstance(exc, UpstreamStatus) or exc.upstream is None or exc.forwarded is not None:
        return
    said = exc.upstream
    fields = {
        "message": said.message,
        "type": _shaped(said.type),
        "code": _shaped(said.code) if isinstance(said.code, str) else None,
        "param": _shaped(said.param),
    }
    texts = {name: text for name, text in fields.items() if text is not None}
    ctx = Context(ex.request_id, "output", "assistant", ex.model, ex.body, ex.client)
    verdicts = dict(
        zip(texts, await asyncio.gather(*(ex.chains.output.check(t, ctx) for t in texts.values())), strict=True)
    )
    ex.add(verdicts.values())
    passed = {name: text for name, text in texts.items() if verdicts[name].blocked_by is None}
    message = passed.get("message")
    if message is not None:
        # Placeholders the input chain put into the prompt are restored, as in an answer.
        message = restore(apply_edits(message, verdicts["message"].edits, None), ex.scope)
    # An identifier with a span to redact is not an identifier: dropped rather than shown half-redacted.
    kept = {name: text for name, text in passed.items() if name != "message" and not verdicts[name].edits}
    code: str | int | None = kept.get("code")
    if isinstance(said.code, int) and 100 <= said.code <= 599:
        code = said.code  # a status-like number; any other number could carry digits (an SSN without dashes)
    exc.forwarded = UpstreamErrorFields(message, kept.get("type"), code, kept.get("param"))


def _shaped(text: str | None) -> str | None:
    return text if text is not None and len(text) <= _MAX_IDENTIFIER and _IDENTIFIER.fullmatch(text) else None
