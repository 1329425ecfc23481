"""Admission control (issue 10, item 1 and the slow-client part of item 9), through the real proxy.

A prompt too large to check is refused 413 `request_too_large` before any detector runs, and ordinary clients
sent at the same time keep being served; a client that trickles its body is answered 408 `request_timeout`.
The model worker's queue (window by window, client by client, abandoned texts dropped) is tested on the
shipped guard classifier directly.
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from guardproxy.detectors.model_files import default_models_root
from guardproxy.detectors.onnx_classifier import ClassifierService, OnnxTextClassifier
from guardproxy.errors import BodyTooLarge
from guardproxy.policies.schema import ProxySettings
from guardproxy.proxy.admission import admit, measure
from tests.fake_upstream import FakeUpstream
from tests.policies import write_policy
from tests.proxy_harness import ProxyServer

ROOT = Path(__file__).resolve().parents[1]
ORDINARY = [
    "Can you suggest a name for a small bakery that sells sourdough bread?",
    "Please summarise the plot of Pride and Prejudice in two sentences.",
    "How do I convert a list of strings to integers in Python?",
    "Write a short, friendly reminder that the team meeting moved to Thursday.",
]


@pytest.fixture(scope="module")
def shipped(upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyServer]:
    """The shipped policy.yaml with its model detectors (guard classifier, Presidio), default limits."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("UPSTREAM_URL", upstream_server.base_url)
        mp.chdir(tmp_path_factory.mktemp("admission"))
        with ProxyServer(ROOT / "policy.yaml") as server:
            yield server


def _client(proxy: ProxyServer, timeout: float = 30.0) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.url + "/v1", api_key="k", max_retries=0, timeout=timeout)


def _steps_run(proxy: ProxyServer) -> float:
    """How many policy steps have run on any text so far (the step latency histogram's counts)."""
    text = proxy.get("/metrics").text
    return sum(float(v) for v in re.findall(r"^guardproxy_step_latency_seconds_count\{[^}]*\} (\S+)$", text, re.M))


def test_oversized_prompt_is_refused_413_before_any_detector_runs(shipped: ProxyServer, upstream: FakeUpstream) -> None:
    with _client(shipped) as client:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": ORDINARY[0]}])
        steps_before = _steps_run(shipped)
        started = time.perf_counter()
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "word " * 200_000}]
            )
        elapsed = time.perf_counter() - started
    assert caught.value.status_code == 413
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["code"] == "request_too_large" and body["type"] == "invalid_request_error"
    assert "proxy.max_text_chars" in body["message"]
    assert _steps_run(shipped) == steps_before  # no step ran on it
    assert len(upstream.requests) == 1  # only the ordinary request went upstream
    assert elapsed < 2.0, elapsed


def test_request_over_the_total_limit_is_refused_even_when_each_text_is_short(shipped: ProxyServer) -> None:
    messages = [{"role": "user", "content": "x" * 30_000} for _ in range(5)]  # 5 x 30,000 > 128,000 in all
    with _client(shipped) as client, pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=messages)  # type: ignore[arg-type]
    assert caught.value.status_code == 413
    assert isinstance(caught.value.body, dict) and "proxy.max_request_chars" in caught.value.body["message"]


def test_a_1mb_prompt_costs_concurrent_ordinary_clients_nothing(shipped: ProxyServer) -> None:
    failures: list[str] = []
    served = [0]
    stop = threading.Event()

    def ordinary(index: int) -> None:
        with _client(shipped, timeout=15.0) as client:
            while not stop.is_set():
                try:
                    client.chat.completions.create(
                        model="gpt-4o-mini", messages=[{"role": "user", "content": ORDINARY[index % len(ORDINARY)]}]
                    )
                    served[0] += 1
                except openai.APIError as exc:
                    failures.append(f"client {index}: {exc}")

    threads = [threading.Thread(target=ordinary, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    with _client(shipped) as client, pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Summarise this. " + "lorem ipsum " * 87_000}]
        )
    time.sleep(3.0)  # the old proxy's workers stayed busy with the big prompt for ~57 s
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert caught.value.status_code == 413
    assert failures == []
    assert served[0] >= 8


def test_a_client_trickling_its_body_gets_408(upstream: FakeUpstream, tmp_path: Path) -> None:
    path = write_policy(tmp_path, upstream.base_url)
    path.write_text(
        path.read_text().replace("  max_body_bytes: 65536\n", "  max_body_bytes: 65536\n  body_read_timeout_s: 1\n")
    )
    body = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}'
    with ProxyServer(path) as proxy:
        received, elapsed = trickle(proxy.port, body, head=post_head("/v1/chat/completions", body))  # ~15 s in all
    assert received.startswith(b"HTTP/1.1 408"), received[:200]
    assert b'"code":"request_timeout"' in received
    assert elapsed < 3.0, elapsed
    assert upstream.requests == []


def post_head(path: str, body: bytes) -> bytes:
    """The request line and headers of a JSON POST of `body`."""
    return f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n".encode()


def trickle(port: int, data: bytes, *, every_s: float = 0.2, head: bytes = b"") -> tuple[bytes, float]:
    """Send `head` at once, then `data` one byte every `every_s` seconds; return what the proxy answered
    meanwhile, and how long after `head` it did."""
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        started = time.monotonic()
        for byte in data:
            try:
                sock.send(bytes([byte]))
            except OSError:
                break  # the proxy answered and closed the connection
            time.sleep(every_s)
            try:
                received += sock.recv(65536)
            except BlockingIOError:
                continue
            if b"\r\n\r\n" in received:
                break
        return received, time.monotonic() - started


def test_a_client_trickling_its_headers_gets_408(upstream: FakeUpstream, tmp_path: Path) -> None:
    path = write_policy(tmp_path, upstream.base_url)
    request = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n" + b"x-filler: a\r\n" * 12  # ~33 s at 5 B/s
    with ProxyServer(path, header_timeout_s=1.0) as proxy:
        received, elapsed = trickle(proxy.port, request)
        assert received.startswith(b"HTTP/1.1 408"), received[:200]
        assert b'"code": "request_timeout"' in received
        assert elapsed < 3.0, elapsed
        # An ordinary client on a connection that stays open between requests is not cut off by it.
        with httpx.Client(base_url=proxy.url) as http:
            for _ in range(3):
                assert http.get("/healthz").status_code == 200
                time.sleep(0.6)


# --- admission arithmetic -------------------------------------------------------------------------------


def test_measure_counts_every_key_and_string_and_survives_deep_nesting() -> None:
    body: object = {"model": "m", "messages": [{"role": "user", "content": "abcd"}], "metadata": {"k" * 7: "v"}}
    assert measure(body) == (measure(body).__class__(5 + 1 + 8 + 4 + 4 + 4 + 7 + 8 + 7 + 1, 8))
    deep: object = "x"
    for _ in range(100_000):
        deep = [deep]
    assert measure(deep).total_chars == 1


def test_inline_images_and_audio_are_bounded_by_the_body_limit_not_the_text_limit() -> None:
    photo = "data:image/png;base64," + "A" * 100_000
    parts = [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": photo}},
        {"type": "input_audio", "input_audio": {"data": "B" * 100_000, "format": "wav"}},
    ]
    size = measure({"messages": [{"role": "user", "content": parts}]})
    assert size.longest_chars == len("What is in this picture?")
    admit({"messages": [{"role": "user", "content": parts}]}, ProxySettings())
    for elsewhere in (
        {"messages": [{"role": "user", "content": "data:" + "x" * 40_000}]},  # content is text, whatever its start
        {"messages": [{"role": "user", "content": "hi"}], "metadata": {"data": "x" * 40_000}},
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x" * 40_000}}]}]},
    ):
        with pytest.raises(BodyTooLarge):
            admit(elsewhere, ProxySettings())


def test_admit_names_the_limit_that_was_crossed() -> None:
    limits = ProxySettings(max_text_chars=10, max_request_chars=25)
    admit({"a": "x" * 10, "b": "y" * 10}, limits)
    with pytest.raises(BodyTooLarge, match="max_text_chars"):
        admit({"a": "x" * 11}, limits)
    with pytest.raises(BodyTooLarge, match="max_request_chars"):
        admit({"a": "x" * 10, "b": "y" * 10, "c": "z" * 5}, limits)


# --- the model worker's queue -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def service() -> Iterator[ClassifierService]:
    svc = ClassifierService(OnnxTextClassifier(default_models_root() / "guard-classifier"))
    yield svc
    svc.close()


LONG = " ".join(f"Sentence number {i} of a long but harmless report about garden tools." for i in range(1500))


def test_a_text_nobody_waits_for_is_dropped_from_the_queue(service: ClassifierService) -> None:
    async def scenario() -> int:
        before = service.windows_computed
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(service.score(LONG + " dropped", client="a"), timeout=0.05)
        await asyncio.sleep(1.0)  # the worker finishes the call in flight, then finds nothing left
        return service.windows_computed - before

    computed = asyncio.run(scenario())
    n_windows = len(service.classifier._windows(LONG)[0])
    assert n_windows > 40
    assert computed <= 16, (computed, n_windows)  # at most the one call that was already running


def test_a_short_text_does_not_wait_for_another_clients_long_one(service: ClassifierService) -> None:
    async def scenario() -> tuple[bool, int]:
        long_task = asyncio.create_task(service.score(LONG + " long", client="a"))
        await asyncio.sleep(0)
        before = service.windows_computed
        await service.score("What time does the library open on Sundays?", client="b")
        done = long_task.done()
        windows = service.windows_computed - before
        await long_task
        return done, windows

    long_done, windows_before_short = asyncio.run(scenario())
    assert not long_done  # the short text was answered while the long one was still being scored
    assert windows_before_short <= 32
