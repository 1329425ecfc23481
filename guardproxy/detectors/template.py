"""Request-shape validation over the whole OpenAI chat body (`ctx.request`).

Checks roles, message count, total size and that every system prompt follows one of the
approved templates, where `{name}` stands for any text and everything else is literal.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, ClassVar, Literal

from guardproxy.core import Context, Detection
from guardproxy.detectors.base import DetectorDeps
from guardproxy.detectors.configs import TemplateConfig

_PLACEHOLDER = re.compile(r"\{\w+\}")
_SYSTEM_ROLES = frozenset({"system", "developer"})


def compile_template(template: str) -> re.Pattern[str]:
    """A regex that matches exactly the texts the template allows (surrounding whitespace ignored)."""
    pieces = _PLACEHOLDER.split(template.strip())
    return re.compile(r"[\s\S]*?".join(re.escape(piece) for piece in pieces))


def _message_texts(message: dict[str, Any]) -> Iterator[str]:
    """Every text a message carries: string content, text parts, tool-call arguments."""
    content = message.get("content")
    if isinstance(content, str):
        yield content
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                yield part["text"]
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and isinstance(function.get("arguments"), str):
            yield function["arguments"]


def _matches(templates: tuple[re.Pattern[str], ...], prompt: str) -> bool:
    stripped = prompt.strip()
    return any(template.fullmatch(stripped) for template in templates)


class TemplateDetector:
    scope: Literal["text", "request"] = "request"
    # Pure CPU, microseconds, never awaits: the chain calls it in place instead of as a task.
    inline: ClassVar[bool] = True  # InlineDetector

    def __init__(self, name: str, config: TemplateConfig, deps: DetectorDeps) -> None:
        self.name = name
        self._allowed_roles = frozenset(config.allowed_roles) if config.allowed_roles is not None else None
        self._max_messages = config.max_messages
        self._max_chars = config.max_chars
        self._templates = (
            tuple(compile_template(t) for t in config.system_templates) if config.system_templates is not None else None
        )

    async def detect(self, text: str, ctx: Context) -> Detection:
        raw = ctx.request.get("messages")
        messages = [m for m in raw if isinstance(m, dict)] if isinstance(raw, list) else []
        problems: list[tuple[str, str]] = []
        if self._allowed_roles is not None:
            strangers = sum(1 for m in messages if m.get("role") not in self._allowed_roles)
            if strangers:
                problems.append(("role_not_allowed", f"{strangers} message(s) with a role outside allowed_roles"))
        if self._max_messages is not None and len(messages) > self._max_messages:
            problems.append(("too_many_messages", f"{len(messages)} messages > max_messages {self._max_messages}"))
        if self._max_chars is not None:
            total = sum(len(t) for m in messages for t in _message_texts(m))
            if total > self._max_chars:
                problems.append(("too_long", f"{total} characters > max_chars {self._max_chars}"))
        if self._templates is not None:
            templates = self._templates
            mismatched = sum(
                1
                for m in messages
                if m.get("role") in _SYSTEM_ROLES and not _matches(templates, "".join(_message_texts(m)))
            )
            if mismatched:
                problems.append(("system_prompt_mismatch", f"{mismatched} system prompt(s) match no template"))
        if not problems:
            return Detection(score=0.0)
        return Detection(
            score=1.0,
            labels=tuple(label for label, _ in problems),
            explanation="; ".join(reason for _, reason in problems),
        )

    async def aclose(self) -> None:
        return None
