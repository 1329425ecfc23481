"""Structured PII and secrets found by regexes and then validated (Luhn, IBAN mod-97, SSN rules).

`find_pii` / `redact_text` are plain functions as well: the audit log uses them as a last
safety net before writing text. Cheap substring tests decide which regexes run at all, so a
prompt with no digits and no "@" costs almost nothing.

The regexes match what a reader sees (`Normalizer.readable`: JSON escapes decoded, fullwidth
forms, look-alikes and digits of other scripts mapped, invisible characters dropped), and the
spans are mapped back to the text given, so `jane.roe\\u0040example.org` is found and redacted
whole, escape sequence included.
"""

from __future__ import annotations

import bisect
import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import ClassVar, Literal

from guardproxy.core import Context, Detection, Span
from guardproxy.detectors.base import DetectorDeps
from guardproxy.detectors.configs import ALL_PII_ENTITIES, PiiRegexConfig
from guardproxy.detectors.normalize import Normalizer

ALL: tuple[str, ...] = ALL_PII_ENTITIES

_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-])"
)

_PHONE_INTL = re.compile(r"(?<![\w+])(?:\+|00)[1-9]\d{0,2}(?:[ .\-]?\(?\d{1,4}\)?){2,6}(?![\w-])")
_PHONE_US = re.compile(
    r"(?<![\w+-])(?:\+?1[ .\-]?)?(?:\(([2-9]\d\d)\)[ .\-]?|([2-9]\d\d)[ .\-])([2-9]\d\d)[ .\-](\d{4})(?![\w-])"
)

# Groups may be split by spaces, hyphens or dots ("4111.1111.1111.1111"); `_card_groups_ok` checks the grouping.
_CARD = re.compile(r"(?<![\w\-])(?<!\d[.,])\d(?:[ \-.]?\d){11,18}(?!\w|[.,\-]\d)")
# Issuer prefixes and the lengths their cards have (Visa, Mastercard, Amex, Diners, JCB, Discover, UnionPay).
_CARD_BRANDS: tuple[tuple[re.Pattern[str], frozenset[int]], ...] = (
    (re.compile(r"4"), frozenset({13, 16, 19})),
    (re.compile(r"5[1-5]|2[2-7]"), frozenset({16})),
    (re.compile(r"3[47]"), frozenset({15})),
    (re.compile(r"3[0689]"), frozenset({14, 16})),
    (re.compile(r"35"), frozenset(range(16, 20))),
    (re.compile(r"6(?:011|4[4-9]|5|2)"), frozenset(range(16, 20))),
    (re.compile(r"2131|1800"), frozenset({15})),
    (re.compile(r"5018|5020|5038|5893|6304|6759|676[1-3]"), frozenset(range(12, 20))),  # Maestro
)

_SSN = re.compile(r"(?<![\w\-])(\d{3})([\- ])(\d{2})\2(\d{4})(?![\w\-])")

_IBAN = re.compile(
    r"(?<![A-Za-z0-9])([A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?)(?![A-Za-z0-9])", re.IGNORECASE
)
# Lengths from the SWIFT IBAN registry; a country not listed is not reported.
_IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
    "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24,
    "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21,
    "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28,
    "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27,
    "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24,
    "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "TN": 24, "TR": 26, "UA": 29,
    "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?![\w.]|\.\d)")
_VERSION_WORD = re.compile(r"\b(?:version|ver|release|build|firmware)\s*:?\s*$", re.IGNORECASE)
_H = r"[0-9A-Fa-f]{1,4}"
_IPV6 = re.compile(
    rf"(?<![\w:.])(?:(?:{_H}:){{7}}{_H}|(?:{_H}:){{1,7}}:(?:{_H}(?::{_H}){{0,5}})?|:(?::{_H}){{1,7}})"
    rf"(?:(?<=:)\d{{1,3}}(?:\.\d{{1,3}}){{3}})?(?![\w:])"
)

# (markers, pattern): the regex runs only when one of its literal markers occurs in the text.
_SECRET_PATTERNS: tuple[tuple[tuple[str, ...], re.Pattern[str]], ...] = (
    (("sk-",), re.compile(r"\bsk-(?:proj-|svcacct-|admin-|ant-)?[A-Za-z0-9_\-]{20,}")),
    (("_live_",), re.compile(r"\b(?:sk|rk|pk)_live_[A-Za-z0-9]{16,}")),
    (("_test_",), re.compile(r"\b(?:sk|rk)_test_[A-Za-z0-9]{16,}")),
    (
        ("AKIA", "ASIA", "AGPA", "AIDA", "AROA", "ANPA", "ANVA", "AIPA"),
        re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b"),
    ),
    (("aws_secret",), re.compile(r"(?i:aws_secret_access_key)\s*[=:]\s*[\"']?([A-Za-z0-9/+=]{40})\b")),
    (("ghp_", "gho_", "ghu_", "ghs_", "ghr_"), re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,255}\b")),
    (("github_pat_",), re.compile(r"\bgithub_pat_[A-Za-z0-9_]{22,255}\b")),
    (("xox",), re.compile(r"\bxox[abposre]-[A-Za-z0-9\-]{10,}")),
    (("hooks.slack.com",), re.compile(r"https://hooks\.slack\.com/services/[A-Za-z0-9/_\-]{20,}")),
    (("AIza",), re.compile(r"\bAIza[0-9A-Za-z_\-]{35}")),
    (("hf_",), re.compile(r"\bhf_[A-Za-z]{30,}\b")),
    (("npm_",), re.compile(r"\bnpm_[A-Za-z0-9]{36}\b")),
    (("glpat-",), re.compile(r"\bglpat-[A-Za-z0-9_\-]{20,}")),
    (("eyJ",), re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}")),
    (("earer",), re.compile(r"\b[Bb]earer\s+([A-Za-z0-9._~+/\-]{16,}=*)")),
    (
        ("PRIVATE KEY",),
        re.compile(
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----"
            r"(?:[\s\S]{0,16000}?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|(?:\s*[A-Za-z0-9+/=:\-]+)*)"
        ),
    ),
)

_SCORES: dict[str, float] = {
    "EMAIL_ADDRESS": 0.95,
    "PHONE_NUMBER": 0.8,
    "CREDIT_CARD": 1.0,
    "US_SSN": 0.9,
    "IBAN_CODE": 1.0,
    "IP_ADDRESS": 0.9,
    "SECRET": 0.95,
}

_Found = Iterator[tuple[int, int]]
_DIGIT_RUN = re.compile(r"\d(?:[ \-.()/:]{0,3}\d)*")
_SEPARATORS_GONE = str.maketrans("", "", " -.()/:")
_EMAIL_LOCAL_TAIL = re.compile(r"[A-Za-z0-9._%+\-]{1,64}\Z")
_EMAIL_DOMAIN_REACH = 256


@dataclass(frozen=True, slots=True)
class _Scope:
    """Where an entity can be: a regex runs only around these places, never over all the text.

    Every number-shaped entity lies inside one run of digits joined by short separators,
    give or take a "+", "(" or an IBAN's country letters just before it.
    """

    text: str
    runs: tuple[tuple[int, int, int], ...]  # (start, end, digit count)

    @classmethod
    def of(cls, text: str) -> _Scope:
        runs = tuple(
            (found.start(), found.end(), len(found.group().translate(_SEPARATORS_GONE)))
            for found in _DIGIT_RUN.finditer(text)
        )
        return cls(text, runs)

    def search(
        self, pattern: re.Pattern[str], min_digits: int, before: int = 4, dots: int = 0
    ) -> Iterator[re.Match[str]]:
        seen: set[tuple[int, int]] = set()
        for start, end, digits in self.runs:
            if digits < min_digits or (dots and self.text.count(".", start, end) < dots):
                continue
            # +2 after the run: lookaheads must see the characters that follow it.
            for found in pattern.finditer(self.text, max(0, start - before), min(len(self.text), end + 2)):
                if found.span() not in seen:
                    seen.add(found.span())
                    yield found


def _digits(text: str) -> int:
    return sum(text.count(d) for d in "0123456789")


def _emails(scope: _Scope) -> _Found:
    # Start from each "@" and look back for the local part: no regex walks the whole text.
    text = scope.text
    at = text.find("@")
    reached = 0
    while at != -1:
        local = _EMAIL_LOCAL_TAIL.search(text, max(reached, at - 64), at)
        if local is not None:
            found = _EMAIL.search(text, local.start(), min(len(text), at + _EMAIL_DOMAIN_REACH))
            if found is not None and found.start() < at:
                yield found.span()
                reached = found.end()
        at = text.find("@", max(at + 1, reached))


def _phones(scope: _Scope) -> _Found:
    for found in scope.search(_PHONE_INTL, 7):
        if 8 <= _digits(found.group()) <= 15:
            yield found.span()
    for found in scope.search(_PHONE_US, 10):
        yield found.span()


def _luhn_ok(number: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(number)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _card_groups_ok(candidate: str) -> bool:
    """Either no separators, or one kind of separator between groups of four (Amex: 4-6-5), or
    between every digit ("4 1 1 1 ..."): spelt out to get past a pattern, not a number in prose."""
    separators = {c for c in candidate if not c.isdigit()}
    if not separators:
        return True
    if len(separators) > 1:
        return False
    groups = [len(g) for g in candidate.split(separators.pop())]
    return (
        groups in ([4, 6, 5], [4, 6, 4])
        or (all(g == 4 for g in groups[:-1]) and 1 <= groups[-1] <= 4)
        or all(g == 1 for g in groups)
    )


def _cards(scope: _Scope) -> _Found:
    for found in scope.search(_CARD, 12):
        candidate = found.group()
        number = candidate.replace(" ", "").replace("-", "").replace(".", "")
        if (
            any(prefix.match(number) and len(number) in lengths for prefix, lengths in _CARD_BRANDS)
            and _card_groups_ok(candidate)
            and _luhn_ok(number)
            and len(set(number)) > 1
        ):
            yield found.span()


def _ssns(scope: _Scope) -> _Found:
    for found in scope.search(_SSN, 9):
        area, _, group, serial = found.groups()
        if area not in ("000", "666") and not area.startswith("9") and group != "00" and serial != "0000":
            yield found.span()


def _iban_ok(candidate: str) -> bool:
    compact = candidate.replace(" ", "").upper()
    if _IBAN_LENGTHS.get(compact[:2]) != len(compact):
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _ibans(scope: _Scope) -> _Found:
    text = scope.text
    seen: set[int] = set()
    for start, _, _ in scope.runs:
        # The check digits follow the two country letters; letters may interrupt the runs after them.
        if start < 2 or not text[start - 2 : start].isalpha() or start in seen:
            continue
        seen.add(start)
        found = _IBAN.match(text, start - 2, min(len(text), start + 48))
        if found is None:
            continue
        candidate = found.group(1)
        # The greedy match may have swallowed a trailing group that is not part of the IBAN.
        while candidate and not _iban_ok(candidate):
            cut = candidate.rfind(" ")
            candidate = candidate[:cut] if cut > 4 else ""
        if candidate:
            yield found.start(1), found.start(1) + len(candidate)


def _ips(scope: _Scope) -> _Found:
    text = scope.text
    for found in scope.search(_IPV4, 4, dots=3):
        if not _VERSION_WORD.search(text, max(0, found.start() - 12), found.start()):
            yield found.span()
    if "::" in text or text.count(":") >= 7:
        for found in _IPV6.finditer(text):
            candidate = found.group()
            if candidate.count(":") >= 2 and any(c.isdigit() for c in candidate) and _is_ipv6(candidate):
                yield found.span()


def _is_ipv6(candidate: str) -> bool:
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    return True


# Documentation placeholders shaped like keys (`sk-XXXXXXXXXXXXXXXXXXXX`, `Bearer YOUR_ACCESS_TOKEN`,
# `sk-your-key-here...`): code answers are full of them, and a real key practically never contains these
# words or a run of six identical characters (a random base62 key of 40 characters: about 1 in 10,000).
_PLACEHOLDER = re.compile(r"(?i:your|here|xxxx|placeholder|dummy|redacted|changeme|insert)|(.)\1{5}")


def _secrets(scope: _Scope) -> _Found:
    for markers, pattern in _SECRET_PATTERNS:
        if not any(marker in scope.text for marker in markers):
            continue
        for found in pattern.finditer(scope.text):
            start, end = found.span(1) if pattern.groups else found.span()
            if "PRIVATE KEY" in markers or not _PLACEHOLDER.search(scope.text, start, end):
                yield start, end


_FINDERS: dict[str, Callable[[_Scope], _Found]] = {
    "EMAIL_ADDRESS": _emails,
    "PHONE_NUMBER": _phones,
    "CREDIT_CARD": _cards,
    "US_SSN": _ssns,
    "IBAN_CODE": _ibans,
    "IP_ADDRESS": _ips,
    "SECRET": _secrets,
}
# When two findings overlap, the more specific one wins (a card number is not also a phone).
_PRIORITY = ("SECRET", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "EMAIL_ADDRESS", "IP_ADDRESS", "PHONE_NUMBER")


def find_pii(
    text: str,
    entities: Iterable[str] = ALL,
    allow_list: Iterable[str] = (),
    *,
    normalizer: Normalizer | None = None,
) -> list[Span]:
    """Validated PII spans of `text` (matched on its readable form), non-overlapping and sorted by start.

    Pass a long-lived `normalizer` to reuse its cache of mapped characters; one is made otherwise.
    """
    wanted = set(entities)
    unknown = wanted - set(_FINDERS)
    if unknown:
        raise ValueError(f"unknown PII entities {sorted(unknown)}; known: {sorted(_FINDERS)}")
    allowed = {value.strip() for value in allow_list}
    view = (normalizer or Normalizer()).readable(text)
    seen = view.text
    scope = _Scope.of(seen)
    found: list[Span] = []
    for entity in _PRIORITY:
        if entity not in wanted:
            continue
        for start, end in _FINDERS[entity](scope):
            if seen[start:end] in allowed:
                continue
            if view.changed:
                start, end = view.original_span(start, end)
                if text[start:end] in allowed:
                    continue
            found.append(Span(start, end, entity, _SCORES[entity]))
    return _without_overlaps(found)


def _without_overlaps(spans: list[Span]) -> list[Span]:
    """Greedy by priority then length; kept spans stay sorted and disjoint, so two neighbours decide."""
    rank = {entity: i for i, entity in enumerate(_PRIORITY)}
    kept: list[Span] = []
    starts: list[int] = []
    for span in sorted(spans, key=lambda s: (rank[s.label], -(s.end - s.start), s.start)):
        at = bisect.bisect_left(starts, span.start)
        if at > 0 and kept[at - 1].end > span.start:
            continue
        if at < len(kept) and kept[at].start < span.end:
            continue
        kept.insert(at, span)
        starts.insert(at, span.start)
    return kept


def redact_text(text: str, spans: Iterable[Span]) -> str:
    """`text` with every span replaced by `[LABEL]`; overlapping spans merge under the first label."""
    merged: list[tuple[int, int, str]] = []
    for span in sorted(spans, key=lambda s: (s.start, -s.end)):
        if merged and span.start < merged[-1][1]:
            start, end, label = merged[-1]
            merged[-1] = (start, max(end, span.end), label)
        else:
            merged.append((span.start, span.end, span.label))
    pieces: list[str] = []
    cursor = 0
    for start, end, label in merged:
        pieces += [text[cursor:start], f"[{label}]"]
        cursor = end
    pieces.append(text[cursor:])
    return "".join(pieces)


def scrub_pii(text: str, normalizer: Normalizer | None = None) -> str:
    """Every entity of `text` replaced by its `[ENTITY]` token: the audit log's last safety net.

    Matches the readable form like the detector does, so an obfuscated value (`\\u0040`, a fullwidth "at",
    look-alike letters, dotted card groups) is scrubbed too."""
    return redact_text(text, find_pii(text, normalizer=normalizer))


class PiiRegexDetector:
    scope: Literal["text", "request"] = "text"
    # Pure CPU, microseconds, never awaits: the chain calls it in place instead of as a task.
    inline: ClassVar[bool] = True  # InlineDetector

    def __init__(self, name: str, config: PiiRegexConfig, deps: DetectorDeps) -> None:
        self.name = name
        self._entities: tuple[str, ...] = tuple(config.entities)
        self._allow_list: frozenset[str] = frozenset(config.allow_list)
        self._normalizer = Normalizer()

    async def detect(self, text: str, ctx: Context) -> Detection:
        spans = find_pii(text, self._entities, self._allow_list, normalizer=self._normalizer)
        if not spans:
            return Detection(score=0.0)
        counts: dict[str, int] = {}
        for span in spans:
            counts[span.label] = counts.get(span.label, 0) + 1
        summary = ", ".join(f"{n} {label}" for label, n in sorted(counts.items()))
        return Detection(
            score=max(span.score for span in spans),
            labels=tuple(sorted(counts)),
            spans=tuple(spans),
            explanation=f"found {summary}",
        )

    async def aclose(self) -> None:
        return None
