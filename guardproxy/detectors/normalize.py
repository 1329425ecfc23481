"""Turn text into what a reader sees, so that obfuscation does not hide a phrase or a value.

One implementation for input, output and the audit scrubber (`Normalizer`):
1. JSON string escapes are decoded (`\\u0040` -> "@", surrogate pairs, nested escaping): a client's
   JSON parser decodes them in tool-call arguments and JSON-mode content.
2. Each character then maps independently (NFKC, so fullwidth forms become ASCII; decimal digits of
   any script become ASCII digits; diacritics stripped from Latin letters; Cyrillic/Greek look-alikes
   mapped to ASCII; invisible format characters dropped; Unicode tag characters revealed as the
   ASCII they smuggle). `readable` keeps letter case (PII, secrets, blocklist); `fold` casefolds
   (the injection heuristic's phrase rules).
Mapping one escape or one character at a time keeps an exact map from every normalised character
back to its original range (`Folded.original_span`), which is what lets a detector report spans
into the text it was given: redacting `jane.roe\\u0040example.org` replaces the escape too.

Encoded payloads (base64, hex, binary, URL-encoding) are found and decoded here too, with
bounded work; rot13 and reversed text are cheap one-to-one transforms of the folded text.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote_plus

# Look-alikes that NFKC leaves alone (it maps fullwidth and mathematical letters already).
_CONFUSABLES: dict[str, str] = {
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
    "с": "c", "т": "t", "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j", "ѕ": "s", "ԁ": "d",
    "һ": "h", "ԛ": "q", "ԝ": "w", "ӏ": "l", "ɡ": "g", "ʏ": "y", "ь": "b", "ո": "n", "ս": "u",
    "А": "a", "В": "b", "Е": "e", "К": "k", "М": "m", "Н": "h", "О": "o", "Р": "p", "С": "c",
    "Т": "t", "У": "y", "Х": "x", "І": "i", "Ј": "j", "Ѕ": "s", "Ԁ": "d", "Ӏ": "l",
    # Greek
    "α": "a", "β": "b", "γ": "y", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o",
    "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ϲ": "c", "ω": "w", "Α": "a", "Β": "b", "Ε": "e",
    "Ζ": "z", "Η": "h", "Ι": "i", "Κ": "k", "Μ": "m", "Ν": "n", "Ο": "o", "Ρ": "p", "Τ": "t",
    "Υ": "y", "Χ": "x", "Ϲ": "c",
    # Latin variants and symbols
    "ı": "i", "ɩ": "i", "ɑ": "a", "ø": "o", "Ø": "o", "ð": "d", "đ": "d", "ł": "l", "ß": "ss",
    "‐": "-", "‑": "-", "‒": "-", "–": "-", "—": "-", "―": "-", "−": "-",
    "‘": "'", "’": "'", "‚": "'", "‛": "'", "“": '"', "”": '"', "„": '"', "‟": '"',
}  # fmt: skip

_TAG_BLOCK = range(0xE0020, 0xE007F)  # Unicode "tag" characters mirror printable ASCII invisibly.
_DROPPED_CATEGORIES = frozenset({"Cf", "Mn", "Me", "Cs", "Co"})
_FOLD_CACHE_LIMIT = 8192


def _unconfused(ch: str) -> str:
    mapped = _CONFUSABLES.get(ch)
    if mapped is None:
        return ch
    return mapped.upper() if ch.isupper() else mapped


def read_char(ch: str) -> str:
    """One character as a reader takes it, case kept; "" when it is invisible.

    Fullwidth and other compatibility forms become ASCII (NFKC), decimal digits of any script
    become ASCII digits, diacritics are stripped from Latin letters and look-alikes map to the
    letter they imitate.
    """
    code = ord(ch)
    if code < 0x80:
        return ch
    if code in _TAG_BLOCK:
        return chr(code - 0xE0000)
    category = unicodedata.category(ch)
    if category in _DROPPED_CATEGORIES:
        return ""
    if category == "Nd":  # Arabic-Indic, Devanagari, ... digits: NFKC keeps them, a reader does not
        return str(unicodedata.decimal(ch))
    folded = unicodedata.normalize("NFKC", ch)
    if not folded.isascii():
        stripped = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
        if stripped.isascii() and stripped:
            folded = stripped
    return "".join(_unconfused(c) for c in folded)


def fold_char(ch: str) -> str:
    """The folded (case-less) form of one character; "" when it is invisible."""
    return read_char(ch).casefold()


class _CharTable(dict[int, str]):
    """A `str.translate` table that maps characters on first sight and remembers a bounded number."""

    def __init__(self, mapping: Callable[[str], str]) -> None:
        super().__init__()
        self._mapping = mapping

    def __missing__(self, code: int) -> str:
        mapped = self._mapping(chr(code))
        if len(self) < _FOLD_CACHE_LIMIT:
            self[code] = mapped
        return mapped


_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")

# --- JSON string escapes ------------------------------------------------------------------
# A client's JSON parser turns `\u0040` into "@" (tool-call arguments, JSON-mode content), so a
# detector must read the escape as the character it stands for. Decoded wherever they occur: in
# prose an escape is rare, and reading it as its character can only find more.
_JSON_ESCAPE = re.compile(
    r"\\(?:u([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|([\"\\/bfnrt]))"
)
_SIMPLE_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
# A JSON string inside a JSON string (`\\u0040`) needs two rounds; a third covers one more wrapping.
_ESCAPE_ROUNDS = 3


@dataclass(frozen=True, slots=True)
class _Decoded:
    """Text with JSON escapes decoded; char i of `text` came from original[starts[i]:ends[i]]."""

    text: str
    starts: list[int]
    ends: list[int]


def _decode_round(text: str) -> _Decoded | None:
    pieces: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    cursor = 0
    for found in _JSON_ESCAPE.finditer(text):
        high, low, single, simple = found.groups()
        if high is not None:
            char = chr(0x10000 + ((int(high, 16) - 0xD800) << 10) + (int(low, 16) - 0xDC00))
        elif single is not None:
            char = chr(int(single, 16))
        else:
            char = _SIMPLE_ESCAPES[simple]
        pieces += [text[cursor : found.start()], char]
        starts.extend(range(cursor, found.start()))
        ends.extend(range(cursor + 1, found.start() + 1))
        starts.append(found.start())
        ends.append(found.end())
        cursor = found.end()
    if not pieces:
        return None
    pieces.append(text[cursor:])
    starts.extend(range(cursor, len(text)))
    ends.extend(range(cursor + 1, len(text) + 1))
    return _Decoded("".join(pieces), starts, ends)


def decode_json_escapes(text: str) -> _Decoded | None:
    """`text` with JSON string escapes decoded (nested ones too, a few levels); None when it has none."""
    if "\\" not in text:
        return None
    decoded: _Decoded | None = None
    for _ in range(_ESCAPE_ROUNDS):
        current = text if decoded is None else decoded.text
        if "\\" not in current:
            break
        step = _decode_round(current)
        if step is None:
            break
        if decoded is None:
            decoded = step
        else:  # compose: this round's char i came from earlier chars [starts[i], ends[i])
            decoded = _Decoded(
                step.text,
                [decoded.starts[s] for s in step.starts],
                [decoded.ends[e - 1] for e in step.ends],
            )
    return decoded


class Folded:
    """Normalised text plus the way back to offsets of the original (worked out only when asked).

    Two layers: JSON escapes decoded (`_escapes`, None when there were none), then each character
    of that mapped on its own by `_table` (None when the mapping was one-to-one).
    """

    __slots__ = ("_escapes", "_origins", "_source", "_table", "original", "text")

    def __init__(self, text: str, original: str, table: _CharTable | None, *, escapes: _Decoded | None = None) -> None:
        self.text = text
        self.original = original
        self._table = table
        self._escapes = escapes
        self._source = original if escapes is None else escapes.text
        self._origins: list[int] | None = None

    @property
    def changed(self) -> bool:
        """Whether `text` can differ from `original` in anything but letter case."""
        return self._table is not None or self._escapes is not None

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """The original range that normalised [start, end) came from (a whole escape sequence included)."""
        first, last = self._source_span(start, end)
        escapes = self._escapes
        if escapes is None:
            return first, last
        size = len(escapes.starts)
        origin_first = escapes.starts[first] if first < size else len(self.original)
        origin_last = escapes.ends[last - 1] if first < last <= size else origin_first
        return origin_first, max(origin_first, origin_last)

    def _source_span(self, start: int, end: int) -> tuple[int, int]:
        if self._table is None:  # ASCII input maps one-to-one
            return start, end
        origins = self._origins if self._origins is not None else self._map_origins(self._table)
        first = origins[start] if start < len(origins) else len(self._source)
        last = origins[end - 1] + 1 if 0 < end <= len(origins) else first
        return first, max(first, last)

    def _map_origins(self, table: _CharTable) -> list[int]:
        # ASCII stretches map one-to-one; only the non-ASCII characters need a lookup.
        source = self._source
        origins: list[int] = []
        cursor = 0
        for run in _NON_ASCII_RUN.finditer(source):
            origins.extend(range(cursor, run.start()))
            for index in range(run.start(), run.end()):
                origins.extend([index] * len(table[ord(source[index])]))
            cursor = run.end()
        origins.extend(range(cursor, len(source)))
        self._origins = origins
        return origins


class Normalizer:
    """The one place where text becomes what a reader sees; owns the per-instance caches of mapped characters.

    `readable` (case kept) is what the PII regexes and the blocklist match on, input, output and
    audit scrubbing alike; `fold` (case-less) is what the phrase rules of the injection heuristic
    match on. Both decode JSON escapes first, and both map spans back with `Folded.original_span`.
    """

    def __init__(self) -> None:
        self._fold_table = _CharTable(fold_char)
        self._read_table = _CharTable(read_char)

    def fold(self, text: str) -> Folded:
        escapes = decode_json_escapes(text)
        source = text if escapes is None else escapes.text
        if source.isascii():
            return Folded(source.lower(), text, None, escapes=escapes)
        return Folded(source.translate(self._fold_table), text, self._fold_table, escapes=escapes)

    def readable(self, text: str) -> Folded:
        escapes = decode_json_escapes(text)
        source = text if escapes is None else escapes.text
        if source.isascii():
            return Folded(source, text, None, escapes=escapes)
        return Folded(source.translate(self._read_table), text, self._read_table, escapes=escapes)


_LEET = str.maketrans("013457@$!|", "oieastasil")
_SPACED_LETTERS = re.compile(r"\b(?:[a-z][ .\-_*]){4,}[a-z]\b")
_SPACERS = re.compile(r"[ .\-_*]")


def leet_variant(folded: str) -> str | None:
    """Digits/symbols read as letters ("1gn0r3" -> "ignore"); one-to-one, so offsets stay."""
    translated = folded.translate(_LEET)
    return translated if translated != folded else None


def despaced_variant(folded: str) -> tuple[str, list[int]] | None:
    """Letters spread out ("i g n o r e") joined up; returns the text and, per char, its folded offset."""
    if not _SPACED_LETTERS.search(folded):
        return None
    pieces: list[str] = []
    positions: list[int] = []
    cursor = 0
    for run in _SPACED_LETTERS.finditer(folded):
        pieces.append(folded[cursor : run.start()])
        positions.extend(range(cursor, run.start()))
        for offset, ch in enumerate(run.group(), start=run.start()):
            if not _SPACERS.fullmatch(ch):
                pieces.append(ch)
                positions.append(offset)
        cursor = run.end()
    pieces.append(folded[cursor:])
    positions.extend(range(cursor, len(folded)))
    return "".join(pieces), positions


_ROT13 = str.maketrans("abcdefghijklmnopqrstuvwxyz", "nopqrstuvwxyzabcdefghijklm")


def rot13(text: str) -> str:
    return text.translate(_ROT13)


# --- encoded payloads -------------------------------------------------------------------

PayloadKind = Literal["base64", "hex", "binary", "url"]


@dataclass(frozen=True, slots=True)
class Payload:
    """A run of the original text [start, end) that decodes to readable text."""

    start: int
    end: int
    kind: PayloadKind
    decoded: str


_MAX_RUN = 8192
_MIN_TOKEN = 16
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")
_HEX_RUN = re.compile(r"(?:(?:\\x|0x)?[0-9A-Fa-f]{2}[\s,:]?){8,}")
_BINARY_RUN = re.compile(r"(?:[01]{8}\s?){4,}")
_URL_RUN = re.compile(r"[^\s%]*(?:%[0-9A-Fa-f]{2}[^\s%]*){3,}")
_URL_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_HEX_PAIR = re.compile(r"[0-9A-Fa-f]{2}")
_BASE64_PLAUSIBLE = re.compile(r"[0-9+/]|[a-z].*[A-Z]|[A-Z].*[a-z]")


def _readable(raw: bytes) -> str | None:
    """Text worth scanning: valid UTF-8, almost all printable, with at least two words."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    printable = sum(1 for c in text if c.isprintable() or c in "\n\r\t")
    if printable < 0.95 * len(text):
        return None
    # Prose has words; a single long token may be a further layer of encoding.
    return text if len(text.split()) >= 2 or (len(text) >= _MIN_TOKEN and text.isascii()) else None


def _decode_base64(run: str) -> str | None:
    if not _BASE64_PLAUSIBLE.search(run):
        return None
    body = run.rstrip("=")
    altchars = b"-_" if ("-" in body or "_" in body) else None
    if len(body) % 4 == 1:  # a stray trailing character; decode the rest
        body = body[:-1]
    try:
        raw = base64.b64decode(body + "=" * (-len(body) % 4), altchars=altchars, validate=True)
    except (binascii.Error, ValueError):
        return None
    return _readable(raw)


def _decode_hex(run: str) -> str | None:
    pairs = _HEX_PAIR.findall(run.replace("\\x", " ").replace("0x", " "))
    return _readable(bytes.fromhex("".join(pairs)))


def _decode_binary(run: str) -> str | None:
    bits = "".join(run.split())
    return _readable(bytes(int(bits[i : i + 8], 2) for i in range(0, len(bits) - 7, 8)))


def _decode_url(run: str) -> str | None:
    decoded = unquote_plus(run, errors="strict")
    return decoded if decoded != run and len(decoded.split()) >= 2 else None


_HEX_SPACE_MARKS = ("\\x", "0x", " 20 ", ":20:", ",20,", "-20-")
_HEX_ONLY = re.compile(r"(?:[0-9A-Fa-f]{2})+")


def _candidates(text: str) -> Iterator[tuple[PayloadKind, re.Match[str]]]:
    """Runs that might be encoded. Cheap substring tests decide which (slower) regexes run at all.

    Encoded sentences always contain an encoded space, so spaced hex must show "20" as a
    pair and binary must show 00100000; unbroken hex is a long token like base64 is.
    """
    if any(len(token) >= _MIN_TOKEN and _BASE64_RUN.search(token) for token in text.split()):
        for found in _BASE64_RUN.finditer(text):
            yield ("hex" if _HEX_ONLY.fullmatch(found.group()) else "base64"), found
    if any(mark in text for mark in _HEX_SPACE_MARKS):
        for found in _HEX_RUN.finditer(text):
            yield "hex", found
    if "00100000" in text:
        for found in _BINARY_RUN.finditer(text):
            yield "binary", found
    escapes = [found.start() for found in _URL_ESCAPE.finditer(text)] if "%" in text else []
    if len(escapes) >= 3:
        # Only the stretch from the first escape's word to the last one's can hold an encoded run.
        start = max(text.rfind(c, 0, escapes[0]) for c in " \t\r\n") + 1
        for found in _URL_RUN.finditer(text, start, escapes[-1] + len(text[escapes[-1] :].split(maxsplit=1)[0])):
            yield "url", found


_DECODERS: dict[PayloadKind, Callable[[str], str | None]] = {
    "base64": _decode_base64,
    "hex": _decode_hex,
    "binary": _decode_binary,
    "url": _decode_url,
}


def find_payloads(text: str, max_decodes: int = 8) -> Iterator[Payload]:
    """Encoded runs that decode to readable text; at most `max_decodes` decode attempts in all."""
    attempts = 0
    for kind, found in _candidates(text):
        run = found.group().rstrip(" \t\r\n,:")
        start, end = found.start(), found.start() + len(run)
        if end - start > _MAX_RUN:
            continue
        if attempts >= max_decodes:
            return
        attempts += 1
        try:
            decoded = _DECODERS[kind](run)
        except (ValueError, UnicodeDecodeError):
            decoded = None
        if decoded:
            yield Payload(start, end, kind, decoded)
