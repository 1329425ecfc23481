"""blocklist: literal phrases (case-insensitive, word boundaries) and regex patterns, each match a span."""

from __future__ import annotations

import pytest

from guardproxy.core import Context
from guardproxy.detectors.base import DetectorDeps
from guardproxy.detectors.blocklist import BlocklistDetector
from guardproxy.detectors.configs import BlocklistConfig
from guardproxy.errors import PolicyInvalid

CTX = Context(request_id="r1", stage="output")


def _detector(**fields: object) -> BlocklistDetector:
    return BlocklistDetector("banned", BlocklistConfig.model_validate({"type": "blocklist", **fields}), DetectorDeps())


async def test_words_match_case_insensitively_on_word_boundaries() -> None:
    detector = _detector(words=["project falcon", "acme"], label="CODENAME")
    text = "Project  FALCON ships; ACME's plan; acmecorp and macme are fine."
    detection = await detector.detect(text, CTX)
    assert [text[s.start : s.end] for s in detection.spans] == ["Project  FALCON", "ACME"]
    assert {s.label for s in detection.spans} == {"CODENAME"}
    assert detection.labels == ("CODENAME",)
    assert detection.score == 1.0
    assert "falcon" not in detection.explanation.lower()


async def test_every_occurrence_is_a_span() -> None:
    detection = await _detector(words=["secret"]).detect("secret, secret and SECRET", CTX)
    assert [(s.start, s.end) for s in detection.spans] == [(0, 6), (8, 14), (19, 25)]
    assert detection.labels == ("BLOCKLIST",)


async def test_phrases_with_punctuation_are_literal() -> None:
    detection = await _detector(words=["c++", "a.b"]).detect("I like C++ and aXb and a.b", CTX)
    assert len(detection.spans) == 2


async def test_patterns_are_regexes_with_their_own_flags() -> None:
    detector = _detector(patterns=[r"(?i)internal use only", r"TICKET-\d+"])
    text = "INTERNAL USE ONLY: see TICKET-42 (not ticket-43)"
    detection = await detector.detect(text, CTX)
    assert [text[s.start : s.end] for s in detection.spans] == ["INTERNAL USE ONLY", "TICKET-42"]


async def test_no_match_and_empty_config_score_zero() -> None:
    assert (await _detector(words=["acme"]).detect("nothing to see", CTX)).score == 0.0
    assert (await _detector().detect("anything", CTX)).score == 0.0
    assert (await _detector(patterns=[r"x*"]).detect("abc", CTX)).score == 0.0  # empty matches are not spans


def test_invalid_regex_is_a_policy_error_naming_the_field() -> None:
    with pytest.raises(PolicyInvalid, match=r"detectors\.banned\.patterns\[1\]"):
        _detector(patterns=["ok", "(unclosed"])
