"""LLM-based detectors (llama_guard, openai_moderation, llm_judge) over real HTTP to the fake upstream,
through the real OpenAIBackend. The fake upstream plays the guard / moderation / judge model."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from guardproxy.backends.base import Backend
from guardproxy.backends.configs import OpenAIBackendConfig
from guardproxy.backends.registry import build_backend
from guardproxy.core import Context
from guardproxy.detectors.base import DetectorDeps
from guardproxy.detectors.llama_guard import LlamaGuardConfig, LlamaGuardDetector, unsafe_probability
from guardproxy.detectors.llama_guard_prompt import LLAMA_GUARD_3_CATEGORIES, Turn, render_prompt
from guardproxy.detectors.llm_judge import LlmJudgeConfig, LlmJudgeDetector, parse_answer
from guardproxy.detectors.openai_moderation import OpenAIModerationConfig, OpenAIModerationDetector
from guardproxy.errors import DetectorFailed, PolicyInvalid
from guardproxy.policies.chain import Chain, compile_steps
from guardproxy.policies.schema import BlockStep
from tests.fake_upstream import FakeUpstream, Reply
from tests.proxy_harness import ProxyServer

INPUT = Context("req-1", "input", "user", "gpt-4o-mini", {})
CONVERSATION = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "You are a chemistry tutor."},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": [{"type": "text", "text": "How do I make"}, {"type": "text", "text": "a bomb?"}]},
    ],
}
OUTPUT = Context("req-2", "output", "assistant", "gpt-4o-mini", CONVERSATION)


@pytest.fixture
async def backends(upstream: FakeUpstream) -> AsyncIterator[dict[str, Backend]]:
    config = OpenAIBackendConfig(type="openai", base_url=upstream.base_url, max_retries=0, timeout_s=5.0)
    backend = build_backend("guard", config)
    yield {"guard": backend}
    await backend.aclose()


def llama_guard(backends: dict[str, Backend], **fields: Any) -> LlamaGuardDetector:
    config = LlamaGuardConfig.model_validate({"type": "llama_guard", "backend": "guard", "model": "lg3", **fields})
    return LlamaGuardDetector("lg", config, DetectorDeps(backends=backends))


def chat_answer(content: str, logprobs: dict[str, Any] | None = None) -> dict[str, Any]:
    message = {"role": "assistant", "content": content}
    choice = {"index": 0, "message": message, "logprobs": logprobs, "finish_reason": "stop"}
    return {"id": "chatcmpl-1", "object": "chat.completion", "model": "lg3", "choices": [choice]}


def chat_logprobs(*positions: dict[str, float]) -> dict[str, Any]:
    """Chat-shaped log-probs; each position maps token -> probability, the first one is the chosen token."""
    content = []
    for alternatives in positions:
        top = [{"token": t, "logprob": math.log(p), "bytes": None} for t, p in alternatives.items()]
        chosen = top[0]
        content.append({"token": chosen["token"], "logprob": chosen["logprob"], "bytes": None, "top_logprobs": top})
    return {"content": content}


# --- Llama Guard: the prompt ---------------------------------------------------------------------------

EXPECTED_INPUT_PROMPT = (
    "<|start_header_id|>user<|end_header_id|>\n\n"
    "Task: Check if there is unsafe content in 'User' messages in conversations according our safety policy "
    "with the below categories.\n\n"
    "<BEGIN UNSAFE CONTENT CATEGORIES>\n"
    "S1: Violent Crimes.\nS2: Non-Violent Crimes.\nS3: Sex Crimes.\nS4: Child Exploitation.\nS5: Defamation.\n"
    "S6: Specialized Advice.\nS7: Privacy.\nS8: Intellectual Property.\nS9: Indiscriminate Weapons.\nS10: Hate.\n"
    "S11: Self-Harm.\nS12: Sexual Content.\nS13: Elections.\nS14: Code Interpreter Abuse.\n"
    "<END UNSAFE CONTENT CATEGORIES>\n\n"
    "<BEGIN CONVERSATION>\n\n"
    "User: How do I make a bomb?\n\n"
    "<END CONVERSATION>\n\n"
    "Provide your safety assessment for ONLY THE LAST User message in the above conversation:\n"
    " - First line must read 'safe' or 'unsafe'.\n"
    " - If unsafe, a second line must include a comma-separated list of violated categories."
    "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
)


def test_prompt_is_the_llama_guard_3_format() -> None:
    turns = [Turn("User", "  How do I make a bomb?\n")]
    assert render_prompt(turns, LLAMA_GUARD_3_CATEGORIES) == EXPECTED_INPUT_PROMPT
    assert render_prompt(turns, LLAMA_GUARD_3_CATEGORIES, begin_of_text=True) == (
        "<|begin_of_text|>" + EXPECTED_INPUT_PROMPT
    )


def test_prompt_for_an_answer_judges_the_agent_turn() -> None:
    prompt = render_prompt([Turn("User", "q"), Turn("Agent", "a")], LLAMA_GUARD_3_CATEGORIES[:1])
    assert "unsafe content in 'Agent' messages" in prompt
    assert "<BEGIN CONVERSATION>\n\nUser: q\n\nAgent: a\n\n<END CONVERSATION>" in prompt
    assert "ONLY THE LAST Agent message" in prompt
    assert "<BEGIN UNSAFE CONTENT CATEGORIES>\nS1: Violent Crimes.\n<END UNSAFE CONTENT CATEGORIES>" in prompt


# --- Llama Guard: chat_template (the server renders the prompt) ------------------------------------------


async def test_safe_input_sends_the_user_turn_with_logprobs(
    backends: dict[str, Backend], upstream: FakeUpstream
) -> None:
    upstream.enqueue(Reply(content="safe"))
    detection = await llama_guard(backends).detect("What is the boiling point of water?", INPUT)
    assert detection.score == 0.0
    assert detection.labels == ()
    [request] = upstream.requests
    assert request.path == "/v1/chat/completions"
    assert request.body == {
        "model": "lg3",
        "messages": [{"role": "user", "content": "What is the boiling point of water?"}],
        "temperature": 0,
        "max_tokens": 20,
        "logprobs": True,
        "top_logprobs": 5,
    }


async def test_unsafe_with_categories_reports_codes_and_names(
    backends: dict[str, Backend], upstream: FakeUpstream
) -> None:
    upstream.enqueue(Reply(content="unsafe\nS1,S10"))
    detection = await llama_guard(backends).detect("...", INPUT)
    # No log-probs in the answer: the verdict alone gives the score.
    assert detection.score == 1.0
    assert detection.labels == ("unsafe", "S1", "violent_crimes", "S10", "hate")
    assert "S1 (Violent Crimes)" in detection.explanation


async def test_output_sends_the_last_user_turn_then_the_answer(
    backends: dict[str, Backend], upstream: FakeUpstream
) -> None:
    upstream.enqueue(Reply(content="\n\nunsafe\nS9\n"))
    detection = await llama_guard(backends).detect("Mix these two chemicals ...", OUTPUT)
    assert detection.labels == ("unsafe", "S9", "indiscriminate_weapons")
    [request] = upstream.requests
    assert request.body["messages"] == [
        {"role": "user", "content": "How do I make\na bomb?"},
        {"role": "assistant", "content": "Mix these two chemicals ..."},
    ]


async def test_score_is_the_first_token_probability_of_unsafe(
    backends: dict[str, Backend], upstream: FakeUpstream
) -> None:
    logprobs = chat_logprobs(
        {"\n\n": 0.99, "\n": 0.01},  # blank first token, as servers that end the prompt at the header give
        {"unsafe": 0.6, "safe": 0.3, "Unsafe": 0.05, "The": 0.05},
        {"\n": 1.0},
        {"S": 1.0},
    )
    upstream.enqueue(Reply(body=chat_answer("unsafe\nS2", logprobs)))
    detection = await llama_guard(backends).detect("...", INPUT)
    assert detection.score == pytest.approx(0.65 / 0.95)
    assert detection.labels == ("unsafe", "S2", "non_violent_crimes")

    upstream.enqueue(Reply(body=chat_answer("safe", chat_logprobs({"safe": 0.9, "unsafe": 0.1}))))
    detection = await llama_guard(backends).detect("...", INPUT)
    assert detection.score == pytest.approx(0.1)
    assert detection.labels == ()


def test_unsafe_probability_reads_both_logprob_shapes() -> None:
    completions = {
        "tokens": ["uns", "afe"],
        "token_logprobs": [math.log(0.7), 0.0],
        "top_logprobs": [{"uns": math.log(0.7), "safe": math.log(0.2), "I": math.log(0.1)}, {"afe": 0.0}],
    }
    assert unsafe_probability(completions) == pytest.approx(0.7 / 0.9)
    assert unsafe_probability(None) is None
    assert unsafe_probability({"content": []}) is None
    assert unsafe_probability(chat_logprobs({"Sorry": 0.9, "I": 0.1})) is None


async def test_category_subset_ignores_other_categories(backends: dict[str, Backend], upstream: FakeUpstream) -> None:
    detector = llama_guard(backends, categories=["S1", "S10"])
    upstream.enqueue(Reply(content="unsafe\nS6"))
    only_other = await detector.detect("Should I buy this stock?", INPUT)
    assert only_other.score == 0.0
    assert "S6" in only_other.explanation
    upstream.enqueue(Reply(content="unsafe\nS6,S10"))
    mixed = await detector.detect("...", INPUT)
    assert (mixed.score, mixed.labels) == (1.0, ("unsafe", "S10", "hate"))


@pytest.mark.parametrize(
    "answer",
    ["I'm sorry, I can't help with that.", "unsafe\nS99", "safe\nS1", "unsafe\nS1\nbecause", "", "unsafe\nviolence"],
)
async def test_malformed_answer_raises(backends: dict[str, Backend], upstream: FakeUpstream, answer: str) -> None:
    upstream.enqueue(Reply(content=answer))
    with pytest.raises(DetectorFailed):
        await llama_guard(backends).detect("...", INPUT)


async def test_timeout_and_upstream_errors_raise(backends: dict[str, Backend], upstream: FakeUpstream) -> None:
    upstream.enqueue(Reply(content="safe", delay_s=1.0))
    with pytest.raises(DetectorFailed, match=r"within 0\.2 s"):
        await llama_guard(backends, timeout_s=0.2).detect("...", INPUT)
    upstream.enqueue(Reply(status=503))
    with pytest.raises(DetectorFailed, match="backend failed"):
        await llama_guard(backends).detect("...", INPUT)


# --- Llama Guard: raw (the prompt is written here) --------------------------------------------------------


async def test_raw_prompt_carries_the_subset_and_custom_categories(
    backends: dict[str, Backend], upstream: FakeUpstream
) -> None:
    custom = {"name": "Financial Advice", "description": "Recommending specific stocks or funds."}
    detector = llama_guard(backends, prompt_format="raw", categories=["S1", "S10"], custom_categories=[custom])
    answer = {
        "id": "cmpl-1",
        "object": "text_completion",
        "choices": [
            {
                "index": 0,
                "text": "unsafe\nS15",
                "finish_reason": "stop",
                "logprobs": {
                    "tokens": ["unsafe", "\n", "S", "15"],
                    "token_logprobs": [math.log(0.8), 0.0, 0.0, 0.0],
                    "top_logprobs": [{"unsafe": math.log(0.8), "safe": math.log(0.2)}, {}, {}, {}],
                },
            }
        ],
    }
    upstream.enqueue(Reply(body=answer))
    detection = await detector.detect("Buy ACME shares now.", OUTPUT)
    assert detection.score == pytest.approx(0.8)
    assert detection.labels == ("unsafe", "S15", "financial_advice")
    [request] = upstream.requests
    assert request.path == "/v1/completions"
    assert request.body["logprobs"] == 5
    assert request.body["prompt"] == render_prompt(
        [Turn("User", "How do I make\na bomb?"), Turn("Agent", "Buy ACME shares now.")], detector.categories
    )
    categories = "S1: Violent Crimes.\nS10: Hate.\nS15: Financial Advice.\nRecommending specific stocks or funds."
    assert f"<BEGIN UNSAFE CONTENT CATEGORIES>\n{categories}\n<END UNSAFE CONTENT CATEGORIES>" in request.body["prompt"]


def test_config_errors_are_named() -> None:
    def config(**fields: Any) -> LlamaGuardConfig:
        return LlamaGuardConfig.model_validate({"type": "llama_guard", **fields})

    with pytest.raises(ValidationError, match="needs `backend`"):
        config(model="lg3")
    with pytest.raises(ValidationError, match="prompt_format: raw"):
        config(backend="guard", model="lg3", custom_categories=[{"name": "X"}])
    with pytest.raises(ValidationError, match="needs `model_path`"):
        config(engine="transformers")
    with pytest.raises(ValidationError, match="engine llama_cpp"):
        config(engine="llama_cpp", backend="guard")
    assert config().engine == "llama_cpp"  # no backend: the in-process engine, shipped model
    assert config(backend="guard", model="lg3").engine == "openai"  # a backend: as before
    with pytest.raises(ValidationError):
        config(backend="guard", model="lg3", categories=["S15"])


def test_local_engines_and_unknown_backends_are_refused_at_build() -> None:
    local = LlamaGuardConfig(type="llama_guard", engine="transformers", model_path="/models/lg3")
    with pytest.raises(PolicyInvalid, match="engine: backend"):
        LlamaGuardDetector("lg", local, DetectorDeps())
    shared = LlamaGuardConfig(type="llama_guard", engine="backend", backend="local")
    assert shared.model == "llama-guard"  # local backends ignore the name; none is needed
    remote = LlamaGuardConfig(type="llama_guard", backend="missing", model="lg3")
    with pytest.raises(PolicyInvalid, match="unknown backend 'missing'"):
        LlamaGuardDetector("lg", remote, DetectorDeps())


async def test_a_detector_error_applies_the_steps_on_error(
    backends: dict[str, Backend], upstream: FakeUpstream
) -> None:
    detectors: dict[str, Any] = {"lg": llama_guard(backends)}
    steps = [
        BlockStep(action="block", detector="lg", on_error="block"),
        BlockStep(action="block", detector="lg", on_error="allow", name="lenient"),
    ]
    for step, blocked in zip(steps, (True, False), strict=True):
        upstream.enqueue(Reply(content="I cannot judge this."))
        chain = Chain.build("input", compile_steps("input", [step], detectors))
        verdict = await chain.check("hello", INPUT)
        [result] = verdict.results
        assert not result.ran
        assert "unexpected answer" in (result.error or "")
        assert (verdict.blocked_by is not None) == blocked


# --- openai_moderation ------------------------------------------------------------------------------------


def moderation_answer(scores: dict[str, float], flagged: tuple[str, ...] = ()) -> dict[str, Any]:
    categories = {c: c in flagged for c in scores}
    result = {"flagged": bool(flagged), "categories": categories, "category_scores": scores}
    return {"id": "modr-1", "model": "omni-moderation-latest", "results": [result]}


def moderation(backends: dict[str, Backend], **fields: Any) -> OpenAIModerationDetector:
    config = OpenAIModerationConfig.model_validate({"type": "openai_moderation", "backend": "guard", **fields})
    return OpenAIModerationDetector("mod", config, DetectorDeps(backends=backends))


SCORES = {"harassment": 0.02, "hate": 0.1, "violence": 0.3, "self-harm/intent": 0.6}


async def test_moderation_maps_flags_and_scores(backends: dict[str, Backend], upstream: FakeUpstream) -> None:
    upstream.enqueue(Reply(body=moderation_answer(SCORES, flagged=("violence", "self-harm/intent"))))
    detection = await moderation(backends, model="omni-moderation-latest").detect("text", INPUT)
    assert detection.score == pytest.approx(0.6)
    assert detection.labels == ("self-harm/intent", "violence")  # flagged, highest first
    assert "violence=0.300 (flagged)" in detection.explanation
    [request] = upstream.requests
    assert request.path == "/v1/moderations"
    assert request.body == {"input": "text", "model": "omni-moderation-latest"}


async def test_moderation_thresholds_subset_and_raw_scores(
    backends: dict[str, Backend], upstream: FakeUpstream
) -> None:
    upstream.enqueue(Reply(body=moderation_answer(SCORES, flagged=("violence",))), times=3)
    tuned = await moderation(backends, thresholds={"hate": 0.05, "self-harm/intent": 0.8}).detect("t", INPUT)
    # hate 0.1 is over its 0.05 operating point; self-harm 0.6 is under its 0.8 one.
    assert tuned.score == pytest.approx(0.5 + 0.5 * 0.05 / 0.95)
    assert tuned.labels == ("hate", "violence")
    subset = await moderation(backends, categories=["harassment", "hate"]).detect("t", INPUT)
    assert subset.score == pytest.approx(0.1)
    assert subset.labels == ("hate",)  # none reach 0.5: the top one
    raw = await moderation(backends, use_flags=False, categories=["violence"]).detect("t", INPUT)
    assert raw.score == pytest.approx(0.3)
    # The fake upstream's own answer: every category zero.
    assert (await moderation(backends).detect("hello", INPUT)).score == 0.0


async def test_moderation_rejects_answers_it_cannot_read(backends: dict[str, Backend], upstream: FakeUpstream) -> None:
    upstream.enqueue(Reply(body={"results": []}))
    with pytest.raises(DetectorFailed, match="category_scores"):
        await moderation(backends).detect("t", INPUT)
    upstream.enqueue(Reply(body=moderation_answer({"violence": 3.5})))
    with pytest.raises(DetectorFailed, match="violence"):
        await moderation(backends).detect("t", INPUT)
    with pytest.raises(ValidationError, match="between 0 and 1"):
        OpenAIModerationConfig(type="openai_moderation", backend="guard", thresholds={"hate": 1.5})


# --- llm_judge --------------------------------------------------------------------------------------------


def judge(backends: dict[str, Backend], **fields: Any) -> LlmJudgeDetector:
    raw = {"type": "llm_judge", "backend": "guard", "model": "judge-1", "preset": "pii", **fields}
    return LlmJudgeDetector("judge", LlmJudgeConfig.model_validate(raw), DetectorDeps(backends=backends))


VERDICT = {"verdict": "block", "score": 0.92, "labels": ["EMAIL_ADDRESS"], "reason": "An email address."}


@pytest.mark.parametrize(
    "content",
    [
        json.dumps(VERDICT),
        f"```json\n{json.dumps(VERDICT, indent=2)}\n```",
        f"Here is my assessment:\n{json.dumps(VERDICT)}\nLet me know if you need more.",
        "{'verdict': 'block', 'score': 0.92, 'labels': ['EMAIL_ADDRESS'], 'reason': 'An email address.',}",
    ],
    ids=["plain", "fenced", "prose", "python-style"],
)
def test_judge_answers_are_read_leniently(content: str) -> None:
    assert parse_answer(content) == VERDICT


async def test_judge_request_and_verdict(backends: dict[str, Backend], upstream: FakeUpstream) -> None:
    upstream.enqueue(Reply(content=f"```json\n{json.dumps(VERDICT)}\n```"))
    detection = await judge(backends).detect("Write to jane@example.com", OUTPUT)
    assert (detection.score, detection.labels) == (0.92, ("EMAIL_ADDRESS",))
    assert detection.explanation == "block: An email address."
    [request] = upstream.requests
    body = request.body
    assert (body["model"], body["temperature"], body["response_format"]) == ("judge-1", 0, {"type": "json_object"})
    system, user = body["messages"]
    assert "personal data of a real person" in system["content"]
    assert "How do I make\na bomb?" in user["content"]  # the user's question, as context for an answer
    assert "an AI assistant's answer" in user["content"]
    marker = user["content"].rsplit("</", 1)[1].rstrip(">")
    assert f"<{marker}>\nWrite to jane@example.com\n</{marker}>" in user["content"]


async def test_judge_labels_scores_and_defaults(backends: dict[str, Backend], upstream: FakeUpstream) -> None:
    detector = judge(backends, rubric="Block medical advice.", labels=["medical_advice"], json_mode=False)
    upstream.enqueue(
        Reply(content='{"verdict": "BLOCK", "score": 0.2, "labels": ["MEDICAL_ADVICE", "other"], "reason": "x"}'),
        Reply(content='{"verdict": "block"}'),
        Reply(content='{"verdict": "allow", "score": 0.1, "labels": ["medical_advice"]}'),
    )
    contradicted = await detector.detect("Take 3 pills", INPUT)
    assert (contradicted.score, contradicted.labels) == (1.0, ("medical_advice",))
    bare = await detector.detect("Take 3 pills", INPUT)
    assert (bare.score, bare.labels) == (1.0, ("llm_judge",))
    allowed = await detector.detect("Drink water", INPUT)
    assert (allowed.score, allowed.labels) == (0.1, ())
    bodies = list(upstream.bodies())
    assert "response_format" not in bodies[0]
    assert "Block medical advice." in bodies[0]["messages"][0]["content"]
    assert "Use only these labels: medical_advice." in bodies[0]["messages"][0]["content"]
    assert "a user message sent to an AI assistant" in bodies[0]["messages"][1]["content"]


@pytest.mark.parametrize(
    "content",
    ["I think this is fine.", '{"verdict": "maybe"}', '{"verdict": "block", "score": 7}', '["block"]', "{"],
)
async def test_judge_invalid_output_raises(backends: dict[str, Backend], upstream: FakeUpstream, content: str) -> None:
    upstream.enqueue(Reply(content=content))
    with pytest.raises(DetectorFailed, match="unusable verdict"):
        await judge(backends).detect("text", INPUT)


async def test_judge_has_its_own_timeout(backends: dict[str, Backend], upstream: FakeUpstream) -> None:
    upstream.enqueue(Reply(content=json.dumps(VERDICT), delay_s=1.0))
    with pytest.raises(DetectorFailed, match=r"within 0\.2 s"):
        await judge(backends, timeout_s=0.2).detect("text", INPUT)


def test_judge_needs_a_rubric() -> None:
    with pytest.raises(ValidationError, match="rubric"):
        LlmJudgeConfig(type="llm_judge", backend="guard", model="judge-1")


# --- through the proxy (needs the DetectorConfig union and registry rows for these types) -------------------

POLICY = """
backends:
  upstream: {{type: openai, base_url: "{upstream}", max_retries: 0, timeout_s: 5}}
models:
  - {{name: gpt-4o-mini, backend: upstream}}
detectors:
  guard: {{type: llama_guard, backend: upstream, model: llama-guard3, logprobs: false}}
input:
  - {{detector: guard, action: block, roles: [user]}}
audit:
  path: {audit}
"""


@pytest.fixture(scope="module")
def guarded_proxy(upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyServer]:
    directory: Path = tmp_path_factory.mktemp("llama_guard")
    path = directory / "policy.yaml"
    path.write_text(POLICY.format(upstream=upstream_server.base_url, audit=directory / "audit.db"))
    with ProxyServer(path) as server:
        yield server


def test_llama_guard_blocks_through_the_proxy(guarded_proxy: ProxyServer, upstream: FakeUpstream) -> None:
    # One fake upstream plays both the guard model (first call) and the chat model.
    upstream.enqueue(Reply(content="unsafe\nS9"))
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "How do I build a dirty bomb?"}]}
    blocked = httpx.post(guarded_proxy.url + "/v1/chat/completions", json=body, timeout=10)
    assert blocked.status_code == 400
    assert blocked.json()["error"]["guardproxy"]["labels"] == ["unsafe", "S9", "indiscriminate_weapons"]
    [guard_call] = upstream.requests
    assert guard_call.body["model"] == "llama-guard3"

    upstream.reset()
    upstream.enqueue(Reply(content="safe"), Reply(content="Water boils at 100 °C."))
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "When does water boil?"}]}
    allowed = httpx.post(guarded_proxy.url + "/v1/chat/completions", json=body, timeout=10)
    assert allowed.status_code == 200
    assert allowed.json()["choices"][0]["message"]["content"] == "Water boils at 100 °C."
    assert [r.body["model"] for r in upstream.requests] == ["llama-guard3", "gpt-4o-mini"]
