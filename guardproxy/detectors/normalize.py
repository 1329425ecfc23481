"""Fold text into a canonical lower-case ASCII-ish form so that obfuscation does not hide a phrase.

Each original character folds independently (NFKC, diacritics stripped from Latin letters,
Cyrillic/Greek look-alikes mapped to ASCII, invisible format characters dropped, Unicode
tag characters revealed as the ASCII they smuggle, casefold). Folding one character at a
time keeps an exact map from every folded character back to its original offset, which
is what lets a detector report spans into the text it was given.

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


def fold_char(ch: str) -> str:
    """The folded form of one character; "" when it is invisible."""
    code = ord(ch)
    if code < 0x80:
        return ch.lower()
    if code in _TAG_BLOCK:
        return chr(code - 0xE0000).lower()
    if unicodedata.category(ch) in _DROPPED_CATEGORIES:
        return ""
    folded = unicodedata.normalize("NFKC", ch)
    if not folded.isascii():
        stripped = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
        if stripped.isascii() and stripped:
            folded = stripped
    return "".join(_CONFUSABLES.get(c, c) for c in folded).casefold()


class _FoldTable(dict[int, str]):
    """A `str.translate` table that folds characters on first sight and remembers a bounded number."""

    def __missing__(self, code: int) -> str:
        folded = fold_char(chr(code))
        if len(self) < _FOLD_CACHE_LIMIT:
            self[code] = folded
        return folded


_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")


class Folded:
    """Folded text plus the way back to offsets of the original (worked out only when asked)."""

    __slots__ = ("_origins", "_table", "original", "text")

    def __init__(self, text: str, original: str, table: _FoldTable | None) -> None:
        self.text = text
        self.original = original
        self._table = table
        self._origins: list[int] | None = None

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """The original range that folded [start, end) came from."""
        if self._table is None:  # ASCII input folds one-to-one
            return start, end
        origins = self._origins if self._origins is not None else self._map_origins(self._table)
        first = origins[start] if start < len(origins) else len(self.original)
        last = origins[end - 1] + 1 if 0 < end <= len(origins) else first
        return first, max(first, last)

    def _map_origins(self, table: _FoldTable) -> list[int]:
        # ASCII stretches map one-to-one; only the non-ASCII characters need a lookup.
        origins: list[int] = []
        cursor = 0
        for run in _NON_ASCII_RUN.finditer(self.original):
            origins.extend(range(cursor, run.start()))
            for index in range(run.start(), run.end()):
                origins.extend([index] * len(table[ord(self.original[index])]))
            cursor = run.end()
        origins.extend(range(cursor, len(self.original)))
        self._origins = origins
        return origins


class Normalizer:
    """Folds text; owns the per-instance cache of folded characters."""

    def __init__(self) -> None:
        self._table = _FoldTable()

    def fold(self, text: str) -> Folded:
        if text.isascii():
            return Folded(text.lower(), text, None)
        return Folded(text.translate(self._table), text, self._table)


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
