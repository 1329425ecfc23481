"""The fake upstream speaks OpenAI well enough for the official SDK, and behaves as scripted."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.fake_upstream import FakeUpstream, Reply

USER = [{"role": "user", "content": "My name is <PERSON_1>."}]


@pytest.fixture
def client(upstream: FakeUpstream) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=upstream.base_url, api_key="sk-fake", max_retries=0) as sdk:
        yield sdk


def test_echo_round_trips_text_non_stream_and_stream(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    answer = client.chat.completions.create(model="m", messages=USER)
    assert answer.choices[0].message.content == "My name is <PERSON_1>."
    chunks = list(client.chat.completions.create(model="m", messages=USER, stream=True))
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(pieces) == "My name is <PERSON_1>."
    assert len(pieces) > 3  # really split, so placeholders can straddle chunks
    assert [r.body["messages"] for r in upstream.requests] == [USER, USER]


def test_streamed_tool_calls_and_n_choices_assemble_in_the_sdk(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    arguments = {"city": "Paris", "days": 3}
    upstream.enqueue(Reply(tool_calls=[{"name": "forecast", "arguments": arguments}], n=2), times=2)
    whole = client.chat.completions.create(model="m", messages=USER, n=2)
    assert [c.finish_reason for c in whole.choices] == ["tool_calls", "tool_calls"]
    assert json.loads(whole.choices[1].message.tool_calls[0].function.arguments) == arguments

    fragments: dict[int, str] = {0: "", 1: ""}
    stream = client.chat.completions.create(model="m", messages=USER, n=2, stream=True)
    for chunk in stream:
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or []:
                fragments[choice.index] += call.function.arguments or ""
    assert {index: json.loads(text) for index, text in fragments.items()} == {0: arguments, 1: arguments}


def test_completions_embeddings_moderations_models(client: openai.OpenAI) -> None:
    assert client.completions.create(model="m", prompt="say hi").choices[0].text == "say hi"
    streamed = client.completions.create(model="m", prompt="say hi again", stream=True)
    assert "".join(c.choices[0].text for c in streamed) == "say hi again"
    vectors = client.embeddings.create(model="e", input=["a", "b", "a"]).data
    assert vectors[0].embedding == vectors[2].embedding != vectors[1].embedding
    assert client.moderations.create(input="hi").results[0].flagged is False
    assert "fake-model" in [m.id for m in client.models.list()]


def test_usage_chunk_when_asked(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="m",
            messages=USER,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == chunks[-1].usage.prompt_tokens + chunks[-1].usage.completion_tokens


def test_error_status_and_scripted_order(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    upstream.enqueue(Reply(status=429, headers={"retry-after": "1"}), Reply(content="finally"))
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="m", messages=USER)
    assert caught.value.response.headers["retry-after"] == "1"
    assert caught.value.body["type"] == "invalid_request_error"
    assert client.chat.completions.create(model="m", messages=USER).choices[0].message.content == "finally"
    assert upstream.pending_replies == 0


def test_delay_and_broken_stream_are_real(upstream: FakeUpstream) -> None:
    upstream.enqueue(Reply(delay_s=0.3), Reply(chunks=["a", "b", "c"], break_after_chunks=2))
    with httpx.Client(base_url=upstream.base_url) as http:
        started = time.monotonic()
        assert http.post("/chat/completions", json={"messages": USER}).status_code == 200
        assert time.monotonic() - started >= 0.3
        received = b""
        with (
            pytest.raises(httpx.RemoteProtocolError),
            http.stream("POST", "/chat/completions", json={"messages": USER, "stream": True}) as response,
        ):
            for part in response.iter_bytes():
                received += part
    assert received.count(b"data: ") == 3  # role chunk + "a" + "b", then the connection dropped
    assert b"[DONE]" not in received


def test_unknown_route_is_an_openai_404(upstream: FakeUpstream) -> None:
    with httpx.Client(base_url=upstream.url) as http:
        response = http.post("/v2/whatever", json={})
    assert response.status_code == 404
    assert "error" in response.json()
    assert upstream.requests[0].path == "/v2/whatever"
