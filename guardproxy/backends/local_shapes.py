"""Answers, stream chunks and embeddings of the in-process models, in exactly the shapes OpenAI (and so the
`openai` backend) use."""

from __future__ import annotations

import base64
import struct
import time
import uuid
from collections.abc import Sequence
from typing import Any

from guardproxy.core import JSON


def usage(prompt_tokens: int, completion_tokens: int) -> JSON:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


class Shaper:
    """One answer's id, time and model name, and the OpenAI objects built from them."""

    def __init__(self, model: str, *, chat: bool, include_usage: bool = False) -> None:
        self.chat = chat
        self.include_usage = include_usage
        prefix, self.object = ("chatcmpl", "chat.completion") if chat else ("cmpl", "text_completion")
        self.id, self.created, self.model = f"{prefix}-{uuid.uuid4().hex}", int(time.time()), model

    def response(self, text: str, finish: str, token_usage: JSON, logprobs: JSON | None = None) -> JSON:
        choice: JSON
        if self.chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": text}}
        else:
            choice = {"index": 0, "text": text}
        choice.update(logprobs=logprobs, finish_reason=finish)
        return {**self._head(self.object), "choices": [choice], "usage": token_usage}

    def chunk(self, text: str | None, finish: str | None = None, logprobs: JSON | None = None) -> JSON:
        """A content chunk (`text` None: the opening role chunk of a chat stream)."""
        choice: JSON
        if self.chat:
            delta: JSON = {"role": "assistant", "content": ""} if text is None else {}
            if text:
                delta["content"] = text
            choice = {"index": 0, "delta": delta}
        else:
            choice = {"index": 0, "text": text or ""}
        choice.update(logprobs=logprobs, finish_reason=finish)
        chunk: JSON = {**self._head(self._chunk_object), "choices": [choice]}
        if self.include_usage:
            chunk["usage"] = None
        return chunk

    def usage_chunk(self, token_usage: JSON) -> JSON:
        return {**self._head(self._chunk_object), "choices": [], "usage": token_usage}

    def _head(self, kind: str) -> JSON:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}

    @property
    def _chunk_object(self) -> str:
        return "chat.completion.chunk" if self.chat else "text_completion"


def embeddings_response(model: str, vectors: Sequence[Sequence[float]], tokens: int, encoding: str) -> JSON:
    def encode(vector: Sequence[float]) -> Any:
        if encoding == "base64":
            return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        return [float(v) for v in vector]

    data = [{"object": "embedding", "index": i, "embedding": encode(v)} for i, v in enumerate(vectors)]
    return {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
