"""The OpenAI request fields the in-process models honour, validated into 400s that name the field."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from guardproxy.core import JSON
from guardproxy.errors import InvalidRequest


@dataclass(frozen=True, slots=True)
class GenerationParams:
    max_tokens: int
    temperature: float
    top_p: float
    seed: int | None
    stop: tuple[str, ...]
    include_usage: bool


@dataclass(frozen=True, slots=True)
class Defaults:
    max_tokens: int
    temperature: float
    top_p: float


def parse_params(body: JSON, defaults: Defaults, *, unsupported: Sequence[str] = ()) -> GenerationParams:
    n = body.get("n")
    if n is not None and n != 1:
        raise InvalidRequest("This local model returns one choice per request: 'n' must be 1.", param="n")
    for field in unsupported:
        if body.get(field) not in (None, False, [], {}):
            raise InvalidRequest(f"'{field}' is not supported by this local model.", param=field)
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is None:
        max_tokens = defaults.max_tokens
    elif isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise InvalidRequest("'max_tokens' must be a whole number >= 1.", param="max_tokens")
    stop = body.get("stop")
    stops: tuple[str, ...]
    if stop is None:
        stops = ()
    elif isinstance(stop, str):
        stops = (stop,)
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        stops = tuple(stop)
    else:
        raise InvalidRequest("'stop' must be a string or a list of strings.", param="stop")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise InvalidRequest("'seed' must be a whole number.", param="seed")
    options = body.get("stream_options")
    return GenerationParams(
        max_tokens=max_tokens,
        temperature=_number(body, "temperature", defaults.temperature, 0.0, 2.0),
        top_p=_number(body, "top_p", defaults.top_p, 0.0, 1.0),
        seed=seed,
        stop=tuple(s for s in stops if s),
        include_usage=bool(isinstance(options, dict) and options.get("include_usage")),
    )


def _number(body: JSON, field: str, default: float, low: float, high: float) -> float:
    value = body.get(field)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise InvalidRequest(f"'{field}' must be a number from {low:g} to {high:g}.", param=field)
    return float(value)


def parse_messages(body: JSON) -> list[dict[str, str]]:
    """Chat messages as role + plain text (text parts joined), the form chat templates expect."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty list.", param="messages")
    out: list[dict[str, str]] = []
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if not isinstance(role, str):
            raise InvalidRequest("Each message needs a 'role'.", param=f"messages[{i}].role")
        content = message.get("content")
        if content is None:
            text = ""
        elif isinstance(content, str):
            text = content
        elif isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in content):
            text = "".join(str(p.get("text", "")) for p in content)
        else:
            raise InvalidRequest("This local model accepts text content only.", param=f"messages[{i}].content")
        out.append({"role": "system" if role == "developer" else role, "content": text})
    return out


def parse_prompt(body: JSON) -> str:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise InvalidRequest("'prompt' must be one string for this local model.", param="prompt")
    return prompt


def parse_embedding_input(body: JSON) -> list[str]:
    value = body.get("input")
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise InvalidRequest("'input' must be a string or a non-empty list of strings.", param="input")
    fmt = body.get("encoding_format", "float")
    if fmt not in ("float", "base64"):
        raise InvalidRequest("'encoding_format' must be 'float' or 'base64'.", param="encoding_format")
    return texts
