"""Backend `type:` -> implementation. Builders import their module lazily, so heavy optional backends
(llama_cpp, transformers) cost nothing unless a policy uses them.

Adding a type: a config model in `configs.py` (joined to `BackendConfig`) and one builder here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from guardproxy.backends.base import Backend
from guardproxy.backends.configs import BackendConfig, OpenAIBackendConfig
from guardproxy.errors import PolicyInvalid


def _build_openai(name: str, config: BackendConfig) -> Backend:
    from guardproxy.backends.openai_http import OpenAIBackend

    if not isinstance(config, OpenAIBackendConfig):
        raise TypeError(f"backend {name!r}: the openai builder got a {type(config).__name__}")
    return OpenAIBackend(name, config)


def _build_llama_cpp(name: str, config: BackendConfig) -> Backend:
    from guardproxy.backends.llama_cpp import LlamaCppBackend, LlamaCppBackendConfig

    if not isinstance(config, LlamaCppBackendConfig):
        raise TypeError(f"backend {name!r}: the llama_cpp builder got a {type(config).__name__}")
    return LlamaCppBackend(name, config)


def _build_transformers(name: str, config: BackendConfig) -> Backend:
    from guardproxy.backends.transformers_backend import TransformersBackend, TransformersBackendConfig

    if not isinstance(config, TransformersBackendConfig):
        raise TypeError(f"backend {name!r}: the transformers builder got a {type(config).__name__}")
    return TransformersBackend(name, config)


BUILDERS: Mapping[str, Callable[[str, BackendConfig], Backend]] = MappingProxyType(
    {
        "openai": _build_openai,
        "llama_cpp": _build_llama_cpp,
        "transformers": _build_transformers,
    }
)


def build_backend(name: str, config: BackendConfig) -> Backend:
    """A ready backend for `backends.<name>` of a policy. The caller owns it and must `aclose()` it."""
    builder = BUILDERS.get(config.type)
    if builder is None:
        raise PolicyInvalid(f"backends.{name}: type {config.type!r} has no implementation; known: {sorted(BUILDERS)}")
    return builder(name, config)
