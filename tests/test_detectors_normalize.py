"""The normaliser: what a reader sees, and the exact way back to the original offsets."""

from __future__ import annotations

import pytest

from guardproxy.core import Context
from guardproxy.detectors.base import DetectorDeps
from guardproxy.detectors.blocklist import BlocklistDetector
from guardproxy.detectors.configs import BlocklistConfig
from guardproxy.detectors.normalize import Normalizer, fold_char, read_char
from guardproxy.detectors.pii_regex import find_pii, redact_text, scrub_pii

CTX = Context(request_id="r1", stage="output")


def pieces(text: str) -> list[str]:
    """The original text behind each normalised character."""
    view = Normalizer().readable(text)
    return [text[slice(*view.original_span(i, i + 1))] for i in range(len(view.text))]


@pytest.mark.parametrize(
    ("text", "readable"),
    [
        ("plain ASCII Text", "plain ASCII Text"),
        ("jane.roe\\u0040example.org", "jane.roe@example.org"),
        ("internal\\u0020use only", "internal use only"),
        ('{"a": "x\\"y\\\\z\\n"}', '{"a": "x"y\\z\n"}'),
        ("a\\\\u0040b", "a@b"),  # a JSON string inside a JSON string
        ("x\\ud83d\\ude00y", "x\U0001f600y"),  # a surrogate pair is one character
        ("jane.roe\uff20example.org", "jane.roe@example.org"),  # fullwidth
        ("\uff14\uff11\uff11\uff11", "4111"),
        ("\u0664\u0661\u0661\u0661", "4111"),  # Arabic-Indic digits
        ("internal use \u043enly", "internal use only"),  # Cyrillic o
        ("\u0412\u041e\u0422 Caf\u00e9", "BOT Cafe"),  # look-alikes keep their case
        ("a\u200bb\u00adc", "abc"),  # zero-width space, soft hyphen
        ("\U000e0068\U000e0069", "hi"),  # Unicode tag characters
        ("\\q and \\u12 are not escapes", "\\q and \\u12 are not escapes"),
    ],
)
def test_readable_view(text: str, readable: str) -> None:
    assert Normalizer().readable(text).text == readable


def test_fold_is_the_readable_form_casefolded() -> None:
    normalizer = Normalizer()
    for text in ("J\u0410NE\\u0040EXAMPLE.ORG", "\u0412\u041e\u0422 Stra\u00dfe", "\uff29nternal"):
        assert normalizer.fold(text).text == normalizer.readable(text).text.casefold()
    for ch in "A\u0410\u00dfx\u00c9\u03a3":
        assert fold_char(ch) == read_char(ch).casefold()


def test_each_character_maps_back_to_what_it_came_from() -> None:
    assert pieces("a\\u0040b") == ["a", "\\u0040", "b"]
    assert pieces("a\\\\u0040b") == ["a", "\\\\u0040", "b"]
    assert pieces("x\\ud83d\\ude00y") == ["x", "\\ud83d\\ude00", "y"]
    assert pieces("\uff41\u200b\u0430\\n") == ["\uff41", "\u0430", "\\n"]
    assert pieces("\u00dfx") == ["\u00df", "\u00df", "x"]  # one character read as two


def test_spans_map_back_whole() -> None:
    text = "to j\u0430ne\u200b.roe\\u0040example.org!"
    view = Normalizer().readable(text)
    start = view.text.index("jane")
    end = start + len("jane.roe@example.org")
    assert view.text[start:end] == "jane.roe@example.org"
    assert text[slice(*view.original_span(start, end))] == "j\u0430ne\u200b.roe\\u0040example.org"
    assert view.original_span(len(view.text), len(view.text)) == (len(text), len(text))
    assert view.original_span(0, 0) == (0, 0)


def test_unchanged_text_is_not_copied_or_mapped() -> None:
    view = Normalizer().readable("nothing to see")
    assert not view.changed
    assert view.original_span(3, 5) == (3, 5)


@pytest.mark.parametrize(
    ("text", "label", "value"),
    [
        ("mail jane.roe\\u0040example.org now", "EMAIL_ADDRESS", "jane.roe\\u0040example.org"),
        ("mail jane.roe\uff20example.org now", "EMAIL_ADDRESS", "jane.roe\uff20example.org"),
        ("card 4111.1111.1111.1111 ok", "CREDIT_CARD", "4111.1111.1111.1111"),
        ("card 4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 ok", "CREDIT_CARD", "4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1"),
        ("card \uff14\uff11\uff11\uff11 1111 1111 1111 ok", "CREDIT_CARD", "\uff14\uff11\uff11\uff11 1111 1111 1111"),
        ("card 4111\\u00201111\\u00201111\\u00201111 ok", "CREDIT_CARD", "4111\\u00201111\\u00201111\\u00201111"),
        ("key sk-\u0430bcdefghijklmnopqrstuvwxyz0123 ok", "SECRET", "sk-\u0430bcdefghijklmnopqrstuvwxyz0123"),
    ],
)
def test_pii_is_found_in_obfuscated_text_with_original_spans(text: str, label: str, value: str) -> None:
    [span] = find_pii(text)
    assert (span.label, text[span.start : span.end]) == (label, value)
    assert redact_text(text, [span]) == text.replace(value, f"[{label}]")
    assert scrub_pii(text) == text.replace(value, f"[{label}]")


def test_secrets_keep_their_case() -> None:
    # Secret patterns are case-sensitive ("AKIA..."): the readable view must not lower-case them.
    text = "aws AKIA\uff29OSFODNN7EXAMPLE"
    assert [s.label for s in find_pii(text)] == ["SECRET"]


def test_allow_list_applies_to_the_readable_value() -> None:
    assert find_pii("mail jane.roe\\u0040example.org", allow_list=["jane.roe@example.org"]) == []


async def test_blocklist_matches_what_the_reader_sees() -> None:
    detector = BlocklistDetector(
        "banned",
        BlocklistConfig.model_validate({"type": "blocklist", "words": ["internal use only", "caf\u00e9"]}),
        DetectorDeps(),
    )
    for text, hit in [
        ('{"note": "internal\\u0020use only"}', "internal\\u0020use only"),
        ("memo: internal use \u043enly.", "internal use \u043enly"),
        ("memo: \uff49nternal use only.", "\uff49nternal use only"),
        ("Internal\u200b use only", "Internal\u200b use only"),
        ("a cafe here", "cafe"),
        ("a caf\u00e9 here", "caf\u00e9"),
    ]:
        detection = await detector.detect(text, CTX)
        assert [text[s.start : s.end] for s in detection.spans] == [hit], text


async def test_blocklist_patterns_also_see_the_text_as_given() -> None:
    # A pattern written for a script the normaliser maps away still matches the original.
    detector = BlocklistDetector(
        "banned",
        BlocklistConfig.model_validate({"type": "blocklist", "patterns": ["\u0432\u043e\u0442"]}),
        DetectorDeps(),
    )
    text = "\u044d\u0442\u043e \u0432\u043e\u0442"
    detection = await detector.detect(text, CTX)
    assert [text[s.start : s.end] for s in detection.spans] == ["\u0432\u043e\u0442"]
