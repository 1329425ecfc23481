"""A Responses API request (`POST /v1/responses`) as a chat-completions request.

Every backend is reached through chat completions: the request is translated here, before any
text is read, so the one walker, the input and output chains, the streaming guard and the audit
record all run on the chat body that is actually forwarded. Every string of the Responses body
lands in that chat body (instructions as the system message, input items as messages,
`function_call` items as assistant tool calls, `function_call_output` items as tool messages,
tool definitions as chat tools) or the request is refused with a 400 naming the field: nothing
is forwarded that the walker did not see, and nothing the client sent is dropped silently,
except `reasoning` input items (a model's own earlier reasoning, which chat completions cannot
take back) and options that only shape OpenAI's storage or the reply's extras (`store`,
`include`, `truncation`, `stream_options`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from guardproxy.core import JSON
from guardproxy.errors import InvalidRequest

# Responses fields copied to the chat body under the same name: sampling options and identifiers.
_SAME_NAME = (
    "model",
    "stream",
    "temperature",
    "top_p",
    "parallel_tool_calls",
    "metadata",
    "user",
    "service_tier",
    "seed",
    "safety_identifier",
    "prompt_cache_key",
)
# Accepted and not forwarded: they configure OpenAI's storage of the response or extra output fields.
_NOT_FORWARDED = frozenset({"store", "include", "truncation", "stream_options", "background"})
# Handled field by field below.
_TRANSLATED = frozenset({"input", "instructions", "tools", "tool_choice", "max_output_tokens", "text", "reasoning"})
_MESSAGE_ROLES = frozenset({"user", "system", "developer", "assistant"})
# Input content parts whose text the chain reads, by role: the Responses names and their chat names.
_TEXT_PART_TYPES = frozenset({"input_text", "output_text", "text"})


@dataclass(frozen=True, slots=True)
class ResponsesRequest:
    """The chat body to forward, and what the Responses answer repeats of the request."""

    chat: JSON
    echo: JSON


def to_chat(body: Any) -> ResponsesRequest:
    """Translate a Responses request; an unknown field or item type is a 400 naming it, never passed on unread."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    if not isinstance(body.get("model"), str):
        raise InvalidRequest("Invalid value for 'model': a model name (string) is required.", param="model")
    for key in body:
        if key not in _SAME_NAME and key not in _NOT_FORWARDED and key not in _TRANSLATED:
            raise _unsupported(key, f"'{key}' is not supported by guardproxy's Responses API")
    if body.get("background"):
        raise _unsupported("background", "background responses are not supported by guardproxy")
    chat: JSON = {k: body[k] for k in _SAME_NAME if k in body and body[k] is not None}
    messages: list[JSON] = []
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise InvalidRequest("Invalid value for 'instructions': expected a string.", param="instructions")
        messages.append({"role": "system", "content": instructions})
    messages.extend(_messages(body.get("input")))
    chat["messages"] = messages
    if body.get("tools") is not None:
        chat["tools"] = _tools(body["tools"])
    if body.get("tool_choice") is not None:
        chat["tool_choice"] = _tool_choice(body["tool_choice"])
    if body.get("max_output_tokens") is not None:
        chat["max_completion_tokens"] = body["max_output_tokens"]
    _text_options(body.get("text"), chat)
    _reasoning(body.get("reasoning"), chat)
    if chat.get("stream"):
        chat["stream_options"] = {"include_usage": True}  # `response.completed` reports usage
    echo = {k: body.get(k) for k in ("instructions", "tools", "tool_choice", "parallel_tool_calls", "metadata")}
    return ResponsesRequest(chat, echo)


def _unsupported(param: str, what: str) -> InvalidRequest:
    return InvalidRequest(f"{what}; it would reach no check, so the request is refused.", param=param)


def _messages(value: Any) -> list[JSON]:
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise InvalidRequest(
            "Invalid value for 'input': expected a string or a non-empty list of items.", param="input"
        )
    messages: list[JSON] = []
    for i, item in enumerate(value):
        here = f"input[{i}]"
        if not isinstance(item, dict):
            raise InvalidRequest(f"Invalid value for '{here}': expected an object.", param=here)
        kind = item.get("type", "message")
        if kind == "message":
            messages.append(_message(item, here))
        elif kind == "function_call":
            call = _function_call(item, here)
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)  # parallel calls of one turn: one assistant message
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            messages.append(_function_call_output(item, here))
        elif kind == "reasoning":
            continue  # chat completions takes no earlier reasoning back; not forwarded, so nothing unchecked
        else:
            raise _unsupported(f"{here}.type", f"input items of type {kind!r} are not supported by guardproxy")
    if not messages:
        raise InvalidRequest("Invalid value for 'input': no message to send.", param="input")
    return messages


def _message(item: JSON, here: str) -> JSON:
    role = item.get("role")
    if not isinstance(role, str) or role.lower() not in _MESSAGE_ROLES:
        raise InvalidRequest(
            f"Invalid value for '{here}.role': {role!r} is not one of {', '.join(sorted(_MESSAGE_ROLES))}.",
            param=f"{here}.role",
        )
    for key in item:
        if key not in ("type", "role", "content", "id", "status"):
            raise _unsupported(f"{here}.{key}", f"message field '{key}' is not supported by guardproxy")
    return {"role": role.lower(), "content": _content(item.get("content"), f"{here}.content")}


def _content(value: Any, here: str) -> str | list[JSON]:
    """Text parts become chat text parts; images keep their URL; anything else stays as sent, and the
    walker records it as content no detector can read (the policy's `unscanned` decides)."""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise InvalidRequest(f"Invalid value for '{here}': expected a string or a list of parts.", param=here)
    parts: list[JSON] = []
    for j, part in enumerate(value):
        if not isinstance(part, dict):
            raise InvalidRequest(f"Invalid value for '{here}[{j}]': expected an object.", param=f"{here}[{j}]")
        kind = part.get("type")
        if kind in _TEXT_PART_TYPES and isinstance(part.get("text"), str):
            parts.append({"type": "text", "text": part["text"]})  # annotations/logprobs of earlier answers: dropped
        elif kind == "refusal" and isinstance(part.get("refusal"), str):
            parts.append({"type": "text", "text": part["refusal"]})
        elif kind == "input_image" and isinstance(part.get("image_url"), str):
            image = {"url": part["image_url"], **({"detail": part["detail"]} if part.get("detail") else {})}
            parts.append({"type": "image_url", "image_url": image})
        else:
            parts.append(part)
    return parts


def _function_call(item: JSON, here: str) -> JSON:
    for key in ("call_id", "name", "arguments"):
        if not isinstance(item.get(key), str):
            raise InvalidRequest(f"Invalid value for '{here}.{key}': expected a string.", param=f"{here}.{key}")
    return {
        "id": item["call_id"],
        "type": "function",
        "function": {"name": item["name"], "arguments": item["arguments"]},
    }


def _function_call_output(item: JSON, here: str) -> JSON:
    if not isinstance(item.get("call_id"), str):
        raise InvalidRequest(f"Invalid value for '{here}.call_id': expected a string.", param=f"{here}.call_id")
    return {"role": "tool", "tool_call_id": item["call_id"], "content": _content(item.get("output"), f"{here}.output")}


def _tools(value: Any) -> list[JSON]:
    if not isinstance(value, list):
        raise InvalidRequest("Invalid value for 'tools': expected a list.", param="tools")
    tools: list[JSON] = []
    for i, tool in enumerate(value):
        here = f"tools[{i}]"
        if not isinstance(tool, dict) or tool.get("type") != "function":
            kind = tool.get("type") if isinstance(tool, dict) else None
            raise _unsupported(f"{here}.type", f"tools of type {kind!r} are not supported by guardproxy")
        if not isinstance(tool.get("name"), str):
            raise InvalidRequest(f"Invalid value for '{here}.name': expected a string.", param=f"{here}.name")
        function = {k: v for k, v in tool.items() if k != "type" and v is not None}
        tools.append({"type": "function", "function": function})  # every field the client sent: the walker reads it
    return tools


def _tool_choice(value: Any) -> Any:
    if value in ("auto", "none", "required"):
        return value
    if isinstance(value, dict) and value.get("type") == "function" and isinstance(value.get("name"), str):
        return {"type": "function", "function": {"name": value["name"]}}
    raise _unsupported("tool_choice", "this tool_choice is not supported by guardproxy")


def _text_options(value: Any, chat: JSON) -> None:
    """`text.format` is chat's `response_format` (its schema is then checked as a tool definition)."""
    if value is None:
        return
    if not isinstance(value, dict):
        raise InvalidRequest("Invalid value for 'text': expected an object.", param="text")
    for key, option in value.items():
        if key == "verbosity":
            chat["verbosity"] = option
        elif key == "format":
            chat["response_format"] = _response_format(option)
        else:
            raise _unsupported(f"text.{key}", f"'text.{key}' is not supported by guardproxy")


def _response_format(value: Any) -> JSON:
    if not isinstance(value, dict) or value.get("type") not in ("text", "json_object", "json_schema"):
        raise _unsupported("text.format", "this text.format is not supported by guardproxy")
    if value["type"] != "json_schema":
        return {"type": value["type"]}
    schema = {k: v for k, v in value.items() if k != "type"}
    return {"type": "json_schema", "json_schema": schema}


def _reasoning(value: Any, chat: JSON) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        raise InvalidRequest("Invalid value for 'reasoning': expected an object.", param="reasoning")
    if value.get("effort") is not None:
        chat["reasoning_effort"] = value["effort"]
    # `summary` asks for reasoning summaries, which chat completions does not return: nothing to forward.
