"""The `transformers` backend with real transformers + torch on a tiny random-weight Llama built here."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from guardproxy.backends.local_model import BackendLoadError
from guardproxy.backends.transformers_backend import TransformersBackend, TransformersBackendConfig
from tests import local_backend_checks as checks
from tests.tiny_models import write_tiny_transformers


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_transformers(tmp_path_factory.mktemp("tiny-hf") / "model")


def make(model_dir: Path, **settings: object) -> TransformersBackend:
    config = TransformersBackendConfig.model_validate(
        {"type": "transformers", "model_path": str(model_dir), **settings}
    )
    return TransformersBackend("local", config)


@pytest.fixture
async def backend(model_dir: Path) -> AsyncIterator[TransformersBackend]:
    made = make(model_dir, device="cpu")
    yield made
    await made.aclose()


async def test_non_stream(backend: TransformersBackend) -> None:
    await checks.check_non_stream(backend)


async def test_stream(backend: TransformersBackend) -> None:
    await checks.check_stream(backend)


async def test_stop_sequences(backend: TransformersBackend) -> None:
    await checks.check_stop_sequences(backend)


async def test_completions(backend: TransformersBackend) -> None:
    await checks.check_completions(backend)


async def test_refusals_are_400s_naming_the_field(backend: TransformersBackend) -> None:
    await checks.check_refusals(backend)


async def test_client_disconnect_stops_generation(backend: TransformersBackend) -> None:
    await checks.check_disconnect_stops_generation(backend)


async def test_concurrent_requests(model_dir: Path) -> None:
    for instances in (1, 2):
        backend = make(model_dir, instances=instances)
        try:
            await checks.check_concurrent(backend)
        finally:
            await backend.aclose()


async def test_event_loop_stays_free(backend: TransformersBackend) -> None:
    await checks.check_event_loop_free(backend)


def test_missing_model_directory(tmp_path: Path) -> None:
    with pytest.raises(BackendLoadError) as err:
        make(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(err.value) and "no such file" in str(err.value)


def test_corrupt_model_directory(model_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for item in model_dir.iterdir():
        (broken / item.name).write_bytes(item.read_bytes())
    (broken / "model.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(BackendLoadError) as err:
        make(broken)
    assert str(broken) in str(err.value) and "could not load" in str(err.value)


def test_full_policy_chain_through_the_proxy(model_dir: Path, tmp_path: Path) -> None:
    greedy = _greedy_text(model_dir)
    checks.check_guarded_proxy(tmp_path, _yaml(model_dir), greedy)


def test_responses_api_through_the_proxy(model_dir: Path, tmp_path: Path) -> None:
    checks.check_responses_api(tmp_path, _yaml(model_dir), _greedy_text(model_dir))


def test_proxy_client_disconnect_stops_generation(model_dir: Path, tmp_path: Path) -> None:
    checks.check_proxy_disconnect(tmp_path, _yaml(model_dir))


def _yaml(model_dir: Path) -> str:
    return json.dumps({"type": "transformers", "model_path": str(model_dir), "device": "cpu"})


def _greedy_text(model_dir: Path) -> str:
    import asyncio

    async def run() -> str:
        backend = make(model_dir)
        try:
            answer = await backend.complete("chat/completions", checks.GREEDY)
            return str(answer["choices"][0]["message"]["content"])
        finally:
            await backend.aclose()

    return asyncio.run(run())
