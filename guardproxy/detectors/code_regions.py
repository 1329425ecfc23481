"""Where a text is code, so that NER does not read identifiers as names or places.

Answers about programming are full of capitalised identifiers: spaCy's NER took `email).first`,
`Model.objects.filter` and a function signature's arguments for people, and output redaction then
mangled the code the user asked for (`def [LOCATION], process_type=None):`). Code regions are:
- fenced blocks (```` ``` ```` or `~~~`, to the closing fence or the end of the text: a stream's
  window may hold only the opening fence);
- inline code between backticks on one line;
- lines that read as code: indented by four spaces or a tab with code punctuation (`=`, brackets,
  `;`, `a.b`, `->`; an indented address block in a letter is not code), or opening with a keyword
  (`def`, `class`, `import`, `return`, ...), or ending with `{`, `;` or `):`.

A name-entity span is then not reported when it lies in a code region, unless it sits inside a
quoted string literal there (`author = "Jane Doe"` is still personal data), and never when its own
text is an identifier (`a.b`, `f(`, `x_y`, `a=b`): names do not contain those characters.
Only names and places are filtered (`CODE_SENSITIVE_LABELS`): street addresses ("p.o. box 178") and
pattern findings (emails, phones, cards, keys) are not affected; a secret in code is still a secret.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_FENCE = re.compile(r"^[ \t]*(```|~~~)[^\n]*\n.*?(?:^[ \t]*\1[ \t]*$|\Z)", re.MULTILINE | re.DOTALL)
_INLINE = re.compile(r"`[^`\n]+`")
_CODE_LINE = re.compile(
    r"^(?:(?:    |\t)(?![ \t]*(?:[-*+]|\d+[.)])[ \t])[^\n]*(?:[=(){}\[\];]|\w\.[a-z_]|->|::)[^\n]*"
    r"|[ \t]*(?:def|class|import|from\s+\S+\s+import|return|async\s+def|const|let|var|function|public|private"
    r"|package|func|fn|#include|SELECT|INSERT|UPDATE)\b[^\n]*"
    r"|[^\n]*(?:[{;]|\):)[ \t]*)$",
    re.MULTILINE,
)
CODE_SENSITIVE_LABELS = frozenset({"PERSON", "LOCATION", "NRP", "ORGANIZATION"})
_STRING_LITERAL = re.compile(r"\"[^\"\n]*\"|'[^'\n]*'")
# Initials ("J.R.R. Tolkien") keep a capital after the dot; members (`os.kill`) do not. A call opens a
# bracket right after a word (`Include(i`); a name may carry one after a space ("Cyprus (Greek)").
_IDENTIFIER = re.compile(r"\w\.[a-z_]|\w\(|\)\.|[_=<>{}\[\];]")


def code_regions(text: str) -> list[tuple[int, int]]:
    """Character ranges of `text` that are code, possibly overlapping, in no particular order."""
    if "`" not in text and "~~~" not in text and not _CODE_LINE.search(text):
        return []
    regions = [m.span() for m in _FENCE.finditer(text)]
    regions += [m.span() for m in _INLINE.finditer(text)]
    regions += [m.span() for m in _CODE_LINE.finditer(text)]
    return regions


def _literals(text: str, region: tuple[int, int]) -> list[tuple[int, int]]:
    start, end = region
    return [(start + a, start + b) for a, b in (m.span() for m in _STRING_LITERAL.finditer(text[start:end]))]


def is_code_reference(text: str, start: int, end: int, regions: Sequence[tuple[int, int]]) -> bool:
    """True when the span `text[start:end]` is an identifier or lies in code outside a string literal."""
    if _IDENTIFIER.search(text[start:end]):
        return True
    for region in regions:
        if region[0] <= start and end <= region[1]:
            inside_literal = any(a < start and end < b for a, b in _literals(text, region))
            if not inside_literal:
                return True
    return False
