"""guardproxy: an OpenAI-compatible guardrail reverse proxy."""

__version__ = "0.1.0"
