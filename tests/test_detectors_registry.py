"""The detector registry: one table of types, lazy imports, custom classes checked against the protocol."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import TypeAdapter

from guardproxy.core import Context, Detection
from guardproxy.detectors import Detector, build_detector
from guardproxy.detectors.base import DetectorDeps
from guardproxy.detectors.configs import CustomDetectorConfig, DetectorConfig
from guardproxy.errors import PolicyInvalid

_CONFIG = TypeAdapter(DetectorConfig)


def _echo_options(*, score: float = 0.5) -> float:
    return score


class EchoDetector:
    """A custom detector used through `class_path` below."""

    scope = "text"

    def __init__(self, name: str, config: CustomDetectorConfig, deps: DetectorDeps) -> None:
        self.name = name
        self._score = _echo_options(**config.options)  # an unknown option is a TypeError, as for any class

    async def detect(self, text: str, ctx: Context) -> Detection:
        return Detection(score=self._score)

    async def aclose(self) -> None:
        return None


class NotADetector:
    def __init__(self, name: str, config: CustomDetectorConfig, deps: DetectorDeps) -> None:
        self.name = name


class FormerShape:
    """A custom detector written for the former `Class(name, **options)` shape."""

    scope = "text"

    def __init__(self, name: str, delay_s: float = 1.0, trigger: str = "") -> None:
        self.name = name

    async def detect(self, text: str, ctx: Context) -> Detection:
        return Detection(score=0.0)

    async def aclose(self) -> None:
        return None


@pytest.mark.parametrize(
    ("raw", "class_name", "scope"),
    [
        ({"type": "injection_heuristic"}, "InjectionHeuristicDetector", "text"),
        ({"type": "pii_regex"}, "PiiRegexDetector", "text"),
        ({"type": "blocklist", "words": ["x"]}, "BlocklistDetector", "text"),
        ({"type": "template", "max_messages": 3}, "TemplateDetector", "request"),
    ],
)
async def test_builds_each_type(raw: dict[str, object], class_name: str, scope: str) -> None:
    detector = build_detector("d", _CONFIG.validate_python(raw))
    assert isinstance(detector, Detector)
    assert type(detector).__name__ == class_name
    assert (detector.name, detector.scope) == ("d", scope)
    await detector.aclose()


async def test_custom_class_gets_name_and_options() -> None:
    config = _CONFIG.validate_python(
        {"type": "custom", "class_path": f"{__name__}:EchoDetector", "options": {"score": 0.7}}
    )
    detector = build_detector("echo", config)
    assert (await detector.detect("x", Context(request_id="r", stage="input"))).score == 0.7


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"class_path": "no_such_module_xyz:Thing"}, "cannot load"),
        ({"class_path": f"{__name__}:Missing"}, "cannot load"),
        ({"class_path": f"{__name__}:NotADetector"}, "is not a detector"),
        ({"class_path": f"{__name__}:EchoDetector", "options": {"bogus": 1}}, "failed"),
        # Passed by keyword, config and deps never land in the former shape's option parameters.
        ({"class_path": f"{__name__}:FormerShape"}, r"built as Class\(name, config, deps\)"),
    ],
)
def test_bad_custom_detectors_are_policy_errors(raw: dict[str, object], message: str) -> None:
    with pytest.raises(PolicyInvalid, match=message):
        build_detector("c", _CONFIG.validate_python({"type": "custom", **raw}))


def test_importing_the_package_loads_no_implementation() -> None:
    code = (
        "import sys, guardproxy.detectors, guardproxy.detectors.configs\n"
        "loaded = [m for m in sys.modules if m.startswith('guardproxy.detectors.')]\n"
        "print(sorted(loaded))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert "injection_heuristic" not in out and "pii_regex" not in out and "template" not in out
