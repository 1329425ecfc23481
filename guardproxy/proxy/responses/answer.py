"""A checked chat-completions answer as a Responses API `response` object.

Built only from what the output chain passed (the gateway has already rebuilt the chat answer
from checked texts): the assistant's text, its refusal and its tool calls. Reasoning texts are
not carried over, as a chat stream does not relay them either. A blocked answer is the Responses
API's own shape for it: `status: "incomplete"`, `incomplete_details.reason: "content_filter"`.
"""

from __future__ import annotations

import time
from typing import Any

from guardproxy.core import JSON

# Chat `finish_reason` -> the Responses `incomplete_details.reason` (absent: the response completed).
INCOMPLETE_REASONS = {"length": "max_output_tokens", "content_filter": "content_filter"}


def response_id(request_id: str) -> str:
    return "resp_" + request_id.removeprefix("gp-")


def message_item(request_id: str, text: str, *, index: int = 0, refusal: bool = False, done: bool = True) -> JSON:
    part = {"type": "refusal", "refusal": text} if refusal else {"type": "output_text", "text": text, "annotations": []}
    return {
        "type": "message",
        "id": f"msg_{request_id.removeprefix('gp-')}_{index}",
        "status": "completed" if done else "in_progress",
        "role": "assistant",
        "content": [part] if done else [],
    }


def function_call_item(request_id: str, index: int, call: JSON, *, done: bool = True) -> JSON:
    function = call.get("function") or {}
    return {
        "type": "function_call",
        "id": f"fc_{request_id.removeprefix('gp-')}_{index}",
        "call_id": str(call.get("id") or f"call_{index}"),
        "name": str(function.get("name") or ""),
        "arguments": str(function.get("arguments") or "") if done else "",
        "status": "completed" if done else "in_progress",
    }


def usage_of(chat_usage: Any) -> JSON | None:
    if not isinstance(chat_usage, dict):
        return None
    prompt, completion = _count(chat_usage.get("prompt_tokens")), _count(chat_usage.get("completion_tokens"))
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": _count(chat_usage.get("total_tokens")) or prompt + completion,
    }


def response_object(
    request_id: str,
    model: str,
    echo: JSON,
    *,
    status: str,
    output: list[JSON],
    incomplete_reason: str | None = None,
    usage: JSON | None = None,
    created_at: float | None = None,
) -> JSON:
    return {
        "id": response_id(request_id),
        "object": "response",
        "created_at": int(created_at if created_at is not None else time.time()),
        "status": status,
        "error": None,
        "incomplete_details": {"reason": incomplete_reason} if incomplete_reason else None,
        "model": model,
        "output": output,
        "parallel_tool_calls": echo.get("parallel_tool_calls") is not False,
        "tool_choice": echo.get("tool_choice") or "auto",
        "tools": echo.get("tools") or [],
        "instructions": echo.get("instructions"),
        "metadata": echo.get("metadata") or {},
        "usage": usage,
    }


def from_chat(request_id: str, model: str, echo: JSON, answer: JSON) -> JSON:
    """The Responses object of a checked, non-streamed chat answer (its first choice: Responses has no `n`)."""
    choices = answer.get("choices") or []
    choice = choices[0] if choices and isinstance(choices[0], dict) else {}
    found = choice.get("message")
    message: JSON = found if isinstance(found, dict) else {}
    output: list[JSON] = []
    content, refusal = message.get("content"), message.get("refusal")
    if isinstance(content, list):  # content parts: their checked texts, in order
        content = "".join(str(p.get("text") or "") for p in content if isinstance(p, dict))
    finish = choice.get("finish_reason")
    if isinstance(content, str) and content:
        # A blocked choice's content is the policy's `refusal_message`: say so in the refusal shape.
        output.append(message_item(request_id, content, refusal=finish == "content_filter"))
    elif isinstance(refusal, str) and refusal:
        output.append(message_item(request_id, refusal, refusal=True))
    for i, call in enumerate(message.get("tool_calls") or []):
        if isinstance(call, dict):
            output.append(function_call_item(request_id, i, call))
    reason = INCOMPLETE_REASONS.get(str(finish))
    return response_object(
        request_id,
        str(answer.get("model") or model),
        echo,
        status="incomplete" if reason else "completed",
        output=output,
        incomplete_reason=reason,
        usage=usage_of(answer.get("usage")),
        created_at=answer.get("created") if isinstance(answer.get("created"), int) else None,
    )


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
