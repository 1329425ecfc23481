"""url_guard and control_chars on their own: what is a link that carries data, what is a control sequence."""

from __future__ import annotations

import asyncio

import pytest

from guardproxy.core import Context
from guardproxy.detectors.base import DetectorDeps, InlineDetector, StreamHoldback
from guardproxy.detectors.configs import ControlCharsConfig, UrlGuardConfig
from guardproxy.detectors.control_chars import ControlCharsDetector
from guardproxy.detectors.url_guard import UrlGuardDetector

CTX = Context("r", "output", "assistant")
DATA = "SGVsbG8gd29ybGQsIHRoaXMgaXMgYSBzZWNyZXQgdG9rZW4gZm9y"


def _guard(**config: object) -> UrlGuardDetector:
    return UrlGuardDetector("links", UrlGuardConfig.model_validate({"type": "url_guard", **config}), DetectorDeps())


def _labels(text: str, **config: object) -> tuple[str, ...]:
    return asyncio.run(_guard(**config).detect(text, CTX)).labels


@pytest.mark.parametrize(
    "text",
    [
        "See https://docs.python.org/3/library/asyncio-task.html#creating-tasks for details.",
        "[guide](https://github.com/org/repo/blob/main/docs/getting-started/installation-on-ubuntu-22-04.md)",
        "Commit https://github.com/org/repo/commit/9fceb02d0ae598e95dc970b74767f19372d61af8 fixed it.",
        "Search https://www.google.com/search?q=how+to+bake+sourdough+bread+at+home+in+2024",
        "Id 123e4567-e89b-12d3-a456-426614174000 at https://api.example.com/v1/items/123e4567-e89b-12d3-a456-426614174000",
        "![diagram](/static/img/architecture-overview.png)",
        "No links here, just a ratio 3/4 and a time 10:30.",
    ],
    ids=["docs", "slug", "git_sha", "search", "uuid", "relative_image", "no_link"],
)
def test_ordinary_links_carry_no_data(text: str) -> None:
    assert _labels(text) == ()


@pytest.mark.parametrize(
    ("text", "label"),
    [
        (f"![x](https://docs.example.com/p.png?d={DATA})", "URL_DATA"),
        (f'<img src="https://cdn.example.com/{DATA}.gif">', "URL_DATA"),
        ("https://docs.example.com/a?" + "&".join(f"k{i}=v{i}" for i in range(40)), "URL_DATA"),
        ("[click](javascript:alert(document.cookie))", "URL_SCHEME"),
        (f"[ref]: https://example.org/x?s={'a1B2c3D4' * 7}", "URL_DATA"),
        (f"https://docs.example.com/t?id={DATA.encode().hex()}", "URL_DATA"),
    ],
    ids=["markdown_image", "html_img", "long_query", "javascript", "reference", "hex"],
)
def test_links_carrying_data_fire(text: str, label: str) -> None:
    assert label in _labels(text)


def test_hosts_outside_the_allow_list_fire_and_subdomains_pass() -> None:
    allow = {"allow_hosts": ["example.com"]}
    assert _labels("https://docs.example.com/x and https://example.com/y", **allow) == ()
    assert _labels("https://example.com.evil.net/x", **allow) == ("URL_HOST",)
    assert _labels("https://example.com@evil.net/x", **allow) == ("URL_HOST",)
    assert _labels("https://evil.net\\@example.com/x", **allow) == ("URL_HOST",)
    assert _labels("www.evil.net/page", **allow) == ("URL_HOST",)
    assert _labels("https://evil.net/x") == ()  # no allow-list: hosts are not checked


def test_images_only_ignores_plain_links_and_spans_cover_the_construct() -> None:
    guard = _guard(allow_hosts=[], images_only=True)
    text = "A [link](https://a.example/) and ![img](https://b.example/i.png) here."
    found = asyncio.run(guard.detect(text, CTX))
    [span] = found.spans
    assert text[span.start : span.end] == "![img](https://b.example/i.png)"


def test_unfinished_links_are_held_from_their_start() -> None:
    guard = _guard()
    assert isinstance(guard, StreamHoldback) and isinstance(guard, InlineDetector)
    for text, start in [
        ("Look: ![chart](https://ev", 6),
        ("Look: ![chart", 6),
        ("Go to https://docs.example.com/a?d=abc", 6),
        ('Read <img src="https://x', 5),
        ("Then htt", 5),
        ("Done. ", None),
        ("A [1] footnote. ", None),
    ]:
        assert guard.unfinished_from(text) == start, text


def _control(text: str) -> list[tuple[str, str]]:
    found = asyncio.run(
        ControlCharsDetector("t", ControlCharsConfig(type="control_chars"), DetectorDeps()).detect(text, CTX)
    )
    return [(s.label, text[s.start : s.end]) for s in found.spans]


def test_control_sequences_are_found_whole() -> None:
    assert _control("plain text\nwith\ttabs\r\n") == []
    assert _control("\x1b[1;31mred\x1b[0m") == [("ANSI_ESCAPE", "\x1b[1;31m"), ("ANSI_ESCAPE", "\x1b[0m")]
    link = "\x1b]8;;https://evil.example/\x1b\\"
    assert _control(f"{link}here\x1b]8;;\x07") == [("OSC_HYPERLINK", link), ("OSC_HYPERLINK", "\x1b]8;;\x07")]
    assert _control("title\x1b]0;pwned") == [("TERMINAL_SEQUENCE", "\x1b]0;pwned")]  # open to the end: held in streams
    assert _control("rm -rf /\x08\x08\x08ls\x9b2J") == [
        ("CONTROL_CHAR", "\x08"), ("CONTROL_CHAR", "\x08"), ("CONTROL_CHAR", "\x08"), ("ANSI_ESCAPE", "\x9b2J"),
    ]  # fmt: skip
    assert _control("reset\x1bc") == [("TERMINAL_SEQUENCE", "\x1bc")]
