"""Pydantic configs of every detector type: the `type:` names are a contract of policy.yaml.

Kept apart from the detector implementations so that loading a policy never imports heavy
libraries (onnxruntime, presidio) that the policy does not use.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from guardproxy.config_base import StrictModel
from guardproxy.detectors.canary import CanaryConfig
from guardproxy.detectors.llama_guard import LlamaGuardConfig
from guardproxy.detectors.llm_judge import LlmJudgeConfig
from guardproxy.detectors.openai_moderation import OpenAIModerationConfig
from guardproxy.detectors.presidio_config import PresidioConfig

PiiEntity = Literal[
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "US_SSN",
    "IBAN_CODE",
    "IP_ADDRESS",
    "SECRET",
]
ALL_PII_ENTITIES: tuple[PiiEntity, ...] = (
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "US_SSN",
    "IBAN_CODE",
    "IP_ADDRESS",
    "SECRET",
)

InjectionCategory = Literal["instruction_override", "role_play", "prompt_extraction", "delimiter_injection"]
_ALL_CATEGORIES: tuple[InjectionCategory, ...] = (
    "instruction_override",
    "role_play",
    "prompt_extraction",
    "delimiter_injection",
)


class InjectionHeuristicConfig(StrictModel):
    """Curated prompt-injection / jailbreak patterns applied after normalisation and decoding."""

    type: Literal["injection_heuristic"]
    categories: list[InjectionCategory] = Field(
        default_factory=lambda: list(_ALL_CATEGORIES), description="Pattern families to apply."
    )
    decode: bool = Field(True, description="Also scan base64/hex/rot13/URL-encoded payloads found in the text.")
    extra_patterns: list[str] = Field(default_factory=list, description="More regexes, matched on normalised text.")


class PiiRegexConfig(StrictModel):
    """Structured PII and secrets found by validated regexes (Luhn, IBAN checksum)."""

    type: Literal["pii_regex"]
    entities: list[PiiEntity] = Field(default_factory=lambda: list(ALL_PII_ENTITIES))
    allow_list: list[str] = Field(default_factory=list, description="Exact values never reported.")


class BlocklistConfig(StrictModel):
    """Literal words or regex patterns from YAML."""

    type: Literal["blocklist"]
    patterns: list[str] = Field(default_factory=list, description="Regexes (Python syntax, use (?i) for case).")
    words: list[str] = Field(default_factory=list, description="Literal phrases, matched case-insensitively.")
    label: str = "BLOCKLIST"


class TemplateConfig(StrictModel):
    """Request-shape validation: roles, message count and size, system prompt templates."""

    type: Literal["template"]
    allowed_roles: list[str] | None = None
    max_messages: int | None = Field(None, ge=1)
    max_chars: int | None = Field(None, ge=1, description="Maximum characters over all messages.")
    system_templates: list[str] | None = Field(
        None,
        description="The system prompt must match one of these; `{name}` stands for any text.",
    )


class UrlGuardConfig(StrictModel):
    """Links and markdown images in answers that point outside an allow-list or carry encoded data."""

    type: Literal["url_guard"]
    allow_hosts: list[str] | None = Field(
        None,
        description="Hosts links may point to (each also allows its subdomains); null = hosts are not checked, "
        "[] = every absolute link fires `URL_HOST`.",
    )
    images_only: bool = Field(
        False, description="Only images (markdown `![..](..)`, HTML `<img>`): what a renderer fetches unclicked."
    )
    max_encoded_chars: int = Field(
        48,
        ge=8,
        description="A base64/hex-looking run this long in a URL's path, query or fragment fires `URL_DATA` "
        "(48: a 40-character git hash passes, 36 bytes of base64 do not).",
    )
    max_query_chars: int = Field(200, ge=1, description="A longer query string fires `URL_DATA`.")


class ControlCharsConfig(StrictModel):
    """Terminal control sequences (ANSI escapes, OSC 8 hyperlinks) and other control characters."""

    type: Literal["control_chars"]


class CustomDetectorConfig(StrictModel):
    """Your own detector class: `module.path:ClassName`, constructed as `Class(name, config=..., deps=...)`."""

    type: Literal["custom"]
    class_path: str = Field(pattern=r"^[\w.]+:\w+$", description="`package.module:ClassName` on the Python path.")
    options: dict[str, Any] = Field(
        default_factory=dict, description="Settings of your class, which reads them from `config.options`."
    )


class _ClassifierConfig(StrictModel):
    model_path: str | None = Field(
        None,
        description="A model directory (model_card.json, model.onnx, tokenizer.json), or a registry directory "
        "of vN versions (the newest is used). Default: the model the project ships in models/.",
    )
    max_length: int | None = Field(None, ge=16, le=512, description="Window tokens; default from the model card.")
    stride: int | None = Field(None, ge=0, description="Window overlap in tokens; default from the model card.")
    threads: int = Field(2, ge=1, description="onnxruntime intra-op threads per inference.")
    batch_size: int = Field(8, ge=1, description="Windows per onnxruntime call.")
    sentence_windows: int = Field(
        32,
        ge=0,
        description="Most sentence windows per text, scored beside the whole-text windows (the worst window "
        "counts), so that harmless sentences around a harmful one cannot dilute it; beyond this many sentences, "
        "neighbours are grouped. 0 = whole-text windows only.",
    )
    sentence_window_tokens: int = Field(
        64, ge=8, le=510, description="Longest sentence window in tokens; longer sentences are cut, overlapping."
    )
    sentence_window_margin: float | None = Field(
        None,
        ge=0.0,
        lt=1.0,
        description="How sentence windows count for this detector: each raw threshold t becomes "
        "t + margin * (1 - t) on them (stricter: a short sentence alone looks more harmful than in context). "
        "null = they do not count. `sentence_windows` and `sentence_window_tokens` must match across the "
        "detectors of one model for them to share a forward pass; the margin need not.",
    )


class InjectionClassifierConfig(_ClassifierConfig):
    """Prompt injection / jailbreak classifier (direct, and indirect in documents or tool results), int8 ONNX."""

    type: Literal["injection_classifier"]
    threshold: float | None = Field(
        None, gt=0.0, lt=1.0, description="Raw probability reported as score 0.5; default from the model card."
    )


class ModerationClassifierConfig(_ClassifierConfig):
    """Harmful-content classifier with OpenAI's moderation categories, int8 ONNX."""

    type: Literal["moderation_classifier"]
    # 0.4 chosen on bench/results/windowing.json (the same data it reports, train tier): against whole-text
    # windows only, moderation FPR 0.13% -> 0.83% on benign_prompts and 3.5% -> 5.5% on wildguard_benign, recall
    # of do_not_answer with 2 harmless sentences either side 18% -> 43% (plain 60%). 0.25 caught more (54%) at
    # twice the added FPR (1.5%, 6.9%); 0 (the card's thresholds) 62% at 4.0% / 11.2%.
    sentence_window_margin: float | None = Field(
        0.4,
        ge=0.0,
        lt=1.0,
        description="How sentence windows count: each raw threshold t becomes t + margin * (1 - t) on them "
        "(a short sentence alone looks more harmful than in context; measured in bench/results/windowing.json). "
        "null = they do not count, and harmless sentences around a harmful one dilute it.",
    )
    categories: list[str] | None = Field(
        None,
        description="Categories that fire (harassment, hate, self-harm, sexual, violence, illicit); default all "
        "the model has. Scores of the others are still reported by /v1/moderations.",
    )
    thresholds: dict[str, float] = Field(
        default_factory=dict,
        description="Raw probability per category reported as score 0.5; default from the model card "
        "(chosen on validation for a target false-positive rate).",
    )


DetectorConfig = Annotated[
    InjectionHeuristicConfig
    | PiiRegexConfig
    | BlocklistConfig
    | UrlGuardConfig
    | ControlCharsConfig
    | TemplateConfig
    | CustomDetectorConfig
    | LlamaGuardConfig
    | OpenAIModerationConfig
    | LlmJudgeConfig
    | CanaryConfig
    | PresidioConfig
    | InjectionClassifierConfig
    | ModerationClassifierConfig,
    Field(discriminator="type"),
]


def policy_backend_of(config: DetectorConfig) -> str | None:
    """The policy backend a detector calls (LLM-based checks), or None."""
    if isinstance(config, LlmJudgeConfig | OpenAIModerationConfig | LlamaGuardConfig):
        return config.backend
    return None


def checks_texts(config: DetectorConfig) -> bool:
    """Whether the detector this config builds checks texts (scope `text`) rather than whole requests, as far
    as the config tells: only `template` checks requests; a `custom` class says so itself when it is built
    (`Chain.build` checks it then). tests/test_cascade.py holds this to every built-in class's `scope`."""
    return not isinstance(config, TemplateConfig)
