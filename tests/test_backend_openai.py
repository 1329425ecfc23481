"""OpenAIBackend against a real local HTTP server (tests/fake_upstream.py)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from email.utils import formatdate
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict

from guardproxy.backends import build_backend
from guardproxy.backends.configs import OpenAIBackendConfig
from guardproxy.backends.openai_http import OpenAIBackend, _retry_after_s
from guardproxy.backends.sse import SSEDecoder, SSEEvent
from guardproxy.errors import StreamBroken, UpstreamErrorFields, UpstreamStatus, UpstreamTimeout, UpstreamUnavailable
from tests.fake_upstream import FakeUpstream, Reply, wait_until

MakeBackend = Callable[..., OpenAIBackend]
CHAT = {
    "model": "gpt-test",
    "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello there, world"}],
}


@pytest.fixture
async def make_backend(upstream: FakeUpstream) -> AsyncIterator[MakeBackend]:
    made: list[OpenAIBackend] = []

    def make(**overrides: Any) -> OpenAIBackend:
        settings: dict[str, Any] = {"base_url": upstream.base_url, "backoff_s": 0.01, **overrides}
        backend = OpenAIBackend("test", OpenAIBackendConfig(type="openai", **settings))
        made.append(backend)
        return backend

    yield make
    for backend in made:
        await backend.aclose()


async def collect(backend: OpenAIBackend, body: dict[str, Any] = CHAT) -> list[dict[str, Any]]:
    return [event async for event in backend.stream("chat/completions", body)]


def streamed_text(events: list[dict[str, Any]]) -> str:
    return "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])


def refused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- happy paths ---------------------------------------------------------------------------------


async def test_complete_returns_upstream_json_and_sends_auth_headers_body(
    upstream: FakeUpstream, make_backend: MakeBackend
) -> None:
    backend = make_backend(api_key="sk-test", headers={"x-tenant": "acme", "Authorization": "Bearer overridden"})
    answer = await backend.complete("chat/completions", {**CHAT, "stream": False, "stream_options": {}})

    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"]["content"] == "hello there, world"
    [seen] = upstream.requests
    assert seen.path == "/v1/chat/completions"
    assert seen.headers["authorization"] == "Bearer sk-test"
    assert seen.headers["x-tenant"] == "acme"
    assert seen.body == CHAT  # stream keys removed, everything else untouched
    assert seen.headers["accept"] == "application/json"
    assert seen.headers["content-type"] == "application/json"
    assert seen.headers["user-agent"] == "guardproxy"


async def test_no_authorization_header_without_api_key(upstream: FakeUpstream, make_backend: MakeBackend) -> None:
    await make_backend().complete("embeddings", {"model": "e", "input": ["a", "b"]})
    [seen] = upstream.requests
    assert "authorization" not in seen.headers
    assert seen.path == "/v1/embeddings"


async def test_stream_yields_parsed_chunks_until_done(upstream: FakeUpstream, make_backend: MakeBackend) -> None:
    events = await collect(make_backend(), {**CHAT, "stream_options": {"include_usage": True}})

    assert all(e["object"] == "chat.completion.chunk" for e in events)
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"
    assert streamed_text(events) == "hello there, world"
    assert events[-2]["choices"][0]["finish_reason"] == "stop"
    assert events[-1]["choices"] == [] and events[-1]["usage"]["completion_tokens"] > 0
    [seen] = upstream.requests
    assert seen.body["stream"] is True
    assert seen.headers["accept"] == "text/event-stream"


async def test_streams_reuse_one_pooled_connection(upstream: FakeUpstream, make_backend: MakeBackend) -> None:
    backend = make_backend()
    await collect(backend)
    await collect(backend)
    await backend.complete("chat/completions", CHAT)
    assert len({r.client_port for r in upstream.requests}) == 1


async def test_build_backend_makes_a_working_openai_backend(upstream: FakeUpstream) -> None:
    backend = build_backend("main", OpenAIBackendConfig(type="openai", base_url=upstream.base_url))
    try:
        assert backend.name == "main"
        answer = await backend.complete("moderations", {"input": "hi"})
        assert answer["results"][0]["flagged"] is False
    finally:
        await backend.aclose()


async def test_cookies_an_upstream_sets_are_never_sent_back(upstream: FakeUpstream, make_backend: MakeBackend) -> None:
    # One backend serves every tenant: a session cookie from one answer must not ride on the next request.
    upstream.enqueue(Reply(headers={"set-cookie": "session=tenant-a; Path=/"}))
    backend = make_backend()
    await backend.complete("chat/completions", CHAT)
    await collect(backend)
    assert [("cookie" in r.headers) for r in upstream.requests] == [False, False]


async def test_the_pool_never_opens_more_than_max_connections(
    upstream: FakeUpstream, make_backend: MakeBackend
) -> None:
    upstream.enqueue(Reply(delay_s=0.1), times=4)
    backend = make_backend(max_connections=2)
    answers = await asyncio.gather(*(backend.complete("chat/completions", CHAT) for _ in range(4)))
    assert len(answers) == 4
    assert len({r.client_port for r in upstream.requests}) == 2  # two waited for a pooled connection


async def test_a_connection_closed_by_the_upstream_while_pooled_is_replaced(
    upstream: FakeUpstream, make_backend: MakeBackend
) -> None:
    upstream.enqueue(Reply(headers={"connection": "close"}))
    backend = make_backend(max_retries=0)
    await backend.complete("chat/completions", CHAT)
    await backend.complete("chat/completions", CHAT)  # no retries allowed: the dead socket must not be reused
    assert len({r.client_port for r in upstream.requests}) == 2


async def test_a_proxy_named_by_the_environment_is_used(
    upstream: FakeUpstream, make_backend: MakeBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fake upstream stands in for the proxy: it gets the absolute-form request for a host that
    # does not resolve, so the answer can only have come through it.
    monkeypatch.setenv("HTTP_PROXY", f"http://user:secret@{upstream.host}:{upstream.port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    answer = await make_backend(base_url="http://upstream.invalid/v1").complete("chat/completions", CHAT)
    assert answer["choices"][0]["message"]["content"] == "hello there, world"
    [seen] = upstream.requests
    assert seen.path == "/v1/chat/completions"
    assert seen.headers["host"] == "upstream.invalid"
    assert seen.headers["proxy-authorization"] == "Basic dXNlcjpzZWNyZXQ="  # user:secret


async def test_no_proxy_exempts_the_upstream_host(
    upstream: FakeUpstream, make_backend: MakeBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{refused_port()}")
    monkeypatch.setenv("NO_PROXY", f"example.org, .{upstream.host}")
    await make_backend(max_retries=0).complete("chat/completions", CHAT)
    assert len(upstream.requests) == 1  # straight there: the proxy's port refuses connections


# --- retries -------------------------------------------------------------------------------------


async def test_complete_retries_5xx_then_succeeds(upstream: FakeUpstream, make_backend: MakeBackend) -> None:
    upstream.enqueue(Reply(status=503), times=2)
    answer = await make_backend(max_retries=2).complete("chat/completions", CHAT)
    assert answer["choices"][0]["message"]["content"] == "hello there, world"
    assert len(upstream.requests) == 3


async def test_stream_retries_5xx_before_the_first_byte(upstream: FakeUpstream, make_backend: MakeBackend) -> None:
    upstream.enqueue(Reply(status=502), Reply(status=500))
    events = await collect(make_backend(max_retries=2))
    assert streamed_text(events) == "hello there, world"
    assert len(upstream.requests) == 3


async def test_retries_exhausted_passes_the_last_status_and_body(
    upstream: FakeUpstream, make_backend: MakeBackend
) -> None:
    error = {"error": {"message": "overloaded", "type": "server_error", "param": None, "code": "busy"}}
    upstream.enqueue(Reply(status=503, error_body=error), times=3)
    with pytest.raises(UpstreamStatus) as caught:
        await make_backend(max_retries=2).complete("chat/completions", CHAT)
    # The upstream's words are kept apart from our message, which logs and the audit store may carry.
    said = UpstreamErrorFields("overloaded", "server_error", "busy", None)
    assert (caught.value.status, caught.value.upstream, caught.value.message) == (
        503,
        said,
        "upstream answered HTTP 503",
    )
    assert len(upstream.requests) == 3


async def test_429_honours_small_retry_after(upstream: FakeUpstream, make_backend: MakeBackend) -> None:
    upstream.enqueue(Reply(status=429, headers={"retry-after-ms": "300"}))
    started = time.monotonic()
    await make_backend(max_retries=1, backoff_s=0.0).complete("chat/completions", CHAT)
    assert time.monotonic() - started >= 0.3
    assert len(upstream.requests) == 2


async def test_429_with_long_retry_after_is_passed_on_at_once(
    upstream: FakeUpstream, make_backend: MakeBackend
) -> None:
    upstream.enqueue(Reply(status=429, headers={"retry-after": "120"}))
    with pytest.raises(UpstreamStatus) as caught:
        await make_backend(max_retries=3).complete("chat/completions", CHAT)
    assert caught.value.status == 429
    assert len(upstream.requests) == 1


@pytest.mark.parametrize("status", [400, 401, 404, 422, 501])
async def test_client_errors_pass_on_with_body_without_retry(
    upstream: FakeUpstream, make_backend: MakeBackend, status: int
) -> None:
    error = {"error": {"message": "bad field", "type": "invalid_request_error", "param": "messages", "code": None}}
    upstream.enqueue(Reply(status=status, error_body=error), times=2)
    backend = make_backend(max_retries=3)
    with pytest.raises(UpstreamStatus) as caught:
        await backend.complete("chat/completions", CHAT)
    said = UpstreamErrorFields("bad field", "invalid_request_error", None, "messages")
    assert (caught.value.status, caught.value.upstream) == (status, said)
    with pytest.raises(UpstreamStatus) as caught_stream:
        await collect(backend)
    assert (caught_stream.value.status, caught_stream.value.upstream) == (status, said)
    assert len(upstream.requests) == 2


async def test_no_retry_once_a_stream_has_yielded(upstream: FakeUpstream, make_backend: MakeBackend) -> None:
    upstream.enqueue(Reply(chunks=["one ", "two ", "three"], break_after_chunks=1))
    received: list[dict[str, Any]] = []
    with pytest.raises(StreamBroken):
        async for event in make_backend(max_retries=3).stream("chat/completions", CHAT):
            received.append(event)
    assert streamed_text(received) == "one "
    assert len(upstream.requests) == 1


# --- failures mapped at the boundary -----------------------------------------------------------------


async def test_connection_refused_is_upstream_unavailable_after_retries(make_backend: MakeBackend) -> None:
    backend = make_backend(base_url=f"http://127.0.0.1:{refused_port()}/v1", max_retries=2, backoff_s=0.05)
    started = time.monotonic()
    with pytest.raises(UpstreamUnavailable):
        await backend.complete("chat/completions", CHAT)
    assert time.monotonic() - started >= 0.05 + 0.1  # two backoffs: the retries happened
    with pytest.raises(UpstreamUnavailable):
        await collect(backend)


async def test_slow_head_is_upstream_timeout(upstream: FakeUpstream, make_backend: MakeBackend) -> None:
    upstream.enqueue(Reply(delay_s=1.0), times=2)
    backend = make_backend(timeout_s=0.2, max_retries=2)
    with pytest.raises(UpstreamTimeout):
        await backend.complete("chat/completions", CHAT)
    with pytest.raises(UpstreamTimeout):
        await collect(backend)
    assert len(upstream.requests) == 2  # timeouts are not retried: the upstream may be working on it


async def test_stream_stalling_between_bytes_is_upstream_timeout(
    upstream: FakeUpstream, make_backend: MakeBackend
) -> None:
    upstream.enqueue(Reply(chunks=["a", "b"], stall_after_chunks=1, stall_s=1.0))
    received: list[dict[str, Any]] = []
    with pytest.raises(UpstreamTimeout):
        async for event in make_backend(timeout_s=0.2).stream("chat/completions", CHAT):
            received.append(event)
    assert streamed_text(received) == "a"


async def test_non_stream_body_stalling_is_upstream_timeout(upstream: FakeUpstream, make_backend: MakeBackend) -> None:
    upstream.enqueue(Reply(stall_after_chunks=1, stall_s=1.0))
    with pytest.raises(UpstreamTimeout):
        await make_backend(timeout_s=0.2).complete("chat/completions", CHAT)


async def test_non_stream_body_cut_off_is_upstream_unavailable(
    upstream: FakeUpstream, make_backend: MakeBackend
) -> None:
    upstream.enqueue(Reply(break_after_chunks=1))
    with pytest.raises(UpstreamUnavailable):
        await make_backend(max_retries=2).complete("chat/completions", CHAT)
    assert len(upstream.requests) == 1


async def test_non_json_success_body_is_bad_gateway(upstream: FakeUpstream, make_backend: MakeBackend) -> None:
    upstream.enqueue(Reply(raw_stream=[b"<html>proxy page</html>"]))
    with pytest.raises(UpstreamStatus) as caught:
        await make_backend().complete("chat/completions", CHAT)
    assert caught.value.status == 502


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param([b'data: {"choices": []}\n\n'], id="eof-without-done"),
        pytest.param([b'data: {"choices": []}\n\n', b"data: {not json\n\n", b"data: [DONE]\n\n"], id="invalid-json"),
        pytest.param([b"data: [1, 2]\n\n", b"data: [DONE]\n\n"], id="not-an-object"),
    ],
)
async def test_malformed_stream_is_stream_broken(
    upstream: FakeUpstream, make_backend: MakeBackend, raw: list[bytes]
) -> None:
    upstream.enqueue(Reply(raw_stream=raw))
    with pytest.raises(StreamBroken):
        await collect(make_backend())


async def test_dropped_connection_mid_stream_is_stream_broken(
    upstream: FakeUpstream, make_backend: MakeBackend
) -> None:
    upstream.enqueue(Reply(chunks=["x", "y", "z"], break_after_chunks=2))
    with pytest.raises(StreamBroken) as caught:
        await collect(make_backend())
    assert isinstance(caught.value.__cause__, aiohttp.ClientPayloadError)


async def test_error_object_in_stream_raises_upstream_status(upstream: FakeUpstream, make_backend: MakeBackend) -> None:
    error = b'data: {"error": {"message": "model overloaded", "type": "server_error", "code": 503}}\n\n'
    upstream.enqueue(Reply(raw_stream=[b'data: {"choices": [{"index": 0, "delta": {"content": "hi"}}]}\n\n', error]))
    received: list[dict[str, Any]] = []
    with pytest.raises(UpstreamStatus) as caught:
        async for event in make_backend().stream("chat/completions", CHAT):
            received.append(event)
    assert streamed_text(received) == "hi"
    assert (caught.value.status, caught.value.upstream) == (
        503,
        UpstreamErrorFields("model overloaded", "server_error", 503),
    )


async def test_error_event_without_error_key_raises(upstream: FakeUpstream, make_backend: MakeBackend) -> None:
    upstream.enqueue(Reply(raw_stream=[b'event: error\ndata: {"message": "quota", "code": 429}\n\n']))
    with pytest.raises(UpstreamStatus) as caught:
        await collect(make_backend())
    assert (caught.value.status, caught.value.upstream) == (429, UpstreamErrorFields("quota", code=429))


async def test_early_close_of_the_stream_closes_the_upstream_connection(
    upstream: FakeUpstream, make_backend: MakeBackend
) -> None:
    upstream.enqueue(Reply(chunks=["first", "second"], stall_after_chunks=1, stall_s=5.0))
    stream = make_backend().stream("chat/completions", CHAT)
    await anext(stream)  # role
    assert (await anext(stream))["choices"][0]["delta"]["content"] == "first"
    await stream.aclose()  # what the proxy does when an output step blocks
    assert wait_until(lambda: upstream.disconnects == 1, timeout_s=2.0)


async def test_tolerant_sse_parsing_over_the_wire(upstream: FakeUpstream, make_backend: MakeBackend) -> None:
    raw = [
        b': keep-alive\r\n\r\nevent: message\r\nid: 1\r\ndata: {"choices": [{"delta": {"content": "a"}}]}\r',
        # A multi-line data field; U+2028 both escaped and raw (it must not split a line).
        '\n\r\ndata: {"choices": [{"delta":\r\ndata:  {"content": "b\\u2028\u2028"}}]}\r\n\r\n'.encode(),
        b'retry: 10\n\ndata: {"choices": [{"delta": {"content": "c"}}]}\ndata: {"choices": []}\n\n',
        b'data: [DONE]\n\ndata: {"ignored": true}\n\n',
    ]
    upstream.enqueue(Reply(raw_stream=raw))
    events = await collect(make_backend())
    assert streamed_text(events) == "ab\u2028\u2028c"
    assert len(events) == 4  # the last event carried two objects on two data lines


# --- pieces --------------------------------------------------------------------------------------


def test_sse_decoder_handles_lines_split_anywhere() -> None:
    body = b': c\r\n\r\nevent: error\r\ndata: {"a":\r\ndata: 1}\r\n\r\ndata:{"b":2}\n\n'
    for size in (1, 2, 3, 7, len(body)):
        decoder = SSEDecoder()
        events = [e for i in range(0, len(body), size) for e in decoder.feed(body[i : i + size])]
        assert events == [SSEEvent("error", b'{"a":\n1}'), SSEEvent("", b'{"b":2}')], size


def test_sse_decoder_flush_dispatches_a_last_event_without_blank_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: {}\ndata: x") == []
    assert decoder.flush() == [SSEEvent("", b"{}\nx")]


def test_retry_after_forms() -> None:
    assert _retry_after_s(CIMultiDict({"Retry-After-Ms": "250", "retry-after": "9"})) == 0.25
    assert _retry_after_s(CIMultiDict({"retry-after": "2"})) == 2.0
    assert _retry_after_s(CIMultiDict({"retry-after": "soon"})) is None
    assert _retry_after_s(CIMultiDict({})) is None
    in_three_s = _retry_after_s(CIMultiDict({"retry-after": formatdate(time.time() + 3, usegmt=True)}))
    assert in_three_s is not None and 1.0 < in_three_s <= 3.0
