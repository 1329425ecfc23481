"""Validating OpenAI request bodies: the shape checks that come before any text is read.

Finding the texts a body carries is `walker.py`'s job.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from guardproxy.errors import InvalidRequest


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Function(_Open):
    name: str | None = None
    arguments: str | None = None


class _ToolCall(_Open):
    function: _Function | None = None


class _Part(_Open):
    type: str
    text: str | None = None


class _Message(_Open):
    role: str
    content: str | list[_Part] | None = None
    tool_calls: list[_ToolCall] | None = None


class ChatBody(_Open):
    model: str
    messages: list[_Message] = Field(min_length=1)
    stream: bool = False
    n: int | None = Field(None, ge=1)


class CompletionBody(_Open):
    model: str
    prompt: str | list[str]
    stream: bool = False


class EmbeddingBody(_Open):
    model: str
    input: str | list[str] = Field(description="Token-id arrays cannot be checked, so they are refused.")


class ModerationBody(_Open):
    model: str | None = None
    input: str | list[str] | list[_Part]


Kind = Literal["chat", "completion", "embedding", "moderation"]
_ADAPTERS: dict[Kind, TypeAdapter[Any]] = {
    "chat": TypeAdapter(ChatBody),
    "completion": TypeAdapter(CompletionBody),
    "embedding": TypeAdapter(EmbeddingBody),
    "moderation": TypeAdapter(ModerationBody),
}


def validate(kind: Kind, body: Any) -> None:
    """Raise InvalidRequest naming the first wrong field, in OpenAI's `param` style."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    try:
        _ADAPTERS[kind].validate_python(body)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        param = ".".join(str(p) for p in first["loc"] if not _is_union_tag(p))
        raise InvalidRequest(f"Invalid value for '{param}': {first['msg']}.", param=param) from None


def _is_union_tag(part: Any) -> bool:
    # pydantic puts the tried union member (e.g. 'str', 'list[_Part]') into `loc`.
    return isinstance(part, str) and ("[" in part or part in {"str", "int", "bool", "float", "none"})
