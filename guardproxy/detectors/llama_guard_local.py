"""The in-process Llama Guard engine: a GGUF guard model on llama.cpp, with the prompt's prefix kept evaluated.

The Llama Guard prompt wraps the conversation in ~250 tokens (SmolLM2's tokenizer, 14 categories): ~190 of task
and categories before it, ~60 of instructions after. A small model on a CPU reads ~150 prompt tokens/s, so
evaluating it whole for every text would cost ~2 s. Everything up to `<BEGIN CONVERSATION>` is the same for
every call of one role (User on input, Agent on output) and category list, so each role has its own llama.cpp
context (weights memory-mapped once) whose cache keeps the last prompt: a call evaluates only the tokens after
the longest common prefix with it, and the head is evaluated at load (`heads`), before the first call.

The score is P(unsafe) at the answer's first position, the softmax over the logits of the first tokens of
"safe" and "unsafe" (as Meta's model card scores Llama Guard); the answer itself is decoded greedily and
parsed by the detector.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import structlog

from guardproxy.backends.local_model import PACKAGE_PREFIX, BackendLoadError, check_gguf, resolve_model_path
from guardproxy.detectors.gguf_model import FloatArray, GgufModel
from guardproxy.detectors.llama_guard_prompt import GuardRole, wrap_chatml, wrap_llama3
from guardproxy.detectors.model_files import ModelDir, default_models_root, resolve_model_dir
from guardproxy.errors import DetectorFailed

PromptWrapper = Literal["chatml", "llama3"]
SHIPPED_MODEL = "llama-guard-smol"  # a registry under default_models_root(): vN/model.gguf + model_card.json
GGUF_FILE = "model.gguf"
_ROLES: tuple[GuardRole, ...] = ("User", "Agent")
# Prompt tokens evaluated per llama.cpp call: a cancelled (timed-out) call stops within one chunk, and what it
# evaluated stays cached for the next call.
_CHUNK = 128
_CUT = "\uffff"  # a sentinel to cut the wrapped head at (a head containing it would only prefill less)
log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class GuardVerdict:
    """One classification: the model's answer text, P(unsafe), and how much of the prompt was computed."""

    text: str
    p_unsafe: float
    tokens_evaluated: int  # prompt tokens evaluated by this call
    tokens_reused: int  # prompt tokens whose cache entries an earlier call left
    tokens_generated: int


class LlamaGuardEngine(Protocol):
    """What the detector calls: `task` is the rendered Llama Guard task text; the engine wraps it in its
    model's chat format. Tests inject a fake."""

    async def classify(self, role: GuardRole, task: str) -> GuardVerdict: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class GgufSource:
    """The GGUF file to load, and the model directory it came from when it is a shipped/registry model."""

    path: Path
    model_dir: ModelDir | None


def model_source(model_path: str | None) -> Path | None:
    """The model directory (registry or one version) a configuration reads, or None for a GGUF file."""
    if model_path is None:
        return default_models_root() / SHIPPED_MODEL
    if model_path.startswith(PACKAGE_PREFIX):
        return None
    path = Path(model_path).expanduser()
    return path if path.is_dir() else None


def locate_gguf(where: str, model_path: str | None) -> GgufSource:
    """A GGUF file, `pkg:PACKAGE/FILE`, or a model directory (a registry's `CURRENT`/newest `vN/model.gguf`);
    null means the shipped guard model. Errors name the field and the path."""
    directory = model_source(model_path)
    if directory is None:
        assert model_path is not None  # model_source returns a directory for null
        path = resolve_model_path(where, model_path, want_dir=False)
        check_gguf(where, path)
        return GgufSource(path, None)
    shipped = " (null: the shipped guard model)" if model_path is None else ""
    try:
        version = resolve_model_dir(directory)
    except DetectorFailed as exc:
        raise BackendLoadError(f"{where}{shipped}: {exc.message}") from exc
    path = version / GGUF_FILE
    if not path.is_file():
        raise BackendLoadError(f"{where}{shipped}: {version} has no {GGUF_FILE}")
    check_gguf(where, path)
    return GgufSource(path, ModelDir(directory, version))


def detect_wrapper(where: str, model: GgufModel) -> PromptWrapper:
    """llama3 when the vocabulary has `<|start_header_id|>` (Meta's Llama Guard 3), chatml for `<|im_start|>`."""
    if model.special_token("<|start_header_id|>") is not None:
        return "llama3"
    if model.special_token("<|im_start|>") is not None:
        return "chatml"
    raise BackendLoadError(
        f"{where}: the model's vocabulary has neither <|start_header_id|> (Llama 3) nor <|im_start|> (ChatML) "
        "as a special token; set `prompt_wrapper` to the chat format it was trained on"
    )


def wrap(wrapper: PromptWrapper, task: str) -> str:
    return wrap_llama3(task, begin_of_text=True) if wrapper == "llama3" else wrap_chatml(task)


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def verdict_probability(logits: FloatArray, safe: int, unsafe: int) -> float:
    """P(unsafe) among {safe, unsafe} first tokens: a numerically stable two-way softmax."""
    diff = float(logits[safe]) - float(logits[unsafe])
    return 1.0 / (1.0 + math.exp(diff)) if diff > -700 else 1.0


def first_token(model: GgufModel, where: str, word: str) -> int:
    tokens = model.tokenize(word)
    if not tokens:
        raise BackendLoadError(f"{where}: the model's tokenizer gives no token for {word!r}")
    return tokens[0]


class _Slot:
    """One role's context and the lock that serialises its use (a llama.cpp context is single-threaded)."""

    def __init__(self, model: GgufModel) -> None:
        self.model = model
        self.lock = threading.Lock()
        self.closed = False


class LocalLlamaGuard:
    """`LlamaGuardEngine` on llama.cpp: one context per role, each keeping its last prompt evaluated."""

    def __init__(
        self, models: Mapping[GuardRole, GgufModel], wrapper: PromptWrapper, *, max_tokens: int, where: str
    ) -> None:
        self._slots = {role: _Slot(model) for role, model in models.items()}
        self._closing = threading.Event()
        self._prefill: threading.Thread | None = None
        self.wrapper = wrapper
        self._max_tokens = max_tokens
        first = models["User"]
        # The verdict words as the model writes them at the answer's start (no leading space).
        self._safe = first_token(first, where, "safe")
        self._unsafe = first_token(first, where, "unsafe")
        if self._safe == self._unsafe:
            raise BackendLoadError(f"{where}: 'safe' and 'unsafe' start with the same token; cannot score P(unsafe)")

    @classmethod
    def load(
        cls,
        where: str,
        path: Path,
        *,
        wrapper: PromptWrapper | Literal["auto"],
        n_ctx: int,
        n_threads: int | None,
        max_tokens: int,
        heads: Mapping[GuardRole, str] | None = None,
    ) -> LocalLlamaGuard:
        """Loads one context per role. With `heads` (each role's task up to the conversation), a background
        thread evaluates them right away, so that the first text judged pays only for itself."""
        models: dict[GuardRole, GgufModel] = {}
        try:
            for role in _ROLES:
                models[role] = GgufModel.load(where, path, n_ctx=n_ctx, n_threads=n_threads)
            chosen = detect_wrapper(where, models["User"]) if wrapper == "auto" else wrapper
            engine = cls(models, chosen, max_tokens=max_tokens, where=where)
        except BaseException:
            for model in models.values():
                model.close()
            raise
        if heads:
            engine.start_prefill(heads)
        return engine

    def start_prefill(self, heads: Mapping[GuardRole, str]) -> None:
        self._prefill = threading.Thread(target=self._run_prefill, args=(dict(heads),), name="llama-guard-prefill")
        self._prefill.start()

    def wait_prefilled(self) -> None:
        """Returns once the heads given to `load` are evaluated (the bench and tests measure after it)."""
        if self._prefill is not None:
            self._prefill.join()

    def _run_prefill(self, heads: Mapping[GuardRole, str]) -> None:
        for role, head in heads.items():
            slot = self._slots[role]
            with slot.lock:
                if slot.closed:
                    return
                # The wrapped prompt cut where the conversation starts (its tokens then match a real prompt's).
                prompt_head = wrap(self.wrapper, head + _CUT).partition(_CUT)[0]
                try:
                    _evaluate(slot.model, slot.model.tokenize(prompt_head), self._closing)
                except DetectorFailed:  # closing
                    return
                except RuntimeError as exc:  # the first call evaluates it instead
                    slot.model.rewind(0)
                    log.warning("llama_guard_prefill_failed", role=role, error=str(exc))

    async def classify(self, role: GuardRole, task: str) -> GuardVerdict:
        cancelled = threading.Event()
        try:
            return await asyncio.to_thread(self._classify, self._slots[role], wrap(self.wrapper, task), cancelled)
        except asyncio.CancelledError:
            cancelled.set()  # a timed-out call: the worker stops at its next chunk or token
            raise

    def classify_sync(self, role: GuardRole, task: str) -> GuardVerdict:
        """The same, on the calling thread (the bench)."""
        return self._classify(self._slots[role], wrap(self.wrapper, task), threading.Event())

    def _classify(self, slot: _Slot, prompt: str, cancelled: threading.Event) -> GuardVerdict:
        with slot.lock:
            if slot.closed:  # a call queued behind close(): the context is freed
                raise DetectorFailed("the guard model is closed (policy reloaded)")
            model = slot.model
            tokens = model.tokenize(prompt)
            if len(tokens) + self._max_tokens > model.n_ctx:
                raise DetectorFailed(
                    f"the prompt is {len(tokens)} tokens; with max_tokens {self._max_tokens} "
                    f"it does not fit n_ctx {model.n_ctx}"
                )
            try:
                reused = _evaluate(model, tokens, cancelled)
                answer, p_unsafe = self._decode(model, model.last_logits(), cancelled)
            except RuntimeError as exc:  # llama_decode failed: the cache is in an unknown state
                model.rewind(0)
                raise DetectorFailed(f"llama.cpp failed: {exc}") from exc
            return GuardVerdict(model.detokenize(answer), p_unsafe, len(tokens) - reused, reused, len(answer))

    def _decode(self, model: GgufModel, logits: FloatArray, cancelled: threading.Event) -> tuple[list[int], float]:
        """Greedy answer tokens, and P(unsafe) at the answer's first non-blank position (a model that starts
        with a newline is scored on the word after it, as the remote engines' log-probs are read)."""
        answer: list[int] = []
        p_unsafe: float | None = None
        while True:
            token = int(np.argmax(logits))
            end = model.is_end(token)
            if p_unsafe is None and (end or model.detokenize([token]).strip()):
                p_unsafe = verdict_probability(logits, self._safe, self._unsafe)
            if end:
                break
            answer.append(token)
            if len(answer) >= self._max_tokens:
                break
            _stop_if(cancelled)
            model.eval([token])
            logits = model.last_logits()
        if p_unsafe is None:  # only blank tokens up to max_tokens: the last position's reading
            p_unsafe = verdict_probability(logits, self._safe, self._unsafe)
        return answer, p_unsafe

    def forget(self) -> None:
        """Drops every cached prompt: the next call of each role evaluates its whole prompt (the bench's cold case)."""
        for slot in self._slots.values():
            with slot.lock:
                slot.model.rewind(0)

    def close(self) -> None:
        self._closing.set()
        if self._prefill is not None:
            self._prefill.join()  # it stops within one chunk
        for slot in self._slots.values():
            with slot.lock:  # a worker still running a timed-out call finishes its chunk first
                if not slot.closed:
                    slot.closed = True
                    slot.model.close()


def _evaluate(model: GgufModel, tokens: Sequence[int], cancelled: threading.Event) -> int:
    """Brings the context to `tokens`, evaluating only what follows the longest common prefix with what it
    holds (at least one token, whose logits the caller reads). Returns how many tokens were reused."""
    reused = min(common_prefix(model.evaluated(), tokens), len(tokens) - 1)
    model.rewind(reused)
    for start in range(reused, len(tokens), _CHUNK):
        _stop_if(cancelled)
        model.eval(tokens[start : start + _CHUNK])
    return reused


def _stop_if(cancelled: threading.Event) -> None:
    if cancelled.is_set():
        raise DetectorFailed("cancelled (timed out)")
