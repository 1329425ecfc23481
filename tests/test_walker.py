"""Unit tests of the walker: paths, roles, joined declarations and the edit mapping back into the body."""

from __future__ import annotations

import pytest

from guardproxy.core import TextRole
from guardproxy.errors import InvalidRequest
from guardproxy.policies.chain import Edit
from guardproxy.proxy.walker import JoinedSlot, checked_texts, clean_envelope, walk_choice, walk_request


def test_request_paths_and_roles() -> None:
    body = {
        "model": "m",
        "temperature": 0.2,
        "messages": [{"role": "User", "content": "hi", "name": "bob"}],
        "tools": [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}],
        "user": "u1",
    }  # fmt: skip
    walk = walk_request("chat", body)
    found = {(s.path, s.role, s.text) for s in walk.slots}
    assert (".messages[0].content", TextRole.USER, "hi") in found
    assert (".messages[0].name", TextRole.USER, "bob") in found
    assert (".tools[0].function.description", TextRole.TOOL_DEFINITION, "d") in found
    assert (".tools[0].function.parameters.properties.<key>", TextRole.TOOL_DEFINITION, "q") in found
    assert (".user", TextRole.METADATA, "u1") in found
    assert not any(s.text in ("object", "string", "function", "m") for s in walk.slots)  # schema keywords, config
    assert body["messages"][0]["role"] == "user"


def test_unknown_role_is_refused() -> None:
    with pytest.raises(InvalidRequest) as info:
        walk_request("chat", {"model": "m", "messages": [{"role": "narrator", "content": "x"}]})
    assert info.value.param == "messages.0.role"


def test_joined_declaration_maps_edits_back_to_each_string() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "metadata": {"a": "mail bob", "b": "ok"}}
    texts = checked_texts(walk_request("chat", body).slots)
    joined = next(t for t in texts if isinstance(t, JoinedSlot))
    assert joined.text == "a\nmail bob\nb\nok"
    start = joined.text.index("bob")
    # One edit inside a string, one running across the line break into the next key.
    joined.apply([Edit(start, start + 3, "PERSON", "redact"), Edit(start + 3, start + 5, "X", "redact")], None)
    assert body["metadata"] == {"a": "mail [PERSON]", "[X]": "ok"}


def test_answer_rebuilt_without_unknown_envelope_and_stale_logprobs() -> None:
    assert clean_envelope({"id": "c-1", "model": "m", "usage": {"total_tokens": 3}, "debug": "x", "choices": []}) == {
        "id": "c-1",
        "model": "m",
        "usage": {"total_tokens": 3},
    }
    choice = {"index": 0, "message": {"role": "assistant", "content": "Hi"}, "logprobs": {"content": [{"token": "Ho"}]}}
    walk_choice("chat", choice)
    assert "logprobs" not in choice  # tokens that do not spell the checked text are not delivered
