"""Blocklist: literal phrases (case-insensitive, whole words) and regex patterns from the policy.

Matching is on what a reader sees (`Normalizer.readable`): `internal\\u0020use only` in a tool
call's JSON arguments and "internal use only" spelt with a Cyrillic "o" both read "internal use only".
Phrases are normalised the same way, so one written with accents or in another script still
matches itself. Regex patterns also run on the text as given, for patterns that target what the
normalisation maps away (a Cyrillic word, an invisible character).
"""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from guardproxy.core import Context, Detection, Span
from guardproxy.detectors.base import DetectorDeps
from guardproxy.detectors.configs import BlocklistConfig
from guardproxy.detectors.normalize import Normalizer
from guardproxy.errors import PolicyInvalid


def _word_pattern(words: list[str]) -> re.Pattern[str] | None:
    """One alternation of all phrases, longest first so that "foo bar" wins over "foo".

    A phrase matches only as whole words: the edges of a phrase that begin or end with a word
    character must not touch another word character. Inner whitespace matches any run of it.
    """
    phrases = sorted({w.strip() for w in words if w.strip()}, key=len, reverse=True)
    if not phrases:
        return None
    parts = []
    for phrase in phrases:
        body = r"\s+".join(re.escape(piece) for piece in phrase.split())
        head = r"(?<!\w)" if re.match(r"\w", phrase) else ""
        tail = r"(?!\w)" if re.search(r"\w$", phrase) else ""
        parts.append(head + body + tail)
    return re.compile("|".join(parts), re.IGNORECASE)


class BlocklistDetector:
    scope: Literal["text", "request"] = "text"
    # Pure CPU, microseconds, never awaits: the chain calls it in place instead of as a task.
    inline: ClassVar[bool] = True  # InlineDetector

    def __init__(self, name: str, config: BlocklistConfig, deps: DetectorDeps) -> None:
        self.name = name
        self._label = config.label
        self._normalizer = Normalizer()
        compiled: list[re.Pattern[str]] = []
        for index, pattern in enumerate(config.patterns):
            try:
                compiled.append(re.compile(pattern))
            except re.error as exc:
                raise PolicyInvalid(f"detectors.{name}.patterns[{index}]: invalid regex ({exc})") from exc
        self._patterns: tuple[re.Pattern[str], ...] = tuple(compiled)
        words = _word_pattern([self._normalizer.readable(word).text for word in config.words])
        self._on_view = self._patterns if words is None else (*self._patterns, words)

    async def detect(self, text: str, ctx: Context) -> Detection:
        view = self._normalizer.readable(text)
        found = {view.original_span(*m.span()) for p in self._on_view for m in p.finditer(view.text)}
        if view.changed:
            found.update(m.span() for p in self._patterns for m in p.finditer(text))
        spans = [Span(start, end, self._label) for start, end in sorted(found) if end > start]
        if not spans:
            return Detection(score=0.0)
        return Detection(
            score=1.0,
            labels=(self._label,),
            spans=tuple(spans),
            explanation=f"{len(spans)} blocklisted match(es)",
        )

    async def aclose(self) -> None:
        return None
