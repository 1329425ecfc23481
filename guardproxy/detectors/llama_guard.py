"""Llama Guard 3 as a detector: the user turn on input, the assistant turn (after the user's question) on output.

Engine `llama_cpp` (the default when no `backend` is given) runs a GGUF guard model in-process
(`llama_guard_local`): the shipped one when `model_path` is not set, or a user's Llama Guard 3 GGUF. The
prompt is rendered here, so category subsets and custom categories apply, and the score is P(unsafe) from
the first answer position's logits.

Engine `openai` talks to any policy backend that serves a Llama Guard 3 model (vLLM, Ollama, llama.cpp's
server, a hosted API), in one of two ways:

- `prompt_format: chat_template` sends the conversation as chat messages and lets the server's Llama Guard
  chat template write the prompt. That template fixes the categories to S1-S14, so a category subset is
  applied to the answer (a verdict naming only left-out categories counts as safe), and custom categories
  are not possible.
- `prompt_format: raw` renders the prompt here (`llama_guard_prompt`) with exactly the configured
  categories, custom ones included, and sends it to `/v1/completions`.

The score is the model's probability of "unsafe" for the first token of its answer when the backend
returns log-probabilities (as Meta's model card scores it), else 1.0 / 0.0 from the parsed verdict.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from guardproxy.backends.base import Backend
from guardproxy.config_base import StrictModel
from guardproxy.core import JSON, Context, Detection
from guardproxy.detectors.base import DetectorDeps
from guardproxy.detectors.llama_guard_local import LlamaGuardEngine, LocalLlamaGuard, locate_gguf, model_source
from guardproxy.detectors.llama_guard_prompt import (
    LLAMA_GUARD_3_CATEGORIES,
    Category,
    Turn,
    assessed_role,
    render_prompt,
    render_task,
    render_task_head,
)
from guardproxy.detectors.model_files import ModelDir
from guardproxy.errors import DetectorFailed, GuardproxyError, PolicyInvalid

CategoryCode = Literal["S1", "S2", "S3", "S4", "S5", "S6", "S7", "S8", "S9", "S10", "S11", "S12", "S13", "S14"]
_ALL_CODES: tuple[CategoryCode, ...] = ("S1", "S2", "S3", "S4", "S5", "S6", "S7", "S8", "S9", "S10", "S11", "S12", "S13", "S14")  # fmt: skip
_CODE = re.compile(r"S\d{1,3}")
_NOT_WORD = re.compile(r"\W+")
_TOP_LOGPROBS = 5


class LlamaGuardCustomCategory(StrictModel):
    """A category of your own, numbered after S14 in the order given (S15, S16, ...)."""

    name: str = Field(min_length=1, description="Category name as the model reads it, e.g. `Financial Advice`.")
    description: str = Field("", description="What the category covers; written under its name in the prompt.")
    label: str | None = Field(
        None, pattern=r"^\w+$", description="Label reported when it is violated; default: the name in snake_case."
    )


class LlamaGuardConfig(StrictModel):
    """Llama Guard 3: `safe` or `unsafe` plus the violated categories (S1-S14 and custom ones)."""

    type: Literal["llama_guard"]
    engine: Literal["llama_cpp", "openai", "backend", "transformers"] | None = Field(
        None,
        description="llama_cpp: a GGUF guard model run in-process (`model_path`; null = the shipped guard "
        "model). openai / backend: a policy backend serving a Llama Guard 3 model — an OpenAI-compatible "
        "server, or a `llama_cpp` / `transformers` backend of this policy. transformers: declare such a backend "
        "instead (see the error message). Null: llama_cpp, or openai when `backend` is given.",
    )
    backend: str | None = Field(None, description="engine openai / backend: a key of `backends:`.")
    model: str | None = Field(None, description="engine openai: the model name sent to that backend.")
    model_path: str | None = Field(
        None,
        description="engine llama_cpp: a GGUF file (e.g. Meta's `Llama-Guard-3-1B.Q4_K_M.gguf`), `pkg:PACKAGE/FILE`, "
        "or a model directory (`vN/model.gguf`); null = the shipped guard model (`models/llama-guard-smol`). "
        "engine transformers: a model directory.",
    )
    prompt_wrapper: Literal["auto", "chatml", "llama3"] = Field(
        "auto",
        description="engine llama_cpp: the chat format around the Llama Guard task. auto: llama3 when the GGUF's "
        "vocabulary has `<|start_header_id|>` (Meta's Llama Guard 3), chatml when it has `<|im_start|>` "
        "(the shipped model); neither is a load error.",
    )
    n_ctx: int = Field(4096, ge=512, description="engine llama_cpp: context window in tokens (prompt + answer).")
    n_threads: int | None = Field(
        None, ge=1, description="engine llama_cpp: CPU threads per context; null lets llama-cpp-python choose."
    )
    prompt_format: Literal["chat_template", "raw"] = Field(
        "chat_template",
        description="engine openai / backend. chat_template: send chat messages, the server applies the model's "
        "template (S1-S14 only). raw: send the prompt written here to `/v1/completions` (category subset and "
        "custom categories in it). Engine llama_cpp always renders the prompt here.",
    )
    categories: list[CategoryCode] = Field(
        default_factory=lambda: list(_ALL_CODES), description="The Llama Guard 3 categories that count."
    )
    custom_categories: list[LlamaGuardCustomCategory] = Field(
        default_factory=list,
        description="Your own categories (engine llama_cpp, or engine openai / backend with `prompt_format: raw`).",
    )
    logprobs: bool = Field(
        True,
        description="engine openai / backend: ask for log-probabilities to score P(unsafe); turn off for servers "
        "that reject them. Engine llama_cpp always scores from the logits.",
    )
    max_tokens: int = Field(20, ge=1, description="Upper bound on the answer's length in tokens.")
    timeout_s: float = Field(10.0, gt=0, description="The detector gives up (a detector error) after this long.")

    @model_validator(mode="after")
    def _engine_needs(self) -> LlamaGuardConfig:
        if self.engine is None:
            object.__setattr__(self, "engine", "llama_cpp" if self.backend is None else "openai")
        if self.engine == "backend" and self.backend is not None and self.model is None:
            object.__setattr__(self, "model", "llama-guard")  # local backends ignore the model name
        if self.engine in ("openai", "backend") and (self.backend is None or self.model is None):
            raise ValueError(f"engine {self.engine} needs `backend` (a key of `backends:`) and `model`")
        if self.engine == "llama_cpp" and (self.backend is not None or self.model is not None):
            raise ValueError(
                "engine llama_cpp (the default without `backend`) runs the GGUF of `model_path` in-process; "
                "`model` is for engine openai / backend, which needs `backend` (a key of `backends:`) and `model`"
            )
        if self.engine == "transformers" and self.model_path is None:
            raise ValueError(f"engine {self.engine} needs `model_path`")
        if self.custom_categories and self.engine in ("openai", "backend") and self.prompt_format == "chat_template":
            raise ValueError(
                "custom_categories need `prompt_format: raw`: a server's Llama Guard chat template "
                "always lists S1-S14 and nothing else"
            )
        if not self.categories and not self.custom_categories:
            raise ValueError("at least one category must count")
        return self


def build_categories(config: LlamaGuardConfig) -> tuple[Category, ...]:
    """The configured subset of S1-S14, then the custom categories as S15, S16, ..."""
    wanted = set(config.categories)
    builtin = tuple(c for c in LLAMA_GUARD_3_CATEGORIES if c.code in wanted)
    first = len(LLAMA_GUARD_3_CATEGORIES) + 1
    custom = tuple(
        Category(f"S{first + i}", c.name.strip(), c.label or _snake(c.name), c.description)
        for i, c in enumerate(config.custom_categories)
    )
    return builtin + custom


def _snake(name: str) -> str:
    return _NOT_WORD.sub("_", name.strip().lower()).strip("_") or "custom"


class LlamaGuardDetector:
    scope: Literal["text", "request"] = "text"

    def __init__(
        self, name: str, config: LlamaGuardConfig, deps: DetectorDeps, *, engine: LlamaGuardEngine | None = None
    ) -> None:
        """`engine` replaces the in-process model of engine llama_cpp (tests inject a fake); the caller owns it."""
        self.name = name
        self._format = config.prompt_format
        self._logprobs = config.logprobs
        self._max_tokens = config.max_tokens
        self._timeout_s = config.timeout_s
        self.categories = build_categories(config)
        self._by_code = {c.code: c for c in self.categories}
        self._known_codes = {c.code for c in LLAMA_GUARD_3_CATEGORIES} | set(self._by_code)
        self._backend: Backend | None = None
        self._engine: LlamaGuardEngine | None = engine
        self._model_dir: ModelDir | None = None
        self._shared = deps.shared
        self._shared_key: tuple[object, ...] | None = None
        if config.engine == "llama_cpp":
            if engine is None:
                self._engine = self._load_engine(config)
            return
        if config.engine not in ("openai", "backend"):
            raise PolicyInvalid(
                f"detectors.{name}: engine {config.engine!r}: declare the model as a `{config.engine}` backend "
                f"(model_path: {config.model_path}) in `backends:` and use `engine: backend, backend: <its name>`, "
                "so the proxy loads it once and can also serve it"
            )
        assert config.backend is not None and config.model is not None  # the config validator ensures it
        self._backend = deps.backend(name, config.backend)
        self._model = config.model

    def _load_engine(self, config: LlamaGuardConfig) -> LlamaGuardEngine:
        """The shared in-process engine: detectors with the same model, settings and categories (hence the
        same prompt prefix) use one."""
        where = f"detectors.{self.name}.model_path"
        source = locate_gguf(where, config.model_path)
        self._model_dir = source.model_dir
        prefix = tuple(c.prompt_line() for c in self.categories)
        key = ("llama_guard_gguf", str(source.path.resolve()), config.prompt_wrapper, config.n_ctx, config.n_threads)
        self._shared_key = (*key, config.max_tokens, prefix)
        engine: LlamaGuardEngine = self._shared.acquire(
            self._shared_key,
            lambda: LocalLlamaGuard.load(
                where,
                source.path,
                wrapper=config.prompt_wrapper,
                n_ctx=config.n_ctx,
                n_threads=config.n_threads,
                max_tokens=config.max_tokens,
                heads={role: render_task_head(role, self.categories) for role in ("User", "Agent")},
            ),
        )
        return engine

    @classmethod
    def model_sources(cls, config: LlamaGuardConfig) -> tuple[Path, ...]:
        """The model directory engine llama_cpp reads (the shipped registry by default); none for a GGUF file."""
        if config.engine != "llama_cpp":
            return ()
        source = model_source(config.model_path)
        return (source,) if source is not None else ()

    def model_dirs(self) -> tuple[ModelDir, ...]:
        """The guard model version loaded from a model directory: the policy watcher reloads when it changes."""
        return (self._model_dir,) if self._model_dir is not None else ()

    async def detect(self, text: str, ctx: Context) -> Detection:
        turns = conversation(text, ctx)
        if self._engine is not None:
            return await self._detect_in_process(self._engine, turns)
        endpoint: Literal["chat/completions", "completions"]
        if self._format == "chat_template":
            endpoint, body = "chat/completions", self._chat_body(turns)
        else:
            endpoint, body = "completions", self._completion_body(turns)
        answer = await self._call(endpoint, body)
        choice = _first_choice(answer, self.name)
        content = choice.get("text") if endpoint == "completions" else (choice.get("message") or {}).get("content")
        if not isinstance(content, str):
            raise DetectorFailed(f"llama_guard {self.name!r}: the answer has no text")
        return self._report(content, unsafe_probability(choice.get("logprobs")))

    async def _detect_in_process(self, engine: LlamaGuardEngine, turns: Sequence[Turn]) -> Detection:
        task = render_task(turns, self.categories)
        try:
            async with asyncio.timeout(self._timeout_s):
                verdict = await engine.classify(assessed_role(turns), task)
        except TimeoutError as exc:
            raise DetectorFailed(f"llama_guard {self.name!r}: no answer within {self._timeout_s} s") from exc
        except DetectorFailed as exc:
            raise DetectorFailed(f"llama_guard {self.name!r}: {exc.message}") from exc
        return self._report(verdict.text, verdict.p_unsafe)

    def _chat_body(self, turns: Sequence[Turn]) -> JSON:
        messages = [{"role": "user" if t.role == "User" else "assistant", "content": t.content} for t in turns]
        body: JSON = {"model": self._model, "messages": messages, "temperature": 0, "max_tokens": self._max_tokens}
        if self._logprobs:
            body.update(logprobs=True, top_logprobs=_TOP_LOGPROBS)
        return body

    def _completion_body(self, turns: Sequence[Turn]) -> JSON:
        prompt = render_prompt(turns, self.categories)
        body: JSON = {"model": self._model, "prompt": prompt, "temperature": 0, "max_tokens": self._max_tokens}
        if self._logprobs:
            body["logprobs"] = _TOP_LOGPROBS
        return body

    async def _call(self, endpoint: Literal["chat/completions", "completions"], body: JSON) -> JSON:
        assert self._backend is not None  # engines openai / backend
        try:
            async with asyncio.timeout(self._timeout_s):
                return await self._backend.complete(endpoint, body)
        except TimeoutError as exc:
            raise DetectorFailed(f"llama_guard {self.name!r}: no answer within {self._timeout_s} s") from exc
        except GuardproxyError as exc:
            raise DetectorFailed(f"llama_guard {self.name!r}: backend failed: {exc.message}") from exc

    def _report(self, content: str, p_unsafe: float | None) -> Detection:
        unsafe, codes = parse_verdict(content, self._known_codes, self.name)
        shown = f"; p(unsafe)={p_unsafe:.3f}" if p_unsafe is not None else ""
        if not unsafe:
            return Detection(score=p_unsafe if p_unsafe is not None else 0.0, explanation=f"safe{shown}")
        violated = [self._by_code[code] for code in codes if code in self._by_code]
        if codes and not violated:
            ignored = ",".join(codes)
            return Detection(score=0.0, explanation=f"unsafe only in categories not checked here ({ignored}){shown}")
        labels = ["unsafe"]
        for category in violated:
            labels += [category.code, category.label]
        named = ", ".join(f"{c.code} ({c.name})" for c in violated) or "no category given"
        score = p_unsafe if p_unsafe is not None else 1.0
        return Detection(score=score, labels=tuple(labels), explanation=f"unsafe: {named}{shown}")

    async def aclose(self) -> None:
        # A policy backend belongs to the policy runtime, an injected engine to its caller: only a loaded
        # engine is released here (closed by its last user).
        if self._shared_key is not None:
            key, self._shared_key = self._shared_key, None
            self._shared.release(key, _close_engine)


def _close_engine(engine: LlamaGuardEngine) -> None:
    engine.close()


def conversation(text: str, ctx: Context) -> list[Turn]:
    """Input: the text as the user's turn. Output: the user's last message, then the text as the agent's turn."""
    if ctx.stage == "input":
        return [Turn("User", text)]
    return [Turn("User", last_user_text(ctx.request)), Turn("Agent", text)]


def last_user_text(request: Mapping[str, Any]) -> str:
    messages = request.get("messages")
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                return _content_text(message.get("content"))
        return ""
    prompt = request.get("prompt")  # /v1/completions
    if isinstance(prompt, list):
        prompt = prompt[0] if prompt else ""
    return prompt if isinstance(prompt, str) else ""


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def parse_verdict(content: str, known_codes: set[str], name: str = "llama_guard") -> tuple[bool, list[str]]:
    """`safe` -> (False, []); `unsafe\\nS1,S10` -> (True, ["S1", "S10"]). Anything else raises DetectorFailed."""
    lines = [line.strip() for line in content.strip().splitlines() if line.strip()]
    first = lines[0].lower() if lines else ""
    if first == "safe" and len(lines) == 1:
        return False, []
    if first != "unsafe" or len(lines) > 2:
        raise DetectorFailed(f"llama_guard {name!r}: unexpected answer {content[:120]!r}")
    codes = [code.strip().upper() for code in lines[1].split(",")] if len(lines) == 2 else []
    wrong = [code for code in codes if not _CODE.fullmatch(code) or code not in known_codes]
    if wrong:
        raise DetectorFailed(f"llama_guard {name!r}: unknown categories {wrong} in {content[:120]!r}")
    return True, list(dict.fromkeys(codes))


def unsafe_probability(logprobs: Any) -> float | None:
    """P(unsafe) / (P(unsafe) + P(safe)) at the answer's first non-blank token, or None without log-probs.

    Reads both shapes: chat (`logprobs.content[i].top_logprobs` as a list) and completions
    (`logprobs.tokens` with `logprobs.top_logprobs[i]` as a mapping). A verdict word split over several
    tokens still starts with a token that belongs to only one of "safe" / "unsafe".
    """
    for alternatives in _positions(logprobs):
        chosen = next(iter(alternatives))
        if not chosen.strip():
            continue
        p_unsafe = p_safe = 0.0
        for token, logprob in alternatives.items():
            word = token.strip().lower()
            if word and "unsafe".startswith(word):
                p_unsafe += math.exp(logprob)
            elif word and "safe".startswith(word):
                p_safe += math.exp(logprob)
        total = p_unsafe + p_safe
        return p_unsafe / total if total > 0 else None
    return None


def _positions(logprobs: Any) -> list[dict[str, float]]:
    """Per answer token: {chosen token: logprob, alternative: logprob, ...}, the chosen one first."""
    if not isinstance(logprobs, dict):
        return []
    positions: list[dict[str, float]] = []
    content = logprobs.get("content")
    if isinstance(content, list):  # chat completions
        for item in content:
            if not isinstance(item, dict) or not isinstance(item.get("token"), str):
                return positions
            alternatives = {item["token"]: _number(item.get("logprob"))}
            for top in item.get("top_logprobs") or ():
                if isinstance(top, dict) and isinstance(top.get("token"), str):
                    alternatives.setdefault(top["token"], _number(top.get("logprob")))
            positions.append(alternatives)
        return positions
    tokens, tops = logprobs.get("tokens"), logprobs.get("top_logprobs")
    chosen_logprobs = logprobs.get("token_logprobs")
    if not isinstance(tokens, list):
        return positions
    for i, token in enumerate(tokens):  # completions
        if not isinstance(token, str):
            return positions
        chosen = chosen_logprobs[i] if isinstance(chosen_logprobs, list) and i < len(chosen_logprobs) else None
        alternatives = {token: _number(chosen)}
        top = tops[i] if isinstance(tops, list) and i < len(tops) else None
        if isinstance(top, dict):
            for alternative, logprob in top.items():
                alternatives.setdefault(str(alternative), _number(logprob))
        positions.append(alternatives)
    return positions


def _number(value: Any) -> float:
    # A missing log-prob counts as impossible rather than breaking the score.
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else -math.inf


def _first_choice(answer: JSON, name: str) -> JSON:
    choices = answer.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise DetectorFailed(f"llama_guard {name!r}: the answer has no choices")
    choice: JSON = choices[0]
    return choice
