"""The streaming output guard: a byte reaches the client only after every output step saw it.

Per choice, text is kept as `pending` until a release point (the last sentence/line boundary,
or `len(pending) - holdback` when there is none). The output chain then checks a little already
released context plus `pending` up to its last whole word; the part up to the release point is
redacted, its anonymize placeholders restored, and released. A span still open at the release point,
or a placeholder that may be unfinished, moves the release point back before it.

Why not the word still being written: upstream tokens start with their whitespace, so the delta that
brings a boundary usually brings the first piece of the next word too ("\n    retu"). A classifier shown
that fragment judges a text nobody will read: with the v8 moderation classifier, 33 of 40 blind code
answers (tests/data/code_answers_fresh.jsonl) were stopped when streamed with it, 14 without it, and 7
when sent whole (session 13, /tmp probe replaying the relay's windows). The fragment is after the release
point, so it is judged whole, in the next window. When the last whitespace lies before the release point
(a hold-back cut inside a long run without spaces), all of `pending` is shown, so that a span crossing the
release point is still seen whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from guardproxy.core import Context
from guardproxy.policies.chain import Chain, Edit, StepResult
from guardproxy.policies.operators import VaultScope, apply_edits, restore

_BOUNDARY = re.compile(r"[.!?\u3002\uff01\uff1f][\"')\]\u201d\u2019]*\s+|\n")
_PARTIAL_PLACEHOLDER = re.compile(r"\[[A-Z0-9_]{0,40}$")


class OutputBlocked(Exception):
    def __init__(self, result: StepResult) -> None:
        super().__init__(result.step.name)
        self.result = result


@dataclass(slots=True)
class StreamGuard:
    chain: Chain
    ctx: Context
    scope: VaultScope | None
    holdback: int
    context_chars: int
    # Release nothing before the end (an answer that must be validated whole before the client sees it).
    hold_all: bool = False
    # Release nothing before the checked text holds this many characters: a classifier shown only "Slice it:"
    # (the first line of a code answer) scored it violence 0.53, over its operating point; with the code after
    # it, 0.13 (guard-classifier v8, session 13).
    min_window: int = 0
    results: list[StepResult] = field(default_factory=list)
    audit_parts: list[str] = field(default_factory=list)
    _pending: str = ""
    _context: str = ""
    _released: int = 0

    @property
    def checks_anything(self) -> bool:
        return bool(self.chain.text_steps)

    async def feed(self, delta: str) -> str:
        """Take an upstream delta; return the text that may be sent now ('' if none)."""
        self._pending += delta
        cut = self._release_point()
        return await self._release(cut, final=False) if cut else ""

    async def finish(self) -> str:
        """Upstream is done with this choice: check and release everything left."""
        return await self._release(len(self._pending), final=True) if self._pending else ""

    def _release_point(self) -> int:
        pending = self._pending
        if self.hold_all:
            return 0
        if not self.checks_anything:
            return self._before_partial_placeholder(len(pending))
        cut = 0
        # pending is bounded by one sentence or the hold-back, so a full scan stays cheap.
        for m in _BOUNDARY.finditer(pending):
            cut = m.end()
        if cut == 0 and len(pending) > self.holdback:
            cut = len(pending) - self.holdback
        if self._released + cut < self.min_window:
            return 0
        if cut and self.chain.holdbacks:  # a link still being written is judged whole (url_guard)
            cut = self.chain.unfinished_from(pending[:cut])
        return self._before_partial_placeholder(cut)

    def _before_partial_placeholder(self, cut: int) -> int:
        if cut and self.scope is not None and len(self.scope):
            partial = _PARTIAL_PLACEHOLDER.search(self._pending, 0, cut)
            if partial is not None:
                return partial.start()
        return cut

    def _checked_end(self, cut: int) -> int:
        """Where the text shown to the output steps ends: after the last whole word of `pending`, unless
        that would end before the release point."""
        pending = self._pending
        end = len(pending)
        while end and not pending[end - 1].isspace():
            end -= 1
        return end if end >= cut and end else len(pending)

    async def _release(self, cut: int, *, final: bool) -> str:
        offset = len(self._context)
        shown = self._pending if final else self._pending[: self._checked_end(cut)]
        verdict = await self.chain.check(self._context + shown, self.ctx) if self.checks_anything else None
        edits: list[Edit] = []
        if verdict is not None:
            self.results.extend(verdict.results)
            if verdict.blocked_by is not None:
                raise OutputBlocked(verdict.blocked_by)
            for e in verdict.edits:
                start, end = max(e.start - offset, 0), e.end - offset
                if end <= 0:
                    continue  # wholly inside already released context
                if not final and start < cut < end:
                    cut = start  # never release a prefix of a span that is still open
                edits.append(Edit(start, end, e.label, e.action))
        part = self._pending[:cut]
        self._pending = self._pending[cut:]
        self._released += cut
        self._context = (self._context + part)[-self.context_chars :] if self.context_chars else ""
        # On output both redact and anonymize become `[LABEL]`: a placeholder would leak nothing
        # but could never be restored for the client either.
        released = apply_edits(part, [e for e in edits if e.end <= cut], None)
        self.audit_parts.append(released)
        return restore(released, self.scope)
