"""Detector `type:` -> implementation, one explicit table.

Each entry names a module and a class; the module is imported only when a policy uses the
type, so heavy detectors (onnxruntime, presidio) cost nothing for policies that do not.
Every class is constructed as `Class(name, config)`; `custom` detectors as `Class(name, **options)`.

Adding a type: a config model joined to `DetectorConfig` in `configs.py`, and one row here.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from guardproxy.backends.base import Backend
from guardproxy.detectors.base import Detector
from guardproxy.detectors.configs import CustomDetectorConfig, DetectorConfig
from guardproxy.detectors.shared import SharedResources
from guardproxy.errors import PolicyInvalid

DETECTOR_TYPES: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "injection_heuristic": ("guardproxy.detectors.injection_heuristic", "InjectionHeuristicDetector"),
        "pii_regex": ("guardproxy.detectors.pii_regex", "PiiRegexDetector"),
        "blocklist": ("guardproxy.detectors.blocklist", "BlocklistDetector"),
        "template": ("guardproxy.detectors.template", "TemplateDetector"),
        "presidio": ("guardproxy.detectors.presidio", "PresidioDetector"),
        "llama_guard": ("guardproxy.detectors.llama_guard", "LlamaGuardDetector"),
        "openai_moderation": ("guardproxy.detectors.openai_moderation", "OpenAIModerationDetector"),
        "llm_judge": ("guardproxy.detectors.llm_judge", "LlmJudgeDetector"),
        "canary": ("guardproxy.detectors.canary", "CanaryDetector"),
        "injection_classifier": ("guardproxy.detectors.onnx_classifier", "InjectionClassifierDetector"),
        "moderation_classifier": ("guardproxy.detectors.onnx_classifier", "ModerationClassifierDetector"),
    }
)


def _load(where: str, module: str, attribute: str) -> Any:
    try:
        return getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as exc:
        raise PolicyInvalid(f"{where}: cannot load {module}:{attribute} ({exc})") from exc


def _checked(where: str, detector: object) -> Detector:
    if not isinstance(detector, Detector) or detector.scope not in ("text", "request"):
        raise PolicyInvalid(
            f"{where}: {type(detector).__name__} is not a detector "
            "(needs name, scope 'text'|'request', async detect(text, ctx), async aclose())"
        )
    return detector


def _build_custom(name: str, config: CustomDetectorConfig) -> Detector:
    where = f"detectors.{name}"
    module, _, attribute = config.class_path.partition(":")
    cls = _load(where, module, attribute)
    try:
        detector = cls(name, **config.options)
    except TypeError as exc:  # options that the constructor does not take
        raise PolicyInvalid(f"{where}: {config.class_path}({name!r}, **options) failed: {exc}") from exc
    return _checked(where, detector)


def build_detector(
    name: str,
    config: DetectorConfig,
    backends: Mapping[str, Backend] | None = None,
    shared: SharedResources | None = None,
) -> Detector:
    """A ready detector for `detectors.<name>` of a policy. The caller owns it and must `aclose()` it.

    Classes that set `uses_backends = True` (LLM-based checks) are built as
    `Class(name, config, backends)` with the policy's backends, which they share, never own.
    Classes that set `uses_shared = True` (model classifiers) are built as `Class(name, config, shared)`:
    detectors given the same `shared` load one copy of a model and share its forward passes.
    """
    if isinstance(config, CustomDetectorConfig):
        return _build_custom(name, config)
    entry = DETECTOR_TYPES.get(config.type)
    if entry is None:
        known = sorted([*DETECTOR_TYPES, "custom"])
        raise PolicyInvalid(f"detectors.{name}: type {config.type!r} has no implementation; known: {known}")
    cls = _load(f"detectors.{name}", *entry)
    if getattr(cls, "uses_backends", False):
        return _checked(f"detectors.{name}", cls(name, config, backends or {}))
    if getattr(cls, "uses_shared", False):
        return _checked(f"detectors.{name}", cls(name, config, shared if shared is not None else SharedResources()))
    return _checked(f"detectors.{name}", cls(name, config))
