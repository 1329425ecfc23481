"""Backends answer OpenAI-shaped requests: remote HTTP APIs or in-process models."""

from guardproxy.backends.base import Backend, Endpoint
from guardproxy.backends.registry import build_backend

__all__ = ["Backend", "Endpoint", "build_backend"]
