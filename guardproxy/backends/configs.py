"""Pydantic configs of every backend type (`type:` names are a contract of policy.yaml)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from guardproxy.config_base import StrictModel


class OpenAIBackendConfig(StrictModel):
    """Any OpenAI-compatible HTTP API."""

    type: Literal["openai"]
    base_url: str = "https://api.openai.com/v1"
    api_key: str = ""
    timeout_s: float = Field(30.0, gt=0, description="Whole-request (non-stream) or between-bytes (stream) timeout.")
    connect_timeout_s: float = Field(5.0, gt=0)
    max_retries: int = Field(2, ge=0, description="Retries on connect errors, 429 and 5xx before the first byte.")
    backoff_s: float = Field(0.2, ge=0, description="First retry delay; doubles each retry.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra headers sent upstream.")
    max_connections: int = Field(256, ge=1)


from guardproxy.backends.llama_cpp import LlamaCppBackendConfig  # noqa: E402 - the union needs every member
from guardproxy.backends.transformers_backend import TransformersBackendConfig  # noqa: E402

BackendConfig = Annotated[
    OpenAIBackendConfig | LlamaCppBackendConfig | TransformersBackendConfig, Field(discriminator="type")
]
