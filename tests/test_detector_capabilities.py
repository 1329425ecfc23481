"""Issue 12.1: one constructor shape, `Class(name, config, deps)`, and optional capabilities declared as
protocols (`detectors/base.py`) that the runtime reads once, when it is built, never per request."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar, Literal

import openai
import pytest

from guardproxy.backends.base import Backend
from guardproxy.core import JSON, Context, Detection
from guardproxy.detectors.base import (
    DetectorDeps,
    InlineDetector,
    ModelSourcesOf,
    RequestInstrumenter,
    ServesModelFiles,
)
from guardproxy.detectors.blocklist import BlocklistDetector
from guardproxy.detectors.canary import CanaryDetector
from guardproxy.detectors.configs import CustomDetectorConfig
from guardproxy.detectors.injection_heuristic import InjectionHeuristicDetector
from guardproxy.detectors.onnx_classifier import InjectionClassifierDetector, ModerationClassifierDetector
from guardproxy.detectors.pii_regex import PiiRegexDetector
from guardproxy.detectors.template import TemplateDetector
from guardproxy.detectors.unscanned import UnscannedParts
from guardproxy.policies.loader import load_policy
from guardproxy.proxy.runtime import build_runtime
from tests.fake_upstream import FakeUpstream, Reply
from tests.policies import write_policy
from tests.proxy_harness import ProxyServer

MARK = "[checked by the tenant's guard]"


class BackendJudge:
    """A custom detector that asks a policy backend (from `deps`) whether a text is unsafe."""

    scope: Literal["text", "request"] = "text"

    def __init__(self, name: str, config: CustomDetectorConfig, deps: DetectorDeps) -> None:
        self.name = name
        self._backend: Backend = deps.backend(name, str(config.options["backend"]))
        self._model = str(config.options.get("model", "judge"))

    async def detect(self, text: str, ctx: Context) -> Detection:
        body: JSON = {"model": self._model, "messages": [{"role": "user", "content": f"Unsafe? {text}"}]}
        answer = await self._backend.complete("chat/completions", body)
        verdict = str(answer["choices"][0]["message"]["content"])
        return Detection(score=1.0 if verdict.startswith("unsafe") else 0.0, labels=("judged",))

    async def aclose(self) -> None:
        return None  # the backend belongs to the runtime


class Marker:
    """A custom output detector that marks every chat request (like the canary) and checks inline."""

    scope: Literal["text", "request"] = "text"
    inline: ClassVar[bool] = True

    def __init__(self, name: str, config: CustomDetectorConfig, deps: DetectorDeps) -> None:
        self.name = name

    def instrument(self, body: JSON, request_id: str) -> None:
        messages = body["messages"]
        if not (messages and messages[0].get("content") == MARK):
            messages.insert(0, {"role": "system", "content": MARK})

    async def detect(self, text: str, ctx: Context) -> Detection:
        return Detection(score=1.0 if MARK in text else 0.0, labels=("mark_leak",))

    async def aclose(self) -> None:
        return None


CUSTOM = f"""
  judge: {{type: custom, class_path: "{__name__}:BackendJudge", options: {{backend: upstream, model: judge-1}}}}
  marker: {{type: custom, class_path: "{__name__}:Marker"}}
"""


def _policy(directory: Path, upstream: str) -> Path:
    path = write_policy(directory, upstream)
    text = path.read_text().replace("detectors:\n", "detectors:" + CUSTOM, 1)
    text = text.replace("input:\n", "input:\n  - {detector: judge, action: block, name: judge, roles: [user]}\n", 1)
    text = text.replace("output:\n", "output:\n  - {detector: marker, action: block}\n", 1)
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def proxy(upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyServer]:
    with ProxyServer(_policy(tmp_path_factory.mktemp("capabilities"), upstream_server.base_url)) as server:
        yield server


@pytest.fixture
def client(proxy: ProxyServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.url + "/v1", api_key="client-key", max_retries=0)


def test_a_custom_detector_calls_a_policy_backend_it_was_given(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    """Custom detectors get the policy's backends in `deps`, like the built-in LLM checks."""
    upstream.enqueue(Reply(content="unsafe"))
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "How to pick a lock?"}]
        )
    assert info.value.code == "content_filter"
    body = info.value.body
    assert isinstance(body, dict) and body["guardproxy"]["step"] == "judge"
    [asked] = upstream.requests  # the judge's call; the blocked request never reached the upstream
    assert asked.body["model"] == "judge-1"
    assert asked.body["messages"][0]["content"] == "Unsafe? How to pick a lock?"


def test_declared_instrumenter_marks_the_request_and_its_leak_is_caught(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    upstream.enqueue(Reply(content="safe"), Reply(content="Sure."))  # the judge's answer, then the model's
    answer = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
    assert answer.choices[0].message.content == "Sure."
    forwarded = upstream.requests[1].body["messages"]
    assert forwarded[0] == {"role": "system", "content": MARK}
    upstream.enqueue(Reply(content="safe"), Reply(content=f"My instructions say {MARK}"))
    leaked = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
    assert leaked.choices[0].finish_reason == "content_filter"


async def test_capabilities_are_read_once_when_the_runtime_is_built(tmp_path: Path) -> None:
    policy = load_policy(_policy(tmp_path, "http://127.0.0.1:9/v1"))
    rt = build_runtime(policy)
    try:
        assert [type(i).__name__ for i in rt.instrumenters] == ["Marker"]
        assert [s.inline for s in rt.output.text_steps] == [True, True, True]  # marker, blocklist, pii_regex
        assert rt.output.inline_only
        assert [s.inline for s in rt.input.text_steps] == [False, True, True]  # the judge awaits its backend
        assert not rt.input.inline_only
    finally:
        await rt.aclose()


def test_built_in_detectors_declare_their_capabilities() -> None:
    for inline in (BlocklistDetector, PiiRegexDetector, InjectionHeuristicDetector, TemplateDetector, UnscannedParts):
        assert isinstance(inline, InlineDetector) and inline.inline, inline
    assert not isinstance(CanaryDetector, InlineDetector)
    assert issubclass(CanaryDetector, RequestInstrumenter)
    assert not issubclass(BlocklistDetector, RequestInstrumenter)
    for classifier in (InjectionClassifierDetector, ModerationClassifierDetector):
        assert issubclass(classifier, ServesModelFiles) and isinstance(classifier, ModelSourcesOf)
    assert not issubclass(CanaryDetector, ServesModelFiles) and not isinstance(CanaryDetector, ModelSourcesOf)
