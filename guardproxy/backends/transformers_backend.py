"""The `transformers` backend: any causal LM saved in a local directory (Llama, Gemma, Qwen, SmolLM...).

The model and tokenizer load once, offline (`local_files_only`). Generation runs on `instances` worker
threads sharing that one model (`worker_pool.WorkerPool`), so the event loop stays free and CPU use
stays bounded. Tokens reach the caller through a small streamer that decodes incrementally, applies
stop sequences, and stops `generate()` through a stopping criterion once the caller has gone.
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass
from typing import Any, Literal

import structlog
from pydantic import Field

from guardproxy.backends.local_backend import LocalBackend, Piece
from guardproxy.backends.local_model import BackendLoadError, resolve_model_path
from guardproxy.backends.local_request import Defaults, GenerationParams, parse_messages, parse_prompt
from guardproxy.backends.local_shapes import usage
from guardproxy.backends.stop_scanner import StopScanner
from guardproxy.backends.worker_pool import Emit, WorkerPool
from guardproxy.config_base import StrictModel
from guardproxy.core import JSON
from guardproxy.errors import InvalidRequest

log = structlog.get_logger(__name__)
_UNSUPPORTED = ("tools", "functions", "tool_choice", "function_call", "logprobs", "response_format", "audio")


class TransformersBackendConfig(StrictModel):
    """A causal LM from a local directory, run by Hugging Face transformers (`pip install 'guardproxy[transformers]'`)."""

    type: Literal["transformers"]
    model_path: str = Field(description="A directory written by `save_pretrained` (config, weights, tokenizer).")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: cuda when available, else cpu.")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto", description="auto: float32 on cpu, the checkpoint's own dtype on cuda."
    )
    instances: int = Field(1, ge=1, le=16, description="Generations run at once (they share one copy of the model).")
    max_tokens: int = Field(512, ge=1, description="Answer length when the request gives no `max_tokens`.")
    temperature: float = Field(0.7, ge=0, le=2, description="Used when the request gives none (0: greedy).")
    top_p: float = Field(0.95, gt=0, le=1, description="Used when the request gives none.")


@dataclass(frozen=True, slots=True)
class _Loaded:
    model: Any
    tokenizer: Any


class TransformersBackend(LocalBackend[_Loaded]):
    unsupported_chat = _UNSUPPORTED

    def __init__(self, name: str, config: TransformersBackendConfig) -> None:
        path = resolve_model_path(f"backends.{name}.model_path", config.model_path, want_dir=True)
        super().__init__(name, path, Defaults(config.max_tokens, config.temperature, config.top_p))
        loaded = self._load(config)
        self._pool = WorkerPool(name, [loaded] * config.instances, lambda _: None)

    def _load(self, config: TransformersBackendConfig) -> _Loaded:
        try:
            torch = importlib.import_module("torch")
            transformers = importlib.import_module("transformers")
        except ImportError as exc:
            raise BackendLoadError(
                f"backends.{self.name}: type transformers needs torch and transformers: "
                f"pip install 'guardproxy[transformers]' ({exc})"
            ) from exc
        device = config.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        elif device == "cuda" and not torch.cuda.is_available():
            raise BackendLoadError(f"backends.{self.name}.device: cuda was asked for but torch sees no CUDA device")
        dtype: Any = "auto" if config.dtype == "auto" and device == "cuda" else getattr(torch, _dtype(config.dtype))
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(self._path, local_files_only=True)
            model = transformers.AutoModelForCausalLM.from_pretrained(self._path, dtype=dtype, local_files_only=True)
        except Exception as exc:  # loaders raise many types (safetensors has its own): all are reported
            raise BackendLoadError(
                f"backends.{self.name}.model_path: {self._path}: transformers could not load it: {exc}"
            ) from exc
        model.to(device)
        model.eval()
        return _Loaded(model, tokenizer)

    def _request(self, chat: bool, params: GenerationParams, body: JSON) -> Any:
        return parse_messages(body) if chat else parse_prompt(body)

    def _generate(
        self,
        loaded: _Loaded,
        cancelled: threading.Event,
        emit: Emit[Piece],
        chat: bool,
        params: GenerationParams,
        prompt: Any,
    ) -> None:
        """Runs in a worker thread: emits text pieces, then one with the finish reason, then usage."""
        torch = importlib.import_module("torch")
        transformers = importlib.import_module("transformers")
        tokenizer, model = loaded.tokenizer, loaded.model
        if chat:
            if not tokenizer.chat_template:
                raise InvalidRequest(f"The model of backend {self.name!r} has no chat template; use /v1/completions.")
            text = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
            inputs = tokenizer(text, return_tensors="pt", add_special_tokens=False)
        else:
            inputs = tokenizer(prompt, return_tensors="pt")
        inputs = inputs.to(model.device)
        streamer = _Streamer(tokenizer, StopScanner(params.stop), emit)

        def halt(input_ids: Any, scores: Any, **_: Any) -> Any:
            stop = cancelled.is_set() or streamer.scanner.stopped
            return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)

        options: dict[str, Any] = {"do_sample": params.temperature > 0, "max_new_tokens": params.max_tokens}
        if params.temperature > 0:
            options.update(temperature=params.temperature, top_p=params.top_p)
        if params.seed is not None:
            torch.manual_seed(params.seed)
        try:
            with torch.inference_mode():
                model.generate(
                    **inputs,
                    **options,
                    streamer=streamer,
                    stopping_criteria=transformers.StoppingCriteriaList([halt]),
                    pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
                )
        finally:
            # Also when `emit` raised because the caller left: the count includes abandoned runs.
            generated = len(streamer.ids)
            self._count_tokens(generated)
            log.debug("local_generation_done", backend=self.name, tokens=generated, cancelled=cancelled.is_set())
        prompt_tokens = int(inputs["input_ids"].shape[1])
        tail = streamer.finish()
        if tail:
            emit(Piece(tail))
        ended = streamer.scanner.stopped or streamer.saw_eos(model.generation_config.eos_token_id)
        emit(Piece("", finish="stop" if ended or generated < params.max_tokens else "length"))
        emit(Piece("", usage=usage(prompt_tokens, generated)))


class _Streamer:
    """What `generate(streamer=...)` calls: decodes new tokens into text and emits it through stop sequences."""

    def __init__(self, tokenizer: Any, scanner: StopScanner, emit: Emit[Piece]) -> None:
        self.tokenizer = tokenizer
        self.scanner = scanner
        self.emit = emit
        self.ids: list[int] = []
        self.sent = 0
        self.prompt_seen = False

    def put(self, value: Any) -> None:
        if not self.prompt_seen:  # generate() first hands over the prompt
            self.prompt_seen = True
            return
        self.ids.extend(int(i) for i in value.reshape(-1).tolist())
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):  # half a multi-byte character: wait for the rest
            return
        released = self.scanner.feed(text[self.sent :])
        self.sent = len(text)
        if released:
            self.emit(Piece(released))

    def end(self) -> None:
        """Called by generate() when it finishes; the tail is released by `finish()` instead."""

    def finish(self) -> str:
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        released = self.scanner.feed(text[self.sent :]) if len(text) > self.sent else ""
        self.sent = len(text)
        return released + self.scanner.flush()

    def saw_eos(self, eos: int | list[int] | None) -> bool:
        ends = {eos} if isinstance(eos, int) else set(eos or [])
        return bool(self.ids) and self.ids[-1] in ends


def _dtype(name: str) -> str:
    return "float32" if name == "auto" else name
