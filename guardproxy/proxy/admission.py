"""Admission control: a request too large to check is refused before any detector sees it.

Model detectors cost time per character (the guard classifier scores a long text in 512-token windows, ~66 ms
each on 2 cores; Presidio runs spaCy over the whole text), so one ~1 MB prompt used to keep the model workers
busy for ~57 s while other clients' steps timed out and failed closed (issue 10, item 1). The limits here are
the policy's `proxy.max_text_chars` (the longest string) and `proxy.max_request_chars` (all strings together),
and a request over either is answered 413 `request_too_large`, like a body over `proxy.max_body_bytes`.

Sizes are measured on the parsed JSON body as a whole (every key and string value, wherever it sits), not on
the texts the chain will check: a string the walker does not know about still costs nothing to refuse, and the
limit does not depend on which fields a given endpoint carries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from guardproxy.errors import BodyTooLarge
from guardproxy.policies.schema import ProxySettings


@dataclass(frozen=True, slots=True)
class BodySize:
    """Characters in a parsed JSON body: all strings (keys included) together, and the longest one."""

    total_chars: int
    longest_chars: int


def measure(body: Any) -> BodySize:
    """Walks the body with an explicit stack, so a deeply nested body cannot exhaust the recursion limit."""
    total = longest = 0
    stack: list[Any] = [body]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            total += len(value)
            longest = max(longest, len(value))
        elif isinstance(value, dict):
            for key, item in value.items():
                total += len(key)
                longest = max(longest, len(key))
                stack.append(item)
        elif isinstance(value, list):
            stack.extend(value)
    return BodySize(total, longest)


def admit(body: Any, limits: ProxySettings) -> None:
    """Raises `BodyTooLarge` (413) when the body is over the policy's character limits; cheap (one pass)."""
    size = measure(body)
    if size.longest_chars > limits.max_text_chars:
        raise BodyTooLarge(
            f"One text of this request has {size.longest_chars} characters; this proxy checks at most "
            f"{limits.max_text_chars} characters per text (proxy.max_text_chars). Split or shorten it.",
        )
    if size.total_chars > limits.max_request_chars:
        raise BodyTooLarge(
            f"The texts of this request have {size.total_chars} characters together; this proxy checks at most "
            f"{limits.max_request_chars} characters per request (proxy.max_request_chars).",
        )
