"""Validating OpenAI request bodies and finding every text they carry.

A `TextSlot` points at one string inside the parsed JSON body so the chain's edits can be
written back in place; everything else in the body passes through untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from guardproxy.core import JSON
from guardproxy.errors import InvalidRequest


@dataclass(slots=True)
class TextSlot:
    container: Any  # dict or list holding the string
    key: Any  # str or int
    role: str

    @property
    def text(self) -> str:
        value: str = self.container[self.key]
        return value

    def set(self, text: str) -> None:
        self.container[self.key] = text


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


def request_slots(kind: Kind, body: JSON) -> list[TextSlot]:
    if kind == "chat":
        return _chat_slots(body)
    key = "prompt" if kind == "completion" else "input"
    return _str_or_list_slots(body, key, "user")


def _chat_slots(body: JSON) -> list[TextSlot]:
    slots: list[TextSlot] = []
    for msg in body["messages"]:
        role = msg.get("role", "user")
        content = msg.get("content")
        if isinstance(content, str):
            slots.append(TextSlot(msg, "content", role))
        elif isinstance(content, list):
            slots.extend(TextSlot(p, "text", role) for p in content if isinstance(p.get("text"), str))
        slots.extend(_tool_call_slots(msg))
    return slots


def _tool_call_slots(msg: JSON) -> list[TextSlot]:
    slots = []
    for call in msg.get("tool_calls") or ():
        fn = call.get("function")
        if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
            slots.append(TextSlot(fn, "arguments", "tool_call"))
    fn = msg.get("function_call")
    if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
        slots.append(TextSlot(fn, "arguments", "tool_call"))
    return slots


def _str_or_list_slots(body: JSON, key: str, role: str) -> list[TextSlot]:
    value = body[key]
    if isinstance(value, str):
        return [TextSlot(body, key, role)]
    slots = []
    for i, item in enumerate(value):
        if isinstance(item, str):
            slots.append(TextSlot(value, i, role))
        elif isinstance(item, dict) and isinstance(item.get("text"), str):
            slots.append(TextSlot(item, "text", role))
    return slots


def choice_slots(kind: Kind, choice: JSON) -> list[TextSlot]:
    """Texts of one choice of a non-streamed answer."""
    if kind == "completion":
        return [TextSlot(choice, "text", "assistant")] if isinstance(choice.get("text"), str) else []
    msg = choice.get("message") or {}
    slots = [TextSlot(msg, "content", "assistant")] if isinstance(msg.get("content"), str) else []
    slots.extend(_tool_call_slots(msg))
    return slots
