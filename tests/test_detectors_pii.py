"""pii_regex: validated entities with exact spans, negatives that must stay quiet, redaction."""

from __future__ import annotations

import itertools
import time

import pytest

from guardproxy.core import Context, Span
from guardproxy.detectors.base import DetectorDeps
from guardproxy.detectors.configs import PiiRegexConfig
from guardproxy.detectors.pii_regex import PiiRegexDetector, find_pii, redact_text, scrub_pii

CTX = Context(request_id="r1", stage="input")


def _found(text: str, entity: str) -> list[str]:
    return [text[s.start : s.end] for s in find_pii(text, [entity])]


@pytest.mark.parametrize(
    ("entity", "text", "expected"),
    [
        ("EMAIL_ADDRESS", "Write to jane.doe+news@mail.example.co.uk today.", ["jane.doe+news@mail.example.co.uk"]),
        ("PHONE_NUMBER", "Call +44 20 7946 0958 now", ["+44 20 7946 0958"]),
        ("PHONE_NUMBER", "Call +1-415-555-2671.", ["+1-415-555-2671"]),
        ("PHONE_NUMBER", "Office: (415) 555-2671, cell 415.555.2671", ["(415) 555-2671", "415.555.2671"]),
        ("PHONE_NUMBER", "Ring 0049 30 901820 please", ["0049 30 901820"]),
        ("CREDIT_CARD", "Card 4111 1111 1111 1111, thanks", ["4111 1111 1111 1111"]),
        ("CREDIT_CARD", "card=5500-0000-0000-0004;", ["5500-0000-0000-0004"]),
        ("CREDIT_CARD", "amex 3782 822463 10005.", ["3782 822463 10005"]),
        ("CREDIT_CARD", "raw 4012888888881881 here", ["4012888888881881"]),
        ("CREDIT_CARD", "maestro 6759649826438453 ok", ["6759649826438453"]),
        ("US_SSN", "SSN: 536-22-8471.", ["536-22-8471"]),
        ("US_SSN", "ssn 536 22 8471", ["536 22 8471"]),
        ("IBAN_CODE", "IBAN DE89 3704 0044 0532 0130 00 please", ["DE89 3704 0044 0532 0130 00"]),
        ("IBAN_CODE", "pay GB82WEST12345698765432.", ["GB82WEST12345698765432"]),
        ("IBAN_CODE", "lower gb82west12345698765432 too", ["gb82west12345698765432"]),
        ("IBAN_CODE", "FR14 2004 1010 0505 0001 3M02 606 ok", ["FR14 2004 1010 0505 0001 3M02 606"]),
        ("IP_ADDRESS", "host 192.168.1.20 is down", ["192.168.1.20"]),
        ("IP_ADDRESS", "v6 2001:db8::8a2e:370:7334 and fe80::1.", ["2001:db8::8a2e:370:7334", "fe80::1"]),
        ("IP_ADDRESS", "full 2001:0db8:85a3:0000:0000:8a2e:0370:7334", ["2001:0db8:85a3:0000:0000:8a2e:0370:7334"]),
        ("SECRET", "key sk-proj-abcdefghijklmnopqrstuvwxyz123456 end", ["sk-proj-abcdefghijklmnopqrstuvwxyz123456"]),
        ("SECRET", "key sk-abcdefghijklmnopqrstuvwxyz123456 end", ["sk-abcdefghijklmnopqrstuvwxyz123456"]),
        ("SECRET", "aws AKIAIOSFODNN7EXAMPLE", ["AKIAIOSFODNN7EXAMPLE"]),
        ("SECRET", "gh ghp_abcdefghijklmnopqrstuvwxyzABCDEFGHIJ", ["ghp_abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"]),
        ("SECRET", "slack xoxb-123456789012-abcdefghij", ["xoxb-123456789012-abcdefghij"]),
        ("SECRET", "g AIzaSyA1234567890abcdefghijklmnopqrstuv", ["AIzaSyA1234567890abcdefghijklmnopqrstuv"]),
        ("SECRET", "Authorization: Bearer abcdef1234567890abcdef", ["abcdef1234567890abcdef"]),
        (
            "SECRET",
            "t=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            ["eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"],
        ),
        (
            "SECRET",
            "x\n-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA1234\n-----END RSA PRIVATE KEY-----\ny",
            ["-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA1234\n-----END RSA PRIVATE KEY-----"],
        ),
        (
            "SECRET",
            "truncated -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0B",
            ["-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0B"],
        ),
    ],
)
def test_entities_are_found_with_exact_spans(entity: str, text: str, expected: list[str]) -> None:
    assert _found(text, entity) == expected


@pytest.mark.parametrize(
    ("entity", "text"),
    [
        ("CREDIT_CARD", "Card 4111 1111 1111 1112 fails Luhn"),
        ("CREDIT_CARD", "mixed separators 4111-1111 1111 1111"),
        ("CREDIT_CARD", "order 1234567890123456 shipped"),
        ("IBAN_CODE", "bad checksum DE89 3704 0044 0532 0130 01"),
        ("IBAN_CODE", "wrong length DE89 3704 0044 0532 0130"),
        ("US_SSN", "area 666-12-3456, 000-12-3456, 912-12-3456"),
        ("US_SSN", "group 536-00-8471 and serial 536-22-0000"),
        ("US_SSN", "plain 536228471 and mixed 536-22 8471"),
        ("IP_ADDRESS", "octets 256.1.1.1 and 1.2.3"),
        ("IP_ADDRESS", "version 1.2.3.4 and v10.0.0.1 released"),
        ("IP_ADDRESS", "C++ std::vector<int> and a::b at 12:30:45"),
        ("PHONE_NUMBER", "exchange 415-155-2671 and area 115-555-2671"),
        ("EMAIL_ADDRESS", "not an email: user@localhost or @handle"),
        ("SECRET", "sk-short and the word risk-assessment-framework-document"),
    ],
)
def test_invalid_look_alikes_are_not_reported(entity: str, text: str) -> None:
    assert _found(text, entity) == []


@pytest.mark.parametrize(
    "text",
    [
        "The laptop costs $1,299.99 (was 1499.00) and ships on 2023-05-01.",
        "Meeting on 12/05/2023 at 14:30; budget 2,500,000 EUR in FY2024.",
        "Upgrade from 2.14.1 to 3.11.4; build 20231105.1 passed.",
        "Order #123456789 and ORD-2023-000123, tracking 9400111899223344556677.",
        "Pi is 3.14159265358979 and e is 2.718281828459045.",
        "In 1999 the population was 6,000,000,000 people; call ext 5551234.",
        "ISBN 978-3-16-148410-0 and part no. 1234-5678-90.",
    ],
)
def test_ordinary_numbers_are_not_pii(text: str) -> None:
    assert find_pii(text) == []


def test_overlaps_resolve_to_the_more_specific_entity() -> None:
    text = "mail jane@example.com card 4111-1111-1111-1111"
    spans = find_pii(text)
    assert [(s.label, text[s.start : s.end]) for s in spans] == [
        ("EMAIL_ADDRESS", "jane@example.com"),
        ("CREDIT_CARD", "4111-1111-1111-1111"),
    ]
    assert all(a.end <= b.start for a, b in itertools.pairwise(spans))


def test_allow_list_values_are_never_reported() -> None:
    text = "Support: help@example.com, personal: jane@example.com"
    spans = find_pii(text, allow_list=["help@example.com"])
    assert [text[s.start : s.end] for s in spans] == ["jane@example.com"]


def test_unknown_entity_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown PII entities"):
        find_pii("x", ["PASSPORT"])


def test_redact_text_replaces_spans_with_entity_tokens() -> None:
    text = "Mail jane@example.com or call (415) 555-2671."
    assert redact_text(text, find_pii(text)) == "Mail [EMAIL_ADDRESS] or call [PHONE_NUMBER]."
    overlapping = [Span(0, 4, "A"), Span(2, 6, "B"), Span(8, 9, "C")]
    assert redact_text("0123456789", overlapping) == "[A]67[C]9"
    assert redact_text("abc", []) == "abc"


def test_scrub_pii_redacts_every_entity() -> None:
    text = "key sk-abcdefghijklmnopqrstuvwxyz123456, ssn 536-22-8471, ip 10.0.0.7, costs $12.50"
    assert scrub_pii(text) == "key [SECRET], ssn [US_SSN], ip [IP_ADDRESS], costs $12.50"


async def test_detector_reports_labels_spans_and_explanation_without_values() -> None:
    config = PiiRegexConfig(type="pii_regex", entities=["EMAIL_ADDRESS", "US_SSN"], allow_list=["ok@example.com"])
    detector = PiiRegexDetector("pii", config, DetectorDeps())
    text = "jane@example.com ok@example.com 536-22-8471 4111 1111 1111 1111"
    detection = await detector.detect(text, CTX)
    assert detection.labels == ("EMAIL_ADDRESS", "US_SSN")
    assert [(s.start, s.end, s.label) for s in detection.spans] == [(0, 16, "EMAIL_ADDRESS"), (32, 43, "US_SSN")]
    assert detection.score == pytest.approx(0.95)
    assert "jane" not in detection.explanation and "1 EMAIL_ADDRESS" in detection.explanation
    assert (await detector.detect("nothing here", CTX)).score == 0.0


def test_many_matches_stay_linear() -> None:
    text = "a@b.co " * 3000
    start = time.perf_counter()
    assert len(find_pii(text)) == 3000
    assert time.perf_counter() - start < 1.0


def test_latency_on_a_2000_char_prompt_is_small() -> None:
    text = ("Order 1234 shipped on 2023-05-01 to jane@example.com for $19.99. " * 40)[:2000]
    runs = 50
    start = time.perf_counter()
    for _ in range(runs):
        find_pii(text)
    assert (time.perf_counter() - start) / runs * 1000 < 3.0  # budget 0.3 ms; headroom for shared CI
