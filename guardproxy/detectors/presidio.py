"""Personal data found by Microsoft Presidio's analyzer over a trimmed spaCy English pipeline.

One `AnalyzerEngine` is built when the detector is built (policy load), never per request.
Recognizers, by default:
- spaCy NER for names, places, organisations, nationalities and dates. Only the `ner` component
  (and a token-vector layer it listens to, if any) runs: tagging, parsing and lemmatising cost
  about half of the pipeline's time and find no entities. Its entities are decoded by `GreedyNer`
  (same weights, same entities as spaCy, about three times faster; see there), which also gives
  the model's confidence in each. A lower-case finding counts only in text written in lower
  case, and with at least `lowercase_min_confidence` ("meth" in an answer was redacted as a place).
- guardproxy's validated regexes (`pii_regex`: Luhn, IBAN checksum, SSN rules) for emails, phones,
  cards, SSNs, IBANs and IPs: faster and more accurate here than Presidio's own pattern recognizers
  (which `structured: presidio` selects instead). They see line breaks as spaces, so a number
  split over two lines is still one finding.
- a looser phone pattern for local formats, which counts when a word such as "phone", "call" or
  "fax" stands near it (Presidio's context enhancer) or when it looks like a phone number.
- the policy's own regex recognizers.

spaCy keeps every new string it sees; analysis runs inside `nlp.memory_zone()` so a long-running
proxy does not grow without bound. Memory zones must not overlap, so analysis runs on one
dedicated thread per detector, off the event loop (the matrix products release the GIL:
bench/eval_pii.py measures how late the event loop gets meanwhile).
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

# Presidio's email recognizer imports tldextract, which otherwise fetches the public suffix
# list from the network. Must be set before presidio is imported (ruff allows this before imports).
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

import spacy
from presidio_analyzer import (
    AnalyzerEngine,
    EntityRecognizer,
    LemmaContextAwareEnhancer,
    Pattern,
    PatternRecognizer,
    RecognizerRegistry,
    RecognizerResult,
)
from presidio_analyzer.nlp_engine import NerModelConfiguration, NlpArtifacts, SpacyNlpEngine
from presidio_analyzer.predefined_recognizers import SpacyRecognizer
from pydantic import ValidationError
from spacy.language import Language
from spacy.tokens import Doc

from guardproxy.core import Context, Detection, Span
from guardproxy.detectors.base import DetectorDeps
from guardproxy.detectors.code_regions import CODE_SENSITIVE_LABELS, code_regions, is_code_reference
from guardproxy.detectors.configs import ALL_PII_ENTITIES, CustomDetectorConfig
from guardproxy.detectors.greedy_ner import GreedyNer
from guardproxy.detectors.model_files import ModelDir, default_models_root, resolve_model_dir
from guardproxy.detectors.normalize import Normalizer
from guardproxy.detectors.pii_regex import find_pii
from guardproxy.detectors.presidio_config import SHIPPED_MODEL, STOCK_MODEL, PresidioConfig, PresidioRecognizerConfig
from guardproxy.errors import DetectorFailed, PolicyInvalid

# The stock pipeline from PyPI, and the fine-tuned NER this project ships (bench/train_pii_ner.py).
DEFAULT_ENTITIES: tuple[str, ...] = (
    "PERSON",
    "LOCATION",
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "US_SSN",
    "IBAN_CODE",
    "IP_ADDRESS",
)
# spaCy (OntoNotes) labels -> Presidio entities. FAC (buildings, airports, roads) counts as a place.
NER_LABELS: dict[str, str] = {
    "PERSON": "PERSON",
    "PER": "PERSON",
    "GPE": "LOCATION",
    "LOC": "LOCATION",
    "FAC": "LOCATION",
    "ORG": "ORGANIZATION",
    "NORP": "NRP",
    "DATE": "DATE_TIME",
    "TIME": "DATE_TIME",
    "ADDRESS": "ADDRESS",
}
VALIDATED_ENTITIES: tuple[str, ...] = ALL_PII_ENTITIES  # what pii_regex validates, checksums and all
PHONE_CONTEXT: tuple[str, ...] = (
    "phone", "tel", "mobile", "cell", "call", "fax", "desk", "office", "reach", "contact",
    "dial", "ring", "sms", "whatsapp", "landline", "answer", "extension",
)  # fmt: skip
# Local phone formats: 7-15 digits in groups, optional "+CC"/"00CC", "(area)" and extension; a label
# may follow after a hyphen ("555 0134-Office"). Weak alone: it needs a phone word nearby, unless
# it has a phone's marks (a trunk "0" and groups, an area code in brackets, an extension).
_BEFORE = r"(?<![\w+\-.])"
_AFTER = r"(?:\s?(?:x|ext\.?)\s?\d{1,6})?(?!\w|[\-.]\d)"
_COUNTRY = r"(?:(?:\+|00)\d{1,3}[ .\-]?)?"
_LOOSE_PHONES: tuple[tuple[str, str, float], ...] = (
    ("digit_groups", rf"{_BEFORE}{_COUNTRY}(?:\(\d{{1,5}}\)[ .\-]?)?\d{{1,10}}(?:[ .\-]\d{{1,8}}){{0,5}}{_AFTER}", 0.3),
    ("trunk_zero", rf"{_BEFORE}0\d{{1,4}}(?:[ .\-]\d{{1,8}}){{1,5}}{_AFTER}", 0.5),
    ("area_code", rf"{_BEFORE}{_COUNTRY}\(\d{{1,5}}\)[ .\-]?\d{{1,8}}(?:[ .\-]\d{{1,8}}){{0,4}}{_AFTER}", 0.5),
    ("extension", rf"{_BEFORE}{_COUNTRY}\d{{1,10}}(?:[ .\-]\d{{1,8}}){{1,5}}\s?(?:x|ext\.?)\s?\d{{1,6}}(?!\w)", 0.5),
    # "555 0134 (mobile)", "555 0134-Office": Presidio's context window starts at the match, so a
    # label right after a long number is out of its reach.
    (
        "labelled",
        rf"{_BEFORE}{_COUNTRY}\d{{1,10}}(?:[ .\-]\d{{1,8}}){{1,5}}(?=[ \t]*[\-(/][ \t]*(?:office|fax|mobile|cell|phone|tel)\b)",
        0.5,
    ),
)
_DATE_SHAPE = re.compile(
    r"^(?:\d{4}[./\-][01]?\d[./\-][0-3]?\d|(?:[0-3]?\d[./\-][01]?\d|[01]?\d[./\-][0-3]?\d)[./\-](?:\d{4}|\d{2}))(?![./\-]?\d)"
)
_EXTENSION = re.compile(r"\s?(?:x|ext\.?)\s?\d{1,6}$", re.IGNORECASE)
# Placeholders and redaction marks of earlier steps (`[EMAIL_ADDRESS_1]`, `[PERSON]`) are never PII.
_MARK = re.compile(r"\[[A-Z][A-Z0-9_]*\]")
_LINE_BREAKS = str.maketrans("\r\n\v\f\u2028\u2029", "      ")


_SENTENCE_START = re.compile(r"(?:^|[.!?]\s+)([^\W\d_])")


def writes_in_case(text: str) -> bool:
    """Whether the text's sentences mostly start with a capital: its writer capitalises names too."""
    starts = [found.group(1) for found in _SENTENCE_START.finditer(text)]
    return bool(starts) and 2 * sum(first.isupper() for first in starts) >= len(starts)


class _ValidatedRegexRecognizer(EntityRecognizer):
    """guardproxy's validated regexes as one Presidio recognizer, seeing line breaks as spaces."""

    def __init__(self, entities: Sequence[str], language: str) -> None:
        super().__init__(
            supported_entities=list(entities), name="GuardproxyValidatedRegex", supported_language=language
        )

    def load(self) -> None:
        return None

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        wanted = [e for e in entities if e in self.supported_entities]
        if not wanted:
            return []
        return [
            RecognizerResult(span.label, span.start, span.end, span.score)
            for span in find_pii(text.translate(_LINE_BREAKS), wanted)
        ]


class _LoosePhoneRecognizer(PatternRecognizer):
    """Phone numbers in local formats, scored by how phone-like they look and the words around them."""

    def __init__(self, language: str) -> None:
        super().__init__(
            supported_entity="PHONE_NUMBER",
            name="GuardproxyLocalPhone",
            supported_language=language,
            patterns=[Pattern(name, regex, score) for name, regex, score in _LOOSE_PHONES],
            context=list(PHONE_CONTEXT),
            global_regex_flags=re.IGNORECASE,
        )

    def validate_result(self, pattern_text: str) -> bool | None:
        digits = sum(c.isdigit() for c in _EXTENSION.sub("", pattern_text))
        # None keeps the pattern's score (context may raise it); False drops the match.
        return None if 7 <= digits <= 15 else False

    def invalidate_result(self, pattern_text: str) -> bool | None:
        return bool(_DATE_SHAPE.match(pattern_text))


class _NerOnlySpacyEngine(SpacyNlpEngine):
    """A SpacyNlpEngine over a pipeline we loaded ourselves (Presidio's loader downloads missing models)."""

    def __init__(
        self,
        nlp: Language,
        language: str,
        ner: NerModelConfiguration,
        context_words: Iterable[str],
        lowercase_min_confidence: float = 0.0,
    ) -> None:
        super().__init__(models=[{"lang_code": language, "model_name": nlp.meta.get("name", "custom")}])
        self.ner_model_configuration = ner
        self.nlp = {language: nlp}  # type: ignore[assignment]  # Presidio annotates it as None until load()
        self._has_lemmas = "lemmatizer" in nlp.pipe_names
        self._context_words = frozenset(word.lower() for word in context_words)
        self._greedy = GreedyNer.for_pipeline(nlp)
        self._lowercase_min_confidence = lowercase_min_confidence

    def process_text(self, text: str, language: str) -> NlpArtifacts:
        if self._greedy is None:
            return super().process_text(text, language)
        doc = self.nlp[language].make_doc(text)  # type: ignore[index]
        # Fine-tuning on lower-cased names (chat written all in lower case) taught the model to take some
        # common words for names and places ("meth" redacted as a place in an answer). A writer who
        # capitalises sentence starts would capitalise a name: there a lower-case finding is dropped;
        # in lower-case text it must be a confident one.
        cased = writes_in_case(text)
        doc.set_ents(
            [
                span
                for span, confidence in self._greedy.entities(doc)
                if not span.text.islower() or (not cased and confidence >= self._lowercase_min_confidence)
            ],
            default="outside",
        )
        return self._doc_to_nlp_artifact(doc, language)

    def _doc_to_nlp_artifact(self, doc: Doc, language: str) -> NlpArtifacts:
        entities, scores = self._get_updated_entities(self._get_entities(doc), self._get_scores_for_entities(doc))
        # Without a lemmatizer every lemma is "", and context words ("phone", "card") never match:
        # the lower-cased text is a fair stand-in.
        lemmas = [token.lemma_ or token.lower_ for token in doc] if self._has_lemmas else [t.lower_ for t in doc]
        artifacts = NlpArtifacts(
            entities=entities,
            tokens=doc,
            tokens_indices=[token.idx for token in doc],
            lemmas=lemmas,
            nlp_engine=None,  # skips Presidio's keyword pass: a vocabulary lookup per token, done below from the doc
            language=language,
            scores=scores,
        )
        artifacts.nlp_engine = self
        # Presidio drops stop words before matching context, and spaCy's stop list has "call".
        artifacts.keywords = [
            part
            for token, lemma in zip(doc, lemmas, strict=True)
            if not token.is_punct and (not token.is_stop or lemma.lower() in self._context_words)
            for part in lemma.lower().split(":")
            if lemma not in ("-PRON-", "be")
        ]
        return artifacts


class _ContextEnhancer(LemmaContextAwareEnhancer):
    """Presidio's lemma context enhancer, given only the findings of recognizers with context words.

    Presidio deep-copies every finding first, NER's included, though it changes only those: on long
    prompts the copy was a third of the engine's own time. Findings are new on every call, so the
    others can pass through uncopied; the order of findings is kept."""

    def enhance_using_context(
        self,
        text: str,
        raw_results: list[RecognizerResult],
        nlp_artifacts: NlpArtifacts,
        recognizers: list[EntityRecognizer],
        context: list[str] | None = None,
    ) -> list[RecognizerResult]:
        with_context = {recognizer.id for recognizer in recognizers if recognizer.context}

        def has_context(result: RecognizerResult) -> bool:
            return (result.recognition_metadata or {}).get(RecognizerResult.RECOGNIZER_IDENTIFIER_KEY) in with_context

        wanted = [result for result in raw_results if has_context(result)]
        if not wanted:
            return raw_results
        enhanced = iter(super().enhance_using_context(text, wanted, nlp_artifacts, recognizers, context))
        return [next(enhanced) if has_context(result) else result for result in raw_results]


def shipped_model_dir() -> Path:
    try:
        return resolve_model_dir(default_models_root() / SHIPPED_MODEL)
    except DetectorFailed as exc:
        raise PolicyInvalid(f"model: {exc.message}; set `model: {STOCK_MODEL}` for the stock pipeline") from exc


def load_pipeline(model: str | None, full: bool) -> Language:
    """The spaCy pipeline, trimmed to `ner` and what it listens to unless `full`. Never downloads."""
    where = shipped_model_dir() if model is None else model
    try:
        nlp = spacy.load(where)
    except OSError as exc:  # spaCy's "can't find model" is an OSError (E050)
        raise PolicyInvalid(
            f"spaCy pipeline {str(where)!r} is not installed (pip install 'guardproxy[pii]' ships {STOCK_MODEL}): {exc}"
        ) from exc
    if "ner" not in nlp.pipe_names:
        raise PolicyInvalid(f"spaCy pipeline {str(where)!r} has no `ner` component (has {nlp.pipe_names})")
    if not full:
        keep = {"ner"} | {name for name, pipe in nlp.pipeline if "ner" in getattr(pipe, "listening_components", ())}
        for name in [n for n in nlp.pipe_names if n not in keep]:
            nlp.remove_pipe(name)
    return nlp


def _own_recognizer(own: PresidioRecognizerConfig, language: str) -> PatternRecognizer:
    patterns = [Pattern(f"{own.name}_{i}", p, own.score) for i, p in enumerate(own.patterns)]
    if own.deny_list:
        # Presidio's deny_list would follow the regex flags, which are case-sensitive here.
        words = "|".join(re.escape(word) for word in sorted(own.deny_list, key=len, reverse=True))
        patterns.append(Pattern(f"{own.name}_deny_list", rf"(?i)(?<!\w)(?:{words})(?!\w)", own.score))
    return PatternRecognizer(
        supported_entity=own.entity,
        name=own.name,
        supported_language=language,
        patterns=patterns,
        context=own.context,
        global_regex_flags=re.MULTILINE,
    )


class PresidioAnalysis:
    """The analyzer engine and what it needs, built once. `analyze` is synchronous and not reentrant."""

    def __init__(self, config: PresidioConfig) -> None:
        self.config = config
        self._normalizer = Normalizer()
        self.nlp = load_pipeline(config.model, config.full_pipeline)
        ner_labels = [label for label in self.nlp.get_pipe("ner").labels if label in NER_LABELS]  # type: ignore[attr-defined]
        ner_entities = sorted({NER_LABELS[label] for label in ner_labels})
        ner = NerModelConfiguration(
            model_to_presidio_entity_mapping={label: NER_LABELS[label] for label in ner_labels},
            labels_to_ignore=[label for label in self.nlp.get_pipe("ner").labels if label not in NER_LABELS],  # type: ignore[attr-defined]
            default_score=config.ner_score,
        )
        context_words = [*PHONE_CONTEXT, *(word for own in config.recognizers for word in own.context)]
        nlp_engine = _NerOnlySpacyEngine(self.nlp, config.language, ner, context_words, config.lowercase_min_confidence)
        registry = RecognizerRegistry(supported_languages=[config.language])
        if config.structured == "presidio":
            registry.load_predefined_recognizers(languages=[config.language], nlp_engine=nlp_engine)
        else:
            registry.add_recognizer(
                SpacyRecognizer(supported_language=config.language, supported_entities=ner_entities)
            )
            registry.add_recognizer(_ValidatedRegexRecognizer(VALIDATED_ENTITIES, config.language))
            registry.add_recognizer(_LoosePhoneRecognizer(config.language))
        for own in config.recognizers:
            registry.add_recognizer(_own_recognizer(own, config.language))
        self.engine = AnalyzerEngine(
            registry=registry,
            nlp_engine=nlp_engine,
            supported_languages=[config.language],
            # Labels also follow numbers ("555 0134 (mobile)"): look 2 words after as well as 5 before.
            context_aware_enhancer=_ContextEnhancer(context_prefix_count=5, context_suffix_count=2),
        )
        supported = set(self.engine.get_supported_entities(language=config.language))
        if config.entities is None:
            self.entities = [e for e in (*DEFAULT_ENTITIES, "ADDRESS") if e in supported]
        else:
            unknown = sorted(set(config.entities) - supported)
            if unknown:
                raise PolicyInvalid(f"entities {unknown} have no recognizer; known: {sorted(supported)}")
            self.entities = list(config.entities)

    def analyze(self, text: str) -> list[Span]:
        """Findings on what a reader sees (look-alike letters, JSON escapes: `Normalizer.readable`),
        with spans into `text`."""
        view = self._normalizer.readable(text)
        spans = self._analyze(view.text)
        if not view.changed:
            return spans
        return [Span(*view.original_span(s.start, s.end), s.label, s.score) for s in spans]

    def _analyze(self, text: str) -> list[Span]:
        with self.nlp.memory_zone():
            results = self.engine.analyze(
                text,
                language=self.config.language,
                entities=self.entities,
                score_threshold=self.config.score_threshold,
                allow_list=self.config.allow_list or None,
                allow_list_match=self.config.allow_list_match,
            )
            found = [(_is_ner(r), Span(r.start, r.end, r.entity_type, round(float(r.score), 4))) for r in results]
        marks = [m.span() for m in _MARK.finditer(text)] if "[" in text else []
        found = [(ner, s) for ner, s in found if not any(s.start < end and start < s.end for start, end in marks)]
        if self.config.code_aware and any(ner for ner, _ in found):
            regions = code_regions(text)
            found = [
                (ner, s)
                for ner, s in found
                if not (ner and s.label in CODE_SENSITIVE_LABELS and is_code_reference(text, s.start, s.end, regions))
            ]
        return _resolve_overlaps(text, found)


def _is_ner(result: RecognizerResult) -> bool:
    return (result.recognition_metadata or {}).get(RecognizerResult.RECOGNIZER_NAME_KEY) == "SpacyRecognizer"


def _resolve_overlaps(text: str, found: Sequence[tuple[bool, Span]]) -> list[Span]:
    """Disjoint spans. Pattern findings come first (higher score, then longer, wins among them):
    NER guesses wrong labels for numbers (a phone as an address). An NER span is then cut around
    the pattern findings it overlaps, so the rest of an address is still reported."""
    kept: list[Span] = []
    ranked = sorted(found, key=lambda f: (f[0], -f[1].score, -(f[1].end - f[1].start), f[1].start))
    for ner, span in ranked:
        pieces = [span]
        if ner:
            for k in kept:
                pieces = [p for piece in pieces for p in _minus(text, piece, k)]
        for piece in pieces:
            if all(piece.end <= k.start or k.end <= piece.start for k in kept):
                kept.append(piece)
    return sorted(kept, key=lambda s: s.start)


def _minus(text: str, span: Span, cut: Span) -> list[Span]:
    if cut.end <= span.start or span.end <= cut.start:
        return [span]
    pieces = []
    for start, end in ((span.start, cut.start), (cut.end, span.end)):
        while start < end and not text[start].isalnum():
            start += 1
        while end > start and not text[end - 1].isalnum():
            end -= 1
        if end - start >= 2:
            pieces.append(Span(start, end, span.label, span.score))
    return pieces


class PresidioDetector:
    """Built as `PresidioDetector(name, config, deps)` by the registry, `type: presidio` or `type: custom` (the
    fields of `type: presidio` in `options`)."""

    scope: Literal["text", "request"] = "text"

    def __init__(self, name: str, config: PresidioConfig | CustomDetectorConfig, deps: DetectorDeps) -> None:
        self.name = name
        if isinstance(config, CustomDetectorConfig):
            try:
                config = PresidioConfig(type="presidio", **config.options)
            except ValidationError as exc:
                raise PolicyInvalid(f"detectors.{name}: {exc}") from exc
        try:
            self.analysis = PresidioAnalysis(config)
        except PolicyInvalid as exc:
            raise PolicyInvalid(f"detectors.{name}: {exc.message}") from exc
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"presidio-{name}")

    @classmethod
    def model_sources(cls, config: PresidioConfig) -> tuple[Path, ...]:
        """The shipped registry when the policy names no spaCy pipeline (a named one is a fixed package)."""
        return (default_models_root() / SHIPPED_MODEL,) if config.model is None else ()

    def model_dirs(self) -> tuple[ModelDir, ...]:
        """The NER model this detector serves and where it came from: the policy watcher reloads when they differ."""
        loaded = self.analysis.nlp.path
        if loaded is None:
            return ()
        return tuple(ModelDir(source, Path(loaded)) for source in self.model_sources(self.analysis.config))

    def detect_sync(self, text: str) -> Detection:
        spans = self.analysis.analyze(text)
        if not spans:
            return Detection(score=0.0)
        counts: dict[str, int] = {}
        for span in spans:
            counts[span.label] = counts.get(span.label, 0) + 1
        return Detection(
            score=max(span.score for span in spans),
            labels=tuple(sorted(counts)),
            spans=tuple(spans),
            explanation="found " + ", ".join(f"{n} {label}" for label, n in sorted(counts.items())),
        )

    async def detect(self, text: str, ctx: Context) -> Detection:
        if not text.strip():
            return Detection(score=0.0)
        return await asyncio.get_running_loop().run_in_executor(self._executor, self.detect_sync, text)

    async def aclose(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
