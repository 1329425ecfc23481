"""Detectors report what they find (score, labels, spans); policies decide what to do about it.

Build them with `build_detector` (the registry imports implementations lazily); every class is
constructed as `Class(name, config, deps)`, optional capabilities are protocols in `detectors/base.py`.
The audit log scrubs text with `guardproxy.detectors.pii_regex.scrub_pii` (= `redact_text(text, find_pii(text))`).
"""

from guardproxy.detectors.base import Detector, DetectorDeps
from guardproxy.detectors.registry import DETECTOR_TYPES, build_detector

__all__ = ["DETECTOR_TYPES", "Detector", "DetectorDeps", "build_detector"]
