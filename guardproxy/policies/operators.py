"""Operators turn a verdict's edits into new text (presidio's split of detection from action).

`redact` replaces a span with `[LABEL]`. `anonymize` replaces it with a reversible placeholder
`[LABEL_n]` held in a scope (the placeholders of one conversation, as this request sees them); `restore`
puts the originals back into the answer after the output chain has passed it.

Where a conversation's placeholders live between turns (in-process, or Redis for replicas) is the `Vault`
of `guardproxy/state/vault.py`; a request works on a `MemoryScope` filled from it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

from guardproxy.policies.chain import Edit

_PLACEHOLDER = re.compile(r"\[([A-Z][A-Z0-9_]*?)_\d+\]")
# A possibly unfinished placeholder at the very end of a text: held back in streams.
_PARTIAL_PLACEHOLDER = re.compile(r"\[[A-Z0-9_]{0,40}$")
_NUMBER = re.compile(r"_(\d+)\]$")


class VaultScope(Protocol):
    def placeholder_for(self, label: str, original: str) -> str: ...

    def original_of(self, placeholder: str) -> str | None: ...

    def issued(self, label: str) -> bool:
        """Whether this scope made placeholders of `label` (an unknown `[LABEL_n]` of such a label is invented)."""
        ...

    def __len__(self) -> int: ...


class MemoryScope:
    """Placeholders of one scope. The same original value always gets the same placeholder; a new value of a
    label gets the next number: `[EMAIL_ADDRESS_1]`, `[EMAIL_ADDRESS_2]`. (The Redis vault applies this
    rule atomically in Lua, `state/redis_vault.py`; tests/test_state.py holds both to the same cases.)"""

    __slots__ = ("_by_original", "_by_placeholder", "_counts")

    def __init__(self) -> None:
        self._by_original: dict[tuple[str, str], str] = {}
        self._by_placeholder: dict[str, str] = {}
        self._counts: dict[str, int] = {}

    def placeholder_for(self, label: str, original: str) -> str:
        key = (label, original)
        found = self._by_original.get(key)
        if found is not None:
            return found
        n = self._counts.get(label, 0) + 1
        self._counts[label] = n
        placeholder = f"[{label}_{n}]"
        self._by_original[key] = placeholder
        self._by_placeholder[placeholder] = original
        return placeholder

    def learn(self, placeholder: str, label: str, original: str) -> None:
        """Adopt a placeholder issued elsewhere (an earlier turn, another replica); later numbers follow it."""
        self._by_original[(label, original)] = placeholder
        self._by_placeholder[placeholder] = original
        number = _NUMBER.search(placeholder)
        n = int(number.group(1)) if number else 0
        self._counts[label] = max(self._counts.get(label, 0), n)

    def original_of(self, placeholder: str) -> str | None:
        return self._by_placeholder.get(placeholder)

    def entries(self) -> list[tuple[str, str, str]]:
        """(placeholder, label, original) of every value, in the order they were issued."""
        return [(p, label, original) for (label, original), p in self._by_original.items()]

    def issued(self, label: str) -> bool:
        return label in self._counts

    def __len__(self) -> int:
        return len(self._by_placeholder)


def apply_edits(text: str, edits: Sequence[Edit], scope: VaultScope | None) -> str:
    """Replace non-overlapping, sorted edits. Without a scope, anonymize degrades to redact."""
    if not edits:
        return text
    out: list[str] = []
    pos = 0
    for e in edits:
        out.append(text[pos : e.start])
        if e.action == "anonymize" and scope is not None:
            out.append(scope.placeholder_for(e.label, text[e.start : e.end]))
        elif e.action == "escape":
            out.append(escape_controls(text[e.start : e.end]))
        elif e.action == "strip":
            pass
        else:
            out.append(f"[{e.label}]")
        pos = e.end
    out.append(text[pos:])
    return "".join(out)


# C0 controls but tab and newline, DEL and the C1 range: what a terminal may act on instead of showing.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def escape_controls(text: str) -> str:
    """Control characters spelt out as `\\xNN`: a terminal or log viewer shows the sequence, never runs it."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group(0)):02x}", text)


def redact_all(text: str, edits: Sequence[Edit]) -> str:
    """The audit view: every edit becomes `[LABEL]`, no placeholder or original is kept."""
    return apply_edits(text, edits, None)


def restore(text: str, scope: VaultScope | None) -> str:
    if scope is None or not len(scope) or "[" not in text:
        return text

    def _sub(m: re.Match[str]) -> str:
        original = scope.original_of(m.group(0))
        if original is not None:
            return original
        # A placeholder of a kind this request anonymized but not one it issued: the model invented or
        # altered it ("The capital of France is [LOCATION_2]."). Passing it on would present it as content;
        # it becomes the redaction mark instead, which says a value is missing.
        return f"[{m.group(1)}]" if scope.issued(m.group(1)) else m.group(0)

    return _PLACEHOLDER.sub(_sub, text)


def split_partial_placeholder(text: str, scope: VaultScope | None) -> tuple[str, str]:
    """Split `text` into (ready, held) where `held` may be the start of a placeholder."""
    if scope is None or not len(scope):
        return text, ""
    m = _PARTIAL_PLACEHOLDER.search(text)
    if m is None:
        return text, ""
    return text[: m.start()], text[m.start() :]
