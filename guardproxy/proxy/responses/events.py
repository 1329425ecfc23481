"""Checked chat chunks as the Responses API's typed event stream.

The stream relay (`relay.py`) guards the upstream's chat stream as for `/v1/chat/completions` and
hands each released chunk here; this turns it into `response.output_text.delta`, the
function-call events and, at the end, `response.completed` — or `response.incomplete` with
`incomplete_details.reason: "content_filter"` when the output chain blocked the rest. Only what
the relay released (text the output chain passed, tool calls checked whole) becomes an event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from guardproxy.core import JSON
from guardproxy.proxy.responses.answer import (
    INCOMPLETE_REASONS,
    function_call_item,
    message_item,
    response_object,
    usage_of,
)

_encode = msgspec.json.Encoder().encode


@dataclass(slots=True)
class ResponsesStreamFormat:
    """One Responses stream's state: the items opened so far and the next sequence number (relay.StreamFormat)."""

    request_id: str
    model: str
    echo: JSON
    _sequence: int = 0
    _started: bool = False
    _text: str | None = None  # the open message item's text; None while no message item is open
    _output: list[JSON] = field(default_factory=list)
    _calls: int = 0
    _reason: str | None = None
    _usage: JSON | None = None

    def chunk(self, chunk: JSON) -> bytes:
        out = self._start()
        if isinstance(chunk.get("model"), str):
            self.model = chunk["model"]
        if chunk.get("usage") is not None:
            self._usage = usage_of(chunk["usage"])
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue  # Responses has no `n`; the translated request asks for one choice
            delta: JSON = choice.get("delta") or {}
            text = delta.get("content")
            if isinstance(text, str) and text:
                out += self._text_delta(text)
            for call in delta.get("tool_calls") or ():
                out += self._function_call(call)
            finish = choice.get("finish_reason")
            if finish is not None:
                self._reason = INCOMPLETE_REASONS.get(str(finish))
        return out

    def done(self) -> bytes:
        out = self._start() + self._close_message()
        status = "incomplete" if self._reason else "completed"
        response = self._response(status)
        return out + self._event(f"response.{status}", {"response": response})

    def error(self, body: JSON) -> bytes:
        """A failure after the stream began: the `error` event (the SDK raises `APIError`), then `response.failed`."""
        err: JSON = body.get("error") or {}
        out = self._start() + self._close_message()
        fields = {"code": err.get("code"), "message": err.get("message"), "param": err.get("param")}
        out += self._event("error", fields)
        failed = self._response("failed")
        failed["error"] = {"code": str(err.get("code") or "server_error"), "message": str(err.get("message") or "")}
        return out + self._event("response.failed", {"response": failed})

    # ------------------------------------------------------------ events

    def _start(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        response = self._response("in_progress")
        return self._event("response.created", {"response": response}) + self._event(
            "response.in_progress", {"response": response}
        )

    def _text_delta(self, text: str) -> bytes:
        out = b""
        if self._text is None:
            self._text = ""
            item = message_item(self.request_id, "", index=len(self._output), done=False)
            out += self._event("response.output_item.added", {"output_index": len(self._output), "item": item})
            part = {"type": "output_text", "text": "", "annotations": []}
            out += self._event("response.content_part.added", {**self._where(), "part": part})
        self._text += text
        return out + self._event("response.output_text.delta", {**self._where(), "delta": text, "logprobs": []})

    def _close_message(self) -> bytes:
        if self._text is None:
            return b""
        text, self._text = self._text, None
        where = self._where()
        item = message_item(self.request_id, text, index=where["output_index"])
        if self._reason:
            item["status"] = "incomplete"
        out = self._event("response.output_text.done", {**where, "text": text, "logprobs": []})
        out += self._event("response.content_part.done", {**where, "part": item["content"][0]})
        out += self._event("response.output_item.done", {"output_index": where["output_index"], "item": item})
        self._output.append(item)
        return out

    def _function_call(self, call: Any) -> bytes:
        """The relay releases a tool call whole, after the output chain checked its name and arguments."""
        if not isinstance(call, dict):
            return b""
        out = self._close_message()
        index = len(self._output)
        item = function_call_item(self.request_id, self._calls, call)
        self._calls += 1
        opened = {**item, "arguments": "", "status": "in_progress"}
        out += self._event("response.output_item.added", {"output_index": index, "item": opened})
        where = {"item_id": item["id"], "output_index": index}
        out += self._event("response.function_call_arguments.delta", {**where, "delta": item["arguments"]})
        out += self._event(
            "response.function_call_arguments.done", {**where, "name": item["name"], "arguments": item["arguments"]}
        )
        out += self._event("response.output_item.done", {"output_index": index, "item": item})
        self._output.append(item)
        return out

    def _where(self) -> JSON:
        index = len(self._output)
        return {
            "item_id": message_item(self.request_id, "", index=index)["id"],
            "output_index": index,
            "content_index": 0,
        }

    def _response(self, status: str) -> JSON:
        return response_object(
            self.request_id,
            self.model,
            self.echo,
            status=status,
            output=list(self._output),
            incomplete_reason=self._reason if status == "incomplete" else None,
            usage=self._usage if status in ("completed", "incomplete") else None,
        )

    def _event(self, kind: str, fields: JSON) -> bytes:
        payload = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + _encode(payload) + b"\n\n"
