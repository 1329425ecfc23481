"""Every string of a request or an answer that the model or the client will read: one walker.

What the chain checks must be exactly what is forwarded, so input, output, stream and non-stream
paths all take their texts from here (design.md, "Every string, one walker"). Each text comes as
a `Slot` (role, JSON path, text, and a way to write the checked text back in place). Known fields
are walked by their schema; fields this module does not know are walked generically (every
string inside is checked), never forwarded unread. Content the chain cannot read (images, audio,
files, unknown part types) comes back as `Unscanned`, for the policy to decide.

A non-streamed answer is rebuilt from what was checked: token log-probabilities are kept only
when they repeat the checked text exactly, and their `bytes` are recomputed from the tokens.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from guardproxy.core import JSON, TextRole
from guardproxy.errors import InvalidRequest
from guardproxy.policies.chain import Edit
from guardproxy.policies.operators import VaultScope, apply_edits
from guardproxy.proxy.texts import Kind

# Message roles the chat API accepts, lower-cased; the value is the role their texts are checked as.
MESSAGE_ROLES: dict[str, TextRole] = {
    "system": TextRole.SYSTEM,
    "developer": TextRole.DEVELOPER,
    "user": TextRole.USER,
    "assistant": TextRole.ASSISTANT,
    "tool": TextRole.TOOL,
    "function": TextRole.TOOL,
}

# Request fields that configure sampling or the wire format and carry no text the model reads.
_CONFIG_FIELDS = frozenset(
    {
        "model", "stream", "stream_options", "n", "temperature", "top_p", "top_k", "min_p", "max_tokens",
        "max_completion_tokens", "presence_penalty", "frequency_penalty", "repetition_penalty", "logit_bias",
        "logprobs", "top_logprobs", "seed", "stop", "tool_choice", "function_call", "parallel_tool_calls",
        "service_tier", "store", "modalities", "reasoning_effort", "verbosity", "audio", "echo", "best_of",
        "dimensions", "encoding_format",
    }
)  # fmt: skip
# Answer fields that identify rather than say anything; checked only when they do not look like an identifier.
_ENVELOPE_FIELDS = frozenset({"id", "object", "created", "model", "system_fingerprint", "service_tier", "usage"})
_IDENTIFIER = re.compile(r"[A-Za-z0-9._:/+\-]{0,160}")
# Part types whose text the chain reads, and the key holding it.
_TEXT_PARTS = {"text": "text", "input_text": "text", "output_text": "text", "refusal": "refusal"}
# JSON-schema keys whose values are a fixed vocabulary, not text for the model.
_SCHEMA_KEYWORDS = frozenset({"type", "format", "$schema", "$ref"})


@dataclass(slots=True)
class Slot:
    """One string inside the parsed body; `set` writes the checked (maybe edited) text back in place."""

    role: TextRole
    path: str
    text: str
    _write: Callable[[str], None] = field(repr=False)

    def set(self, text: str) -> None:
        if text != self.text:
            self._write(text)
            self.text = text

    def apply(self, edits: Sequence[Edit], scope: VaultScope | None) -> None:
        self.set(apply_edits(self.text, edits, scope))

    def anonymized(self, edits: Sequence[Edit]) -> list[tuple[str, str]]:
        """(label, original) of each `anonymize` edit, as `apply` will ask the scope for them."""
        return [(e.label, self.text[e.start : e.end]) for e in edits if e.action == "anonymize"]


@dataclass(slots=True)
class JoinedSlot:
    """The short strings of one declaration (`tools`, `metadata`...) checked as one text, one string per line.

    Four typical tools are 38 strings: one chain check each cost 8.1x the message texts' p50 with the
    shipped policy, one check per tool 2.7x, one for the whole list 2.2x (bench/bench_walker.py, on
    a machine shared with other jobs). Edits are mapped back to the strings they fall in.
    """

    role: TextRole
    path: str
    parts: list[Slot]

    @property
    def text(self) -> str:
        return "\n".join(p.text for p in self.parts)

    def apply(self, edits: Sequence[Edit], scope: VaultScope | None) -> None:
        for part, mine in self._split(edits):
            part.apply(mine, scope)

    def anonymized(self, edits: Sequence[Edit]) -> list[tuple[str, str]]:
        return [value for part, mine in self._split(edits) for value in part.anonymized(mine)]

    def _split(self, edits: Sequence[Edit]) -> list[tuple[Slot, list[Edit]]]:
        """Each part with the edits (or pieces of edits) that fall in it, in its own offsets."""
        out = []
        start = 0
        for part in self.parts:
            end = start + len(part.text)
            mine = [
                Edit(max(e.start, start) - start, min(e.end, end) - start, e.label, e.action)
                for e in edits
                if e.start < end and e.end > start
            ]
            out.append((part, mine))
            start = end + 1
        return out


CheckedText = Slot | JoinedSlot
# Roles whose strings are short pieces of one declaration: checked per declaration, not per string.
_JOINED_ROLES = frozenset({TextRole.TOOL_DEFINITION, TextRole.METADATA})
_DECLARATION = re.compile(r"^\.[^.\[]+")


def checked_texts(slots: list[Slot]) -> list[CheckedText]:
    """The texts the chain checks: message texts one by one, each declaration's strings joined."""
    out: list[CheckedText] = []
    for slot in slots:
        if slot.role not in _JOINED_ROLES:
            out.append(slot)
            continue
        found = _DECLARATION.match(slot.path)
        item = found.group(0) if found else slot.path
        last = out[-1] if out else None
        if isinstance(last, JoinedSlot) and last.role == slot.role and last.path == item:
            last.parts.append(slot)
        else:
            out.append(JoinedSlot(slot.role, item, [slot]))
    return out


@dataclass(frozen=True, slots=True)
class Unscanned:
    """A part the chain cannot read (an image, audio, a file): recorded, and decided by the policy."""

    path: str
    kind: str
    # An `image_url` part's inner object (`{"url": ..., "detail": ...}`), for the OCR reader to read the URL
    # and to forward a fetched image inline (what was read is what is sent).
    image: JSON | None = field(default=None, compare=False, repr=False)


@dataclass(slots=True)
class Walk:
    slots: list[Slot] = field(default_factory=list)
    unscanned: list[Unscanned] = field(default_factory=list)

    def text(self, container: Any, key: Any, role: TextRole, path: str) -> None:
        value = container[key]
        if isinstance(value, str):
            self.slots.append(Slot(role, path, value, _writer(container, key)))
        else:
            self.any(value, role, path)

    def any(self, value: Any, role: TextRole, path: str) -> None:
        """Fields of no known schema: every string inside is checked (dict keys too, in place)."""
        if isinstance(value, dict):
            for key in list(value):
                self.slots.append(Slot(role, f"{path}.<key>", key, _key_writer(value, key)))
                self.text(value, key, role, f"{path}.{key}")
        elif isinstance(value, list):
            for i in range(len(value)):
                self.text(value, i, role, f"{path}[{i}]")

    def schema(self, value: Any, role: TextRole, path: str) -> None:
        """A JSON schema or tool declaration: descriptions, titles, enums and property names are read by the model."""
        if isinstance(value, dict):
            for key in list(value):
                if key in _SCHEMA_KEYWORDS and isinstance(value[key], str | list):
                    continue
                if path.endswith(".properties"):
                    self.slots.append(Slot(role, f"{path}.<key>", key, _key_writer(value, key)))
                if isinstance(value[key], str):
                    self.text(value, key, role, f"{path}.{key}")
                else:
                    self.schema(value[key], role, f"{path}.{key}")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, str):
                    self.text(value, i, role, f"{path}[{i}]")
                else:
                    self.schema(item, role, f"{path}[{i}]")

    def content(self, holder: JSON, key: str, role: TextRole, path: str) -> None:
        """A `content` field: a string, or a list of parts of which only the text ones can be read."""
        value = holder.get(key)
        if value is None:
            return
        if isinstance(value, str):
            self.text(holder, key, role, f"{path}.{key}")
            return
        if not isinstance(value, list):
            self.any(value, role, f"{path}.{key}")
            return
        for i, part in enumerate(value):
            here = f"{path}.{key}[{i}]"
            if isinstance(part, str):
                self.text(value, i, role, here)
                continue
            kind = part.get("type") if isinstance(part, dict) else None
            text_key = _TEXT_PARTS.get(kind) if isinstance(kind, str) else None
            if text_key is None or not isinstance(part.get(text_key), str):
                image = part.get("image_url") if kind == "image_url" and isinstance(part, dict) else None
                if isinstance(image, dict) and isinstance(image.get("url"), str):
                    self.unscanned.append(Unscanned(here, "image_url", image))
                else:
                    self.unscanned.append(Unscanned(here, str(kind or "unknown")))
                continue
            for other in list(part):
                if other not in (text_key, "type"):
                    self.text(part, other, role, f"{here}.{other}")  # annotations, cache_control...
            self.text(part, text_key, role, f"{here}.{text_key}")


def _writer(container: Any, key: Any) -> Callable[[str], None]:
    def write(text: str) -> None:
        container[key] = text

    return write


def _key_writer(container: JSON, key: str) -> Callable[[str], None]:
    def write(text: str) -> None:
        # Renaming a key keeps the order of the others: rebuild the dict in place.
        items = [(text if k == key else k, v) for k, v in container.items()]
        container.clear()
        container.update(items)

    return write


# ---------------------------------------------------------------- requests


def walk_request(kind: Kind, body: JSON) -> Walk:
    """Every text of a validated request body the upstream will receive, in body order."""
    walk = Walk()
    if kind == "chat":
        _chat_request(walk, body)
    elif kind == "completion":
        walk.content(body, "prompt", TextRole.USER, "")
        if body.get("suffix") is not None:
            walk.text(body, "suffix", TextRole.USER, ".suffix")
    else:
        walk.content(body, "input", TextRole.USER, "")
    for key in body:
        if key not in _CONFIG_FIELDS and key not in _KNOWN_REQUEST_FIELDS[kind]:
            walk.text(body, key, TextRole.METADATA, f".{key}")
    return walk


_KNOWN_REQUEST_FIELDS: dict[Kind, frozenset[str]] = {
    "chat": frozenset({"messages", "tools", "functions", "response_format", "prediction"}),
    "completion": frozenset({"prompt", "suffix"}),
    "embedding": frozenset({"input"}),
    "moderation": frozenset({"input"}),
}


def canonical_role(raw: Any, index: int) -> str:
    """The lower-cased chat role; one the chat API does not define is refused, never forwarded unchecked."""
    role = raw.lower() if isinstance(raw, str) else ""
    if role not in MESSAGE_ROLES:
        allowed = ", ".join(MESSAGE_ROLES)
        raise InvalidRequest(
            f"Invalid value for 'messages.{index}.role': {raw!r} is not one of {allowed}.",
            param=f"messages.{index}.role",
        )
    return role


def _chat_request(walk: Walk, body: JSON) -> None:
    for i, msg in enumerate(body["messages"]):
        msg["role"] = canonical_role(msg.get("role"), i)  # `User` reaches the model as `user`, and is checked so
        role = MESSAGE_ROLES[msg["role"]]
        path = f".messages[{i}]"
        for key in list(msg):
            if key in ("role", "tool_call_id"):
                continue
            if key == "content":
                walk.content(msg, "content", role, path)
            elif key in ("tool_calls", "function_call"):
                _tool_calls(walk, msg, key, f"{path}.{key}")
            elif key == "audio" and isinstance(msg[key], dict) and set(msg[key]) <= {"id"}:
                continue  # a reference to an earlier audio answer, by id
            else:  # name, refusal, and any field this module does not know
                walk.text(msg, key, role, f"{path}.{key}")
    for key in ("tools", "functions", "response_format"):
        if body.get(key) is not None:
            walk.schema(body[key], TextRole.TOOL_DEFINITION, f".{key}")
    if isinstance(body.get("prediction"), dict):
        walk.content(body["prediction"], "content", TextRole.USER, ".prediction")
    elif body.get("prediction") is not None:
        walk.text(body, "prediction", TextRole.USER, ".prediction")


def _tool_calls(walk: Walk, msg: JSON, key: str, path: str) -> None:
    value = msg[key]
    calls = value if isinstance(value, list) else [value]
    for j, call in enumerate(calls):
        here = f"{path}[{j}]" if isinstance(value, list) else path
        if not isinstance(call, dict):
            walk.any(call, TextRole.TOOL_CALL, here)
            continue
        fn = call if key == "function_call" else call.get("function")
        for k, v in call.items():
            if k in ("id", "type", "index") or (k == "function" and fn is v):
                continue
            walk.text(call, k, TextRole.TOOL_CALL, f"{here}.{k}")  # `custom` tool input, unknown fields
        if isinstance(fn, dict) and fn is not call:
            for k in fn:
                walk.text(fn, k, TextRole.TOOL_CALL, f"{here}.function.{k}")


# ---------------------------------------------------------------- answers


def clean_envelope(response: JSON) -> JSON:
    """The answer's own fields outside `choices`, rebuilt: identifiers, numbers and usage pass, the rest is dropped.

    Vendor extensions at the top level (filter results, provider names) are not text the chain has
    checked, so they are not delivered; streamed and non-streamed answers share this rule.
    """
    return {k: v for k, v in response.items() if k != "choices" and k in _ENVELOPE_FIELDS and _harmless(v)}


def _harmless(value: Any) -> bool:
    """An identifier, a number, or a dict of numbers (usage): nothing a detector could find."""
    return (isinstance(value, str) and _IDENTIFIER.fullmatch(value) is not None) or _only_numbers(value)


def _only_numbers(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_only_numbers(v) for v in value.values())
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def walk_choice(kind: Kind, choice: JSON, path: str = "") -> Walk:
    """Every text of one choice of a non-streamed answer."""
    walk = Walk()
    for key in list(choice):
        here = f"{path}.{key}"
        if key == "logprobs" or (key in ("index", "finish_reason") and _harmless(choice[key])):
            continue
        if kind == "completion" and key == "text":
            walk.text(choice, "text", TextRole.ASSISTANT, here)
        elif kind == "chat" and key == "message" and isinstance(choice[key], dict):
            _answer_message(walk, choice[key], here)
        else:
            walk.text(choice, key, TextRole.ASSISTANT, here)
    if choice.get("logprobs") is not None:
        _logprobs(walk, kind, choice, f"{path}.logprobs")
    return walk


def _answer_message(walk: Walk, msg: JSON, path: str) -> None:
    for key in list(msg):
        if key == "role":
            continue
        if key == "content":
            walk.content(msg, "content", TextRole.ASSISTANT, path)
        elif key in ("tool_calls", "function_call"):
            _tool_calls(walk, msg, key, f"{path}.{key}")
        elif key == "audio" and isinstance(msg[key], dict):
            audio = msg[key]
            for k in list(audio):
                if k in ("id", "expires_at"):
                    continue
                if k == "data":
                    walk.unscanned.append(Unscanned(f"{path}.audio.data", "audio"))
                else:
                    walk.text(audio, k, TextRole.ASSISTANT, f"{path}.audio.{k}")
        else:  # refusal, reasoning_content, reasoning, annotations, anything new
            walk.text(msg, key, TextRole.ASSISTANT, f"{path}.{key}")


def _logprobs(walk: Walk, kind: Kind, choice: JSON, path: str) -> None:
    """Log-probabilities are kept only if their tokens repeat the checked text; the alternatives are checked."""

    def drop(_: str) -> None:
        choice.pop("logprobs", None)

    text = _choice_text(kind, choice)
    tokens, alternatives = _tokens(kind, choice["logprobs"])
    if tokens is None or "".join(tokens) != text:
        choice.pop("logprobs", None)  # they would say something the checked text does not
        return
    if kind == "chat":
        _recompute_bytes(choice["logprobs"])
    if alternatives:
        walk.slots.append(Slot(TextRole.ASSISTANT, f"{path}.top_logprobs", "\n".join(alternatives), drop))
    # Any edit to the answer's text makes the tokens repeat the unedited text: drop them then (see `drop_stale`).


def drop_stale_logprobs(kind: Kind, choice: JSON) -> None:
    """After edits: token log-probabilities that no longer spell the answer's text go."""
    logprobs = choice.get("logprobs")
    if logprobs is None:
        return
    tokens, _ = _tokens(kind, logprobs)
    if tokens is None or "".join(tokens) != _choice_text(kind, choice):
        choice.pop("logprobs", None)


def _choice_text(kind: Kind, choice: JSON) -> str:
    if kind == "completion":
        return str(choice.get("text") or "")
    content = (choice.get("message") or {}).get("content")
    return content if isinstance(content, str) else ""


def _tokens(kind: Kind, logprobs: Any) -> tuple[list[str] | None, list[str]]:
    if not isinstance(logprobs, dict):
        return None, []
    if kind == "completion":
        tokens = logprobs.get("tokens")
        top = logprobs.get("top_logprobs") or []
        alternatives = [k for entry in top if isinstance(entry, dict) for k in entry]
    else:
        entries = logprobs.get("content") or []
        if logprobs.get("refusal"):
            return None, []
        tokens = [e.get("token") for e in entries if isinstance(e, dict)]
        alternatives = [
            a.get("token")
            for e in entries
            if isinstance(e, dict)
            for a in e.get("top_logprobs") or []
            if isinstance(a, dict)
        ]
    if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
        return None, []
    return tokens, [a for a in alternatives if isinstance(a, str)]


def _recompute_bytes(logprobs: JSON) -> None:
    for entry in _entries(logprobs.get("content")):
        entry["bytes"] = list(entry["token"].encode())
        for alt in _entries(entry.get("top_logprobs")):
            if isinstance(alt.get("token"), str):
                alt["bytes"] = list(alt["token"].encode())


def _entries(value: Any) -> Iterator[JSON]:
    for item in value or ():
        if isinstance(item, dict):
            yield item


# ---------------------------------------------------------------- MCP (the gateway at /mcp/<server>)


def walk_mcp_tool(tool: JSON, path: str) -> Walk:
    """A tool of a `tools/list` answer: name, title, description, input/output schemas and annotations."""
    walk = Walk()
    walk.schema(tool, TextRole.TOOL_DEFINITION, path)
    return walk


def walk_mcp_arguments(params: JSON) -> Walk:
    """What a `tools/call` sends the server besides the tool's name: its arguments (and any other field)."""
    walk = Walk()
    for key in list(params):
        if key != "name":
            walk.text(params, key, TextRole.TOOL_CALL, f".params.{key}")
    return walk


def walk_mcp_result(result: JSON) -> Walk:
    """A `tools/call` result: text parts and embedded text resources are read; images, audio and links are not."""
    walk = Walk()
    for key in list(result):
        if key == "isError" and isinstance(result[key], bool):
            continue
        content = result[key]
        if key != "content" or not isinstance(content, list):
            walk.text(result, key, TextRole.TOOL, f".result.{key}")  # structuredContent, _meta, anything new
            continue
        for i, part in enumerate(content):
            here = f".result.content[{i}]"
            kind = part.get("type") if isinstance(part, dict) else None
            resource = part.get("resource") if isinstance(part, dict) else None
            readable = kind == "text" and isinstance(part.get("text"), str)
            readable |= kind == "resource" and isinstance(resource, dict) and isinstance(resource.get("text"), str)
            if readable:
                walk.any(part, TextRole.TOOL, here)
            else:
                walk.unscanned.append(Unscanned(here, str(kind or "unknown")))
    return walk


def identifiers_only(value: JSON) -> JSON:
    """The fields of an object that hold only identifiers or numbers (`resultType`, `ttlMs`): nothing to check."""
    return {k: v for k, v in value.items() if _harmless(v)}


def walk_mcp_server_info(result: JSON) -> Walk:
    """An `initialize` / `server/discover` answer: the server's `instructions` and info reach the client's model."""
    walk = Walk()
    for key in list(result):
        if key in ("protocolVersion", "capabilities"):
            continue  # an identifier; capabilities are rebuilt by the gateway
        walk.text(result, key, TextRole.TOOL_DEFINITION, f".result.{key}")
    return walk
