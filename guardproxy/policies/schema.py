"""The pydantic schema of policy.yaml. Steps are a discriminated union on `action`."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from guardproxy.backends.configs import BackendConfig
from guardproxy.detectors.configs import DetectorConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelRoute(_Strict):
    name: str = Field(description="The model name clients ask for.")
    backend: str = Field(description="A key of `backends:`.")
    upstream_model: str | None = Field(None, description="Name sent upstream; defaults to `name`.")
    fallbacks: list[str] = Field(
        default_factory=list, description="Other model names (from `models:`) tried in order when this one is down."
    )


class _StepBase(_Strict):
    detector: str = Field(description="A key of `detectors:`.")
    threshold: float = Field(0.5, ge=0.0, le=1.0, description="The step fires when the detector's score >= this.")
    timeout_ms: int = Field(2000, ge=1, description="Longer than this counts as a detector error.")
    on_error: Literal["block", "allow"] = Field("block", description="block = fail closed; allow = fail open.")
    name: str | None = Field(None, description="Name in audit/metrics; defaults to `<stage>.<index>.<detector>`.")
    roles: list[str] | None = Field(
        None,
        description="Only texts from these roles (user, system, developer, assistant, tool, tool_call); null = all.",
    )


class BlockStep(_StepBase):
    action: Literal["block"]


class RedactStep(_StepBase):
    action: Literal["redact"]


class AnonymizeStep(_StepBase):
    action: Literal["anonymize"]


class FlagStep(_StepBase):
    action: Literal["flag"]


Step = Annotated[BlockStep | RedactStep | AnonymizeStep | FlagStep, Field(discriminator="action")]
Action = Literal["block", "redact", "anonymize", "flag"]


class AuditConfig(_Strict):
    path: str = Field("./guardproxy-audit.db", description="SQLite file of the embedded audit store.")
    store_raw: bool = Field(False, description="Store raw text. Off: only PII-redacted text is ever written.")
    queue_size: int = Field(10_000, ge=1)
    on_full: Literal["wait", "fail"] = Field("wait", description="When the write queue is full: wait or fail (503).")


class StreamSettings(_Strict):
    holdback_chars: int = Field(
        256, ge=1, description="Max characters held back when no sentence boundary is found; bounds span length."
    )
    context_chars: int = Field(200, ge=0, description="Released text re-shown to output steps as context.")


class ProxySettings(_Strict):
    block_error_code: Literal["content_filter", "invalid_prompt"] = "content_filter"
    refusal_message: str | None = Field(
        None, description="Content of a blocked non-streamed answer; null leaves content null."
    )
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    stream: StreamSettings = Field(default_factory=StreamSettings)


class Policy(_Strict):
    backends: dict[str, BackendConfig]
    models: list[ModelRoute] = Field(min_length=1)
    detectors: dict[str, DetectorConfig] = Field(default_factory=dict)
    input: list[Step] = Field(default_factory=list)
    output: list[Step] = Field(default_factory=list)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    proxy: ProxySettings = Field(default_factory=ProxySettings)

    @model_validator(mode="after")
    def _references_resolve(self) -> Policy:
        names = [m.name for m in self.models]
        for i, route in enumerate(self.models):
            if route.backend not in self.backends:
                raise ValueError(
                    f"models[{i}].backend: unknown backend {route.backend!r}; defined: {sorted(self.backends)}"
                )
            for fb in route.fallbacks:
                if fb not in names:
                    raise ValueError(f"models[{i}].fallbacks: unknown model {fb!r}; defined: {names}")
        if len(set(names)) != len(names):
            raise ValueError(f"models: duplicate model names in {names}")
        for name, detector in self.detectors.items():
            backend = getattr(detector, "backend", None)
            if backend is not None and backend not in self.backends:
                raise ValueError(
                    f"detectors.{name}.backend: unknown backend {backend!r}; defined: {sorted(self.backends)}"
                )
        for stage, steps in (("input", self.input), ("output", self.output)):
            for i, step in enumerate(steps):
                if step.detector not in self.detectors:
                    raise ValueError(
                        f"{stage}[{i}].detector: unknown detector {step.detector!r}; defined: {sorted(self.detectors)}"
                    )
        return self

    def route(self, model: str) -> ModelRoute | None:
        for r in self.models:
            if r.name == model:
                return r
        return None
