"""Detector `type:` -> implementation, one explicit table.

Each entry names a module and a class; the module is imported only when a policy uses the
type, so heavy detectors (onnxruntime, presidio) cost nothing for policies that do not.
Every class, `custom` ones included, is constructed as `Class(name, config, deps)` (see `detectors/base.py`).

Adding a type: a config model joined to `DetectorConfig` in `configs.py`, and one row here.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from guardproxy.detectors.base import Detector, DetectorClass, DetectorDeps
from guardproxy.detectors.configs import CustomDetectorConfig, DetectorConfig
from guardproxy.errors import PolicyInvalid

DETECTOR_TYPES: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "injection_heuristic": ("guardproxy.detectors.injection_heuristic", "InjectionHeuristicDetector"),
        "pii_regex": ("guardproxy.detectors.pii_regex", "PiiRegexDetector"),
        "blocklist": ("guardproxy.detectors.blocklist", "BlocklistDetector"),
        "template": ("guardproxy.detectors.template", "TemplateDetector"),
        "url_guard": ("guardproxy.detectors.url_guard", "UrlGuardDetector"),
        "control_chars": ("guardproxy.detectors.control_chars", "ControlCharsDetector"),
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
        return getattr(importlib.import_module(module), attribute)  # a named import, not a capability probe
    except (ImportError, AttributeError) as exc:
        raise PolicyInvalid(f"{where}: cannot load {module}:{attribute} ({exc})") from exc


def detector_class(name: str, config: DetectorConfig) -> DetectorClass:
    """The class `detectors.<name>` is built from (imports its module)."""
    if isinstance(config, CustomDetectorConfig):
        module, _, attribute = config.class_path.partition(":")
        cls: DetectorClass = _load(f"detectors.{name}", module, attribute)
        return cls
    entry = DETECTOR_TYPES.get(config.type)
    if entry is None:
        known = sorted([*DETECTOR_TYPES, "custom"])
        raise PolicyInvalid(f"detectors.{name}: type {config.type!r} has no implementation; known: {known}")
    built_in: DetectorClass = _load(f"detectors.{name}", *entry)
    return built_in


def _checked(where: str, detector: object) -> Detector:
    if not isinstance(detector, Detector) or detector.scope not in ("text", "request"):
        raise PolicyInvalid(
            f"{where}: {type(detector).__name__} is not a detector "
            "(needs name, scope 'text'|'request', async detect(text, ctx), async aclose())"
        )
    return detector


def build_detector(name: str, config: DetectorConfig, deps: DetectorDeps | None = None) -> Detector:
    """A ready detector for `detectors.<name>` of a policy. The caller owns it and must `aclose()` it.

    Built as `Class(name, config, deps)`; detectors given the same `deps` share its backends (LLM-based checks
    call them, never close them) and its shared resources (one loaded copy of a model serves every classifier
    detector that names it). `custom` classes get their `CustomDetectorConfig` (their options in
    `config.options`), passed by keyword, so a class written for the former `Class(name, **options)` shape
    fails here with a clear message instead of taking the config for an option.
    """
    where = f"detectors.{name}"
    cls = detector_class(name, config)
    deps = deps if deps is not None else DetectorDeps()
    if not isinstance(config, CustomDetectorConfig):
        return _checked(where, cls(name, config, deps))
    try:
        detector = cls(name, config=config, deps=deps)
    except TypeError as exc:  # a constructor of another shape, or options it does not take
        raise PolicyInvalid(
            f"{where}: {config.class_path}(name, config, deps) failed: {exc} "
            "(custom detectors are built as Class(name, config, deps), options in config.options)"
        ) from exc
    return _checked(where, detector)
