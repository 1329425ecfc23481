"""Pydantic configs of every detector type: the `type:` names are a contract of policy.yaml.

Kept apart from the detector implementations so that loading a policy never imports heavy
libraries (onnxruntime, presidio) that the policy does not use.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

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


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InjectionHeuristicConfig(_Strict):
    """Curated prompt-injection / jailbreak patterns applied after normalisation and decoding."""

    type: Literal["injection_heuristic"]
    categories: list[InjectionCategory] = Field(
        default_factory=lambda: list(_ALL_CATEGORIES), description="Pattern families to apply."
    )
    decode: bool = Field(True, description="Also scan base64/hex/rot13/URL-encoded payloads found in the text.")
    extra_patterns: list[str] = Field(default_factory=list, description="More regexes, matched on normalised text.")


class PiiRegexConfig(_Strict):
    """Structured PII and secrets found by validated regexes (Luhn, IBAN checksum)."""

    type: Literal["pii_regex"]
    entities: list[PiiEntity] = Field(default_factory=lambda: list(ALL_PII_ENTITIES))
    allow_list: list[str] = Field(default_factory=list, description="Exact values never reported.")


class BlocklistConfig(_Strict):
    """Literal words or regex patterns from YAML."""

    type: Literal["blocklist"]
    patterns: list[str] = Field(default_factory=list, description="Regexes (Python syntax, use (?i) for case).")
    words: list[str] = Field(default_factory=list, description="Literal phrases, matched case-insensitively.")
    label: str = "BLOCKLIST"


class TemplateConfig(_Strict):
    """Request-shape validation: roles, message count and size, system prompt templates."""

    type: Literal["template"]
    allowed_roles: list[str] | None = None
    max_messages: int | None = Field(None, ge=1)
    max_chars: int | None = Field(None, ge=1, description="Maximum characters over all messages.")
    system_templates: list[str] | None = Field(
        None,
        description="The system prompt must match one of these; `{name}` stands for any text.",
    )


class CustomDetectorConfig(_Strict):
    """Your own detector class: `module.path:ClassName`, constructed as `Class(name, **options)`."""

    type: Literal["custom"]
    class_path: str = Field(pattern=r"^[\w.]+:\w+$", description="`package.module:ClassName` on the Python path.")
    options: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments for the constructor.")


DetectorConfig = Annotated[
    InjectionHeuristicConfig
    | PiiRegexConfig
    | BlocklistConfig
    | TemplateConfig
    | CustomDetectorConfig
    | LlamaGuardConfig
    | OpenAIModerationConfig
    | LlmJudgeConfig
    | CanaryConfig
    | PresidioConfig,
    Field(discriminator="type"),
]
