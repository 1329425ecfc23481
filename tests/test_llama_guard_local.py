"""The in-process Llama Guard engine (`engine: llama_cpp`) with real llama-cpp-python.

Tiny random-weight GGUFs written here cover locating, loading, prompt wrappers and the prefix cache in well
under a second each; SmolLM2-135M-Instruct (`base_chat_gguf`, a real chat model that does not speak the Llama
Guard protocol) covers a real model's prose answer, through the detector and through the proxy.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
import pytest

pytest.importorskip("llama_cpp")
pytest.importorskip("gguf")

from guardproxy.core import Context
from guardproxy.detectors.base import DetectorDeps
from guardproxy.detectors.llama_guard import LlamaGuardConfig, LlamaGuardDetector
from guardproxy.detectors.llama_guard_local import (
    GGUF_FILE,
    SHIPPED_MODEL,
    GuardVerdict,
    LocalLlamaGuard,
    common_prefix,
    wrap,
)
from guardproxy.detectors.llama_guard_prompt import (
    LLAMA_GUARD_3_CATEGORIES,
    GuardRole,
    Turn,
    render_task,
    render_task_head,
)
from guardproxy.detectors.model_files import MODELS_DIR_ENV, ModelDir
from guardproxy.errors import DetectorFailed, PolicyInvalid
from tests.audit_wait import audit_row
from tests.fake_upstream import FakeUpstream, Reply
from tests.policies import write_policy_with
from tests.proxy_harness import ProxyServer
from tests.tiny_models import LLAMA3_SPECIALS, write_tiny_gguf

# The verdict words as one token each, as in a real vocabulary (SentencePiece merges need every prefix).
VERDICT_WORDS = tuple(w[:n] for w in ("▁safe", "▁unsafe") for n in range(2, len(w) + 1))

INPUT = Context("req-1", "input", "user", "gpt-4o-mini", {})
OUTPUT = Context(
    "req-2",
    "output",
    "assistant",
    "gpt-4o-mini",
    {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "How do I bake bread?"}]},
)


def config(**fields: Any) -> LlamaGuardConfig:
    return LlamaGuardConfig.model_validate({"type": "llama_guard", **fields})


@pytest.fixture(scope="module")
def tiny_chatml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("tiny-chatml") / "tiny.gguf", pieces=VERDICT_WORDS)


@pytest.fixture(scope="module")
def tiny_llama3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gguf(
        tmp_path_factory.mktemp("tiny-llama3") / "tiny.gguf", specials=LLAMA3_SPECIALS, pieces=VERDICT_WORDS
    )


@pytest.fixture(scope="module")
def tiny_plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("tiny-plain") / "tiny.gguf", specials=(), pieces=VERDICT_WORDS)


def load(path: Path, *, max_tokens: int = 8, wrapper: Any = "auto", **options: Any) -> LocalLlamaGuard:
    return LocalLlamaGuard.load(
        "test", path, wrapper=wrapper, n_ctx=2048, n_threads=1, max_tokens=max_tokens, **options
    )


# --- a fake engine: the detector's side of the seam ---------------------------------------------------------


@dataclass
class ScriptedEngine:
    """`LlamaGuardEngine` answering from a script and recording what it was asked."""

    answers: list[str]
    calls: list[tuple[GuardRole, str]] = field(default_factory=list)
    closed: bool = False

    async def classify(self, role: GuardRole, task: str) -> GuardVerdict:
        self.calls.append((role, task))
        answer = self.answers.pop(0)
        p_unsafe = 0.75 if answer.startswith("unsafe") else 0.25
        return GuardVerdict(answer, p_unsafe, tokens_evaluated=10, tokens_reused=0, tokens_generated=2)

    def close(self) -> None:
        self.closed = True


async def test_the_detector_renders_the_task_per_stage_and_reports_the_verdict() -> None:
    custom = {"name": "Financial Advice", "description": "Recommending specific stocks."}
    engine = ScriptedEngine(["safe", "unsafe\nS15"])
    detector = LlamaGuardDetector(
        "lg", config(categories=["S1", "S10"], custom_categories=[custom]), DetectorDeps(), engine=engine
    )
    safe = await detector.detect("What is the boiling point of water?", INPUT)
    assert safe.score == pytest.approx(0.25) and safe.labels == ()
    unsafe = await detector.detect("Buy ACME shares now.", OUTPUT)
    assert unsafe.score == pytest.approx(0.75)
    assert unsafe.labels == ("unsafe", "S15", "financial_advice")
    (role_in, task_in), (role_out, task_out) = engine.calls
    assert role_in == "User" and task_in == render_task(
        [Turn("User", "What is the boiling point of water?")], detector.categories
    )
    assert role_out == "Agent"
    assert task_out == render_task(
        [Turn("User", "How do I bake bread?"), Turn("Agent", "Buy ACME shares now.")], detector.categories
    )
    assert "S15: Financial Advice.\nRecommending specific stocks." in task_out  # custom categories on this engine
    await detector.aclose()
    assert not engine.closed  # an injected engine belongs to its caller


async def test_a_malformed_answer_is_a_detector_error() -> None:
    engine = ScriptedEngine(["I am a helpful assistant!", "unsafe\nS99"])
    detector = LlamaGuardDetector("lg", config(), DetectorDeps(), engine=engine)
    with pytest.raises(DetectorFailed, match="unexpected answer"):
        await detector.detect("hello", INPUT)
    with pytest.raises(DetectorFailed, match="unknown categories"):
        await detector.detect("hello", INPUT)


def test_engine_rules_of_the_config() -> None:
    assert config().engine == "llama_cpp" and config().model_path is None  # no parameters: the shipped model
    assert config(custom_categories=[{"name": "X"}]).engine == "llama_cpp"  # no `prompt_format: raw` needed
    with pytest.raises(ValueError, match="engine llama_cpp"):
        config(model="lg3")
    with pytest.raises(ValueError, match="prompt_wrapper"):
        config(prompt_wrapper="mistral")


# --- locating the model: the shipped registry, a GGUF file, clear errors -----------------------------------


def shipped_registry(root: Path, gguf: Path) -> Path:
    """`models/llama-guard-smol/v1/` as the repository ships it, with `gguf` as its model.gguf."""
    version = root / SHIPPED_MODEL / "v1"
    version.mkdir(parents=True)
    (version / GGUF_FILE).symlink_to(gguf)
    (version / "model_card.json").write_text(json.dumps({"name": SHIPPED_MODEL}))
    return root / SHIPPED_MODEL


async def test_no_parameters_loads_the_shipped_model(
    tiny_chatml: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = shipped_registry(tmp_path, tiny_chatml)
    monkeypatch.setenv(MODELS_DIR_ENV, str(tmp_path))
    cfg = config()
    assert LlamaGuardDetector.model_sources(cfg) == (registry,)
    detector = LlamaGuardDetector("lg", cfg, DetectorDeps())
    try:
        assert detector.model_dirs() == (ModelDir(registry, registry / "v1"),)
        with pytest.raises(DetectorFailed, match="unexpected answer"):  # random weights: word salad
            await detector.detect("hello there", INPUT)
    finally:
        await detector.aclose()


async def test_the_policy_watcher_sees_the_shipped_registry_but_not_a_gguf_file(
    tiny_chatml: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from guardproxy.policies.loader import parse_policy
    from guardproxy.policies.watcher import policy_model_dirs

    registry = shipped_registry(tmp_path / "models", tiny_chatml)
    monkeypatch.setenv(MODELS_DIR_ENV, str(tmp_path / "models"))
    detectors = f"  shipped: {{type: llama_guard}}\n  own: {{type: llama_guard, model_path: '{tiny_chatml}'}}\n"
    path = write_policy_with(tmp_path, "http://127.0.0.1:9/v1", detectors=detectors)
    policy = parse_policy(path.read_text(), source=str(path))
    assert policy_model_dirs(policy) == (ModelDir(registry, registry / "v1"),)  # a new vN there reloads the policy


async def test_detectors_with_the_same_model_and_categories_share_one_engine(tiny_chatml: Path) -> None:
    deps = DetectorDeps()
    detectors = [
        LlamaGuardDetector("a", config(model_path=str(tiny_chatml)), deps),
        LlamaGuardDetector("b", config(model_path=str(tiny_chatml)), deps),
        LlamaGuardDetector("c", config(model_path=str(tiny_chatml), categories=["S1"]), deps),
    ]
    assert len(deps.shared) == 2  # another category list is another prompt prefix: its own contexts
    for detector in detectors:
        await detector.aclose()
    assert len(deps.shared) == 0


def test_a_missing_shipped_model_is_a_policy_error_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MODELS_DIR_ENV, str(tmp_path))
    with pytest.raises(PolicyInvalid) as err:
        LlamaGuardDetector("lg", config(), DetectorDeps())
    assert "detectors.lg.model_path (null: the shipped guard model)" in err.value.message
    assert str(tmp_path / SHIPPED_MODEL) in err.value.message


def test_a_wrong_model_path_is_a_policy_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "Llama-Guard-3-1B.Q4_K_M.gguf"
    with pytest.raises(PolicyInvalid, match=f"detectors.lg.model_path: {missing}: no such file"):
        LlamaGuardDetector("lg", config(model_path=str(missing)), DetectorDeps())
    not_gguf = tmp_path / "model.bin"
    not_gguf.write_bytes(b"PK\x03\x04 not a gguf")
    with pytest.raises(PolicyInvalid, match="not a GGUF file"):
        LlamaGuardDetector("lg", config(model_path=str(not_gguf)), DetectorDeps())
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(b"GGUF" + b"\0" * 16)
    with pytest.raises(PolicyInvalid, match=f"{truncated}: llama.cpp could not load it"):
        LlamaGuardDetector("lg", config(model_path=str(truncated)), DetectorDeps())
    version = tmp_path / "v1"
    version.mkdir()
    (version / "model_card.json").write_text("{}")
    with pytest.raises(PolicyInvalid, match=f"{version} has no model.gguf"):
        LlamaGuardDetector("lg", config(model_path=str(version)), DetectorDeps())


# --- prompt wrappers -------------------------------------------------------------------------------------


def test_the_wrapper_is_read_from_the_vocabulary(tiny_chatml: Path, tiny_llama3: Path, tiny_plain: Path) -> None:
    for path, expected in ((tiny_llama3, "llama3"), (tiny_chatml, "chatml")):
        engine = load(path)
        assert engine.wrapper == expected
        engine.close()
    with pytest.raises(PolicyInvalid, match=r"neither <\|start_header_id\|>.*set `prompt_wrapper`"):
        load(tiny_plain)
    forced = load(tiny_plain, wrapper="llama3")
    assert forced.wrapper == "llama3"
    forced.close()


def test_wrappers_are_the_chat_formats() -> None:
    assert wrap("chatml", "TASK") == "<|im_start|>user\nTASK<|im_end|>\n<|im_start|>assistant\n"
    assert wrap("llama3", "TASK") == (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nTASK"
        "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    )


# --- the prefix cache ------------------------------------------------------------------------------------


def task(text: str) -> str:
    return render_task([Turn("User", text)], LLAMA_GUARD_3_CATEGORIES)


def test_a_warm_call_evaluates_only_what_follows_the_shared_prefix_and_answers_as_a_cold_one(
    tiny_chatml: Path,
) -> None:
    warm = load(tiny_chatml)
    first = warm.classify_sync("User", task("How do I bake bread at home?"))
    assert first.tokens_reused == 0 and first.tokens_evaluated > 250
    second = warm.classify_sync("User", task("Tell me a joke about cats."))
    # The tiny vocabulary spells most words letter by letter: the prefix is ~65% of the prompt here.
    assert second.tokens_reused > first.tokens_evaluated / 2
    assert second.tokens_evaluated < first.tokens_evaluated / 2
    cold = load(tiny_chatml)
    reference = cold.classify_sync("User", task("Tell me a joke about cats."))
    assert reference.tokens_reused == 0
    assert second.text == reference.text and second.tokens_generated == reference.tokens_generated == 8
    assert second.p_unsafe == pytest.approx(reference.p_unsafe, abs=1e-4)
    assert 0.0 < reference.p_unsafe < 1.0 and reference.p_unsafe != 0.5  # the verdict words' logits differ
    again = warm.classify_sync("User", task("Tell me a joke about cats."))  # the same prompt: 1 token to evaluate
    assert again.tokens_evaluated == 1 and again.text == reference.text
    agent = warm.classify_sync("Agent", task("Tell me a joke about cats."))  # the other role's context is cold
    assert agent.tokens_reused == 0
    warm.close()
    cold.close()


def test_the_heads_given_at_load_are_evaluated_before_the_first_call(tiny_chatml: Path) -> None:
    categories = LLAMA_GUARD_3_CATEGORIES
    engine = load(tiny_chatml, heads={role: render_task_head(role, categories) for role in ("User", "Agent")})
    engine.wait_prefilled()
    first = engine.classify_sync("User", task("Tell me a joke about cats."))
    assert first.tokens_reused > first.tokens_evaluated  # the head (~65% of the prompt here) was ready
    agent = engine.classify_sync("Agent", render_task([Turn("User", "hi"), Turn("Agent", "hello")], categories))
    assert agent.tokens_reused > agent.tokens_evaluated
    cold = load(tiny_chatml)
    reference = cold.classify_sync("User", task("Tell me a joke about cats."))
    assert (first.text, first.p_unsafe) == (reference.text, pytest.approx(reference.p_unsafe, abs=1e-4))
    engine.close()
    cold.close()


def test_an_engine_closed_during_its_prefill_refuses_calls(base_chat_gguf: Path) -> None:
    head = render_task_head("User", LLAMA_GUARD_3_CATEGORIES)
    engine = load(base_chat_gguf, heads={"User": head, "Agent": head})
    engine.close()  # the prefill thread stops at its next chunk; close waits for it
    with pytest.raises(DetectorFailed, match="closed"):
        engine.classify_sync("User", task("hello"))


async def test_concurrent_calls_of_one_role_take_turns_and_answer_as_alone(tiny_chatml: Path) -> None:
    texts = ("Tell me a joke about cats.", "How do I bake bread at home?", "Tell me a joke about cats.")
    alone = load(tiny_chatml)
    expected = [alone.classify_sync("User", task(text)) for text in texts]
    alone.close()
    engine = load(tiny_chatml)
    together = await asyncio.gather(*(engine.classify("User", task(text)) for text in texts))
    assert [v.text for v in together] == [v.text for v in expected]
    assert [v.p_unsafe for v in together] == pytest.approx([v.p_unsafe for v in expected], abs=1e-4)
    engine.close()


def test_common_prefix() -> None:
    assert common_prefix([1, 2, 3], [1, 2, 4, 5]) == 2
    assert common_prefix([], [1]) == 0
    assert common_prefix([1, 2], [1, 2]) == 2


def test_a_prompt_longer_than_the_context_is_a_detector_error(tiny_chatml: Path) -> None:
    engine = load(tiny_chatml)
    with pytest.raises(DetectorFailed, match="does not fit n_ctx 2048"):
        engine.classify_sync("User", task("word " * 3000))
    engine.close()


# --- a real chat model that does not speak the protocol: SmolLM2-135M-Instruct ------------------------------


@dataclass
class Recording:
    """Wraps the real engine and keeps its verdicts, so a test sees what the detector does not report."""

    engine: LocalLlamaGuard
    verdicts: list[GuardVerdict] = field(default_factory=list)

    async def classify(self, role: GuardRole, task: str) -> GuardVerdict:
        verdict = await self.engine.classify(role, task)
        self.verdicts.append(verdict)
        return verdict

    def close(self) -> None:
        self.engine.close()


async def test_a_chat_model_prose_answer_is_a_detector_error_and_the_prefix_is_reused(base_chat_gguf: Path) -> None:
    engine = Recording(load(base_chat_gguf, max_tokens=6))
    assert engine.engine.wrapper == "chatml"
    detector = LlamaGuardDetector("lg", config(max_tokens=6, timeout_s=120), DetectorDeps(), engine=engine)
    for text in ("How do I bake bread?", "What is the capital of France?"):
        with pytest.raises(DetectorFailed, match="unexpected answer"):
            await detector.detect(text, INPUT)
    cold, warm = engine.verdicts
    assert cold.tokens_reused == 0 and cold.tokens_evaluated > 250
    assert warm.tokens_reused > 180 and warm.tokens_evaluated < 100
    assert 0.0 <= warm.p_unsafe <= 1.0
    engine.close()


async def test_a_timed_out_call_leaves_the_engine_usable(base_chat_gguf: Path) -> None:
    engine = Recording(load(base_chat_gguf, max_tokens=2))
    hasty = LlamaGuardDetector("lg", config(max_tokens=2, timeout_s=0.05), DetectorDeps(), engine=engine)
    with pytest.raises(DetectorFailed, match=r"no answer within 0\.05 s"):
        await hasty.detect("How do I bake bread?", INPUT)
    verdict = await engine.classify("User", task("How do I bake bread?"))  # waits for the cancelled worker
    assert verdict.tokens_evaluated + verdict.tokens_reused > 250
    assert verdict.tokens_generated == 2
    engine.close()


GUARD = "  guard: {{type: llama_guard, model_path: '{path}', max_tokens: 4, timeout_s: 120}}\n"
# A cold CPU on a loaded test machine: the step's default 2 s would time out before the model answers.
STEP = "  - {{detector: guard, action: block, on_error: {on_error}, timeout_ms: 120000}}\n"


@pytest.fixture(scope="module")
def guarded(
    upstream_server: FakeUpstream, base_chat_gguf: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, ProxyServer]]:
    """Two proxies whose input chain starts with the guard on SmolLM2: one failing closed, one failing open."""
    servers: dict[str, ProxyServer] = {}
    for on_error in ("block", "allow"):
        directory = tmp_path_factory.mktemp(f"guard-{on_error}")
        path = write_policy_with(
            directory,
            upstream_server.base_url,
            detectors=GUARD.format(path=base_chat_gguf),
            input_steps=STEP.format(on_error=on_error),
        )
        servers[on_error] = ProxyServer(path).__enter__()
    yield servers
    for server in servers.values():
        server.__exit__(None, None, None)


def test_through_the_proxy_on_error_block_blocks(guarded: dict[str, ProxyServer], upstream: FakeUpstream) -> None:
    client = openai.OpenAI(base_url=guarded["block"].url + "/v1", api_key="k", max_retries=0, timeout=180)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "When does water boil?"}]
        )
    body = info.value.body
    assert isinstance(body, dict)
    assert body["guardproxy"]["labels"] == ["detector_error"]
    assert body["guardproxy"]["detector"] == "guard"
    assert upstream.requests == []
    request_id = info.value.response.headers["x-guardproxy-request-id"]
    _, steps = audit_row(guarded["block"].policy_path.parent / "audit.db", request_id)
    [guard_step] = [s for s in steps if s.get("detector") == "guard"]
    assert "unexpected answer" in guard_step["error"]  # the prose answer, not a timeout


def test_through_the_proxy_on_error_allow_lets_it_through(
    guarded: dict[str, ProxyServer], upstream: FakeUpstream
) -> None:
    upstream.enqueue(Reply(content="At 100 °C at sea level."))
    client = openai.OpenAI(base_url=guarded["allow"].url + "/v1", api_key="k", max_retries=0, timeout=180)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "When does water boil?"}]
    )
    assert raw.parse().choices[0].message.content == "At 100 °C at sea level."
    _, steps = audit_row(guarded["allow"].policy_path.parent / "audit.db", raw.headers["x-guardproxy-request-id"])
    [guard_step] = [s for s in steps if s.get("detector") == "guard"]
    assert "unexpected answer" in guard_step["error"]
