"""Admission control: a request too large to check is refused before any detector sees it.

Model detectors cost time per character (the guard classifier scores a long text in 512-token windows, ~66 ms
each on 2 cores; Presidio runs spaCy over the whole text), so one ~1 MB prompt used to keep the model workers
busy for ~57 s while other clients' steps timed out and failed closed (issue 10, item 1). The limits here are
the policy's `proxy.max_text_chars` (the longest string) and `proxy.max_request_chars` (all strings together),
and a request over either is answered 413 `request_too_large`, like a body over `proxy.max_body_bytes`.

Sizes are measured on the parsed JSON body as a whole (every key and string value, wherever it sits), not on
the texts the chain will check: a string the walker does not know about still costs nothing to refuse, and the
limit does not depend on which fields a given endpoint carries. Binary payloads are the one exception: a `data:`
URL (an inline image or file) and the base64 `data` / `file_data` of audio and file parts are not text any
detector reads, and a single photo is larger than the text limit; `proxy.max_body_bytes` bounds them.
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


# Where OpenAI requests carry binary payloads, as (the part's key, the field): `image_url.url` (when a data URL),
# `input_audio.data`, `file.file_data`. Only these exact places: a `data` key elsewhere (say in `metadata`) may be
# read as text, and a message's content is always text, whatever it starts with.
BINARY_FIELDS = frozenset({("image_url", "url"), ("input_audio", "data"), ("file", "file_data")})


def measure(body: Any) -> BodySize:
    """Walks the body with an explicit stack, so a deeply nested body cannot exhaust the recursion limit."""
    total = longest = 0
    stack: list[tuple[str, Any]] = [("", body)]
    while stack:
        parent, value = stack.pop()
        if isinstance(value, str):
            total += len(value)
            longest = max(longest, len(value))
        elif isinstance(value, dict):
            for key, item in value.items():
                total += len(key)
                longest = max(longest, len(key))
                if not _binary_payload(parent, key, item):
                    stack.append((key, item))
        elif isinstance(value, list):
            stack.extend((parent, item) for item in value)
    return BodySize(total, longest)


def _binary_payload(parent: str, key: str, value: Any) -> bool:
    if not isinstance(value, str) or (parent, key) not in BINARY_FIELDS:
        return False
    return key != "url" or value.startswith("data:")


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
