"""Property: every string of a Responses request reaches the one walker after translation, or the request is refused.

The Responses API is served by translating the request to a chat body before any check
(`guardproxy/proxy/responses/request.py`), so the walker's chat shapes must see every text the
client sent: instructions, message parts, function calls and their outputs, tool definitions
(descriptions, parameter descriptions), the JSON schema of `text.format`, metadata and user.
Only identifiers the chat walker also leaves alone are exempt (item types, roles, call ids, the model).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guardproxy.errors import InvalidRequest
from guardproxy.proxy.responses.request import to_chat
from guardproxy.proxy.walker import walk_request

# Values under these keys are identifiers or enum tags, not text: the chat walker skips their chat counterparts too.
_IDENTIFIER_KEYS = frozenset({"type", "role", "model", "call_id", "id", "status", "detail", "effort", "verbosity"})

text = st.text(min_size=1, max_size=12)
input_text = st.fixed_dictionaries({"type": st.just("input_text"), "text": text})
message = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["user", "system", "developer", "assistant"]),
        "content": text | st.lists(input_text, min_size=1, max_size=3),
    },
    optional={"type": st.just("message")},
)
assistant_output = st.fixed_dictionaries(
    {
        "role": st.just("assistant"),
        "content": st.lists(
            st.fixed_dictionaries({"type": st.just("output_text"), "text": text, "annotations": st.just([])}),
            min_size=1,
            max_size=2,
        ),
    }
)
function_call = st.fixed_dictionaries(
    {"type": st.just("function_call"), "call_id": st.just("call_1"), "name": text, "arguments": text}
)
function_output = st.fixed_dictionaries(
    {
        "type": st.just("function_call_output"),
        "call_id": st.just("call_1"),
        "output": text | st.lists(input_text, min_size=1, max_size=2),
    }
)
schema = st.fixed_dictionaries(
    {
        "type": st.just("object"),
        "properties": st.dictionaries(
            text, st.fixed_dictionaries({"type": st.just("string"), "description": text}), max_size=3
        ),
    }
)
tool = st.fixed_dictionaries(
    {"type": st.just("function"), "name": text, "description": text, "parameters": schema},
    optional={"strict": st.booleans()},
)
body = st.fixed_dictionaries(
    {
        "model": st.just("gpt-4o-mini"),
        "input": text | st.lists(message | assistant_output | function_call | function_output, min_size=1, max_size=6),
    },
    optional={
        "instructions": text,
        "tools": st.lists(tool, max_size=3),
        "metadata": st.dictionaries(text, text, max_size=3),
        "user": text,
        "text": st.fixed_dictionaries(
            {"format": st.fixed_dictionaries({"type": st.just("json_schema"), "name": text, "schema": schema})}
        ),
        "stream": st.booleans(),
    },
)  # fmt: skip


def _strings(value: Any, key: str | None = None) -> list[str]:
    """Every string of a JSON value (dict keys included), except identifier fields."""
    if isinstance(value, str):
        return [] if key in _IDENTIFIER_KEYS else [value]
    if isinstance(value, dict):
        found = []
        for k, v in value.items():
            if k not in _IDENTIFIER_KEYS or not isinstance(v, str):
                found.extend(_strings(v, k))
            if key == "properties" or key == "metadata":
                found.append(k)  # property names and metadata keys are read too
        return found
    if isinstance(value, list):
        return [s for item in value for s in _strings(item, key)]
    return []


@settings(max_examples=150, deadline=None)
@given(body)
def test_every_string_of_a_responses_request_is_walked(request: dict[str, Any]) -> None:
    expected = _strings(request)
    try:
        chat = to_chat(request).chat
    except InvalidRequest:
        pytest.fail("a body of only supported shapes was refused")
    walked = [slot.text for slot in walk_request("chat", chat).slots]
    missing = [s for s in expected if s not in walked]
    assert not missing, (missing, walked)


@pytest.mark.parametrize(
    "extra",
    [
        {"previous_response_id": "resp_1"},
        {"prompt": {"id": "pmpt_1"}},
        {"conversation": "conv_1"},
        {"tools": [{"type": "web_search"}]},
        {"input": [{"type": "item_reference", "id": "msg_1"}]},
        {"input": [{"role": "user", "content": "hi", "note": "unread"}]},
        {"text": {"format": {"type": "json_schema", "name": "x", "schema": {}}, "novel": "x"}},
    ],
)
def test_a_shape_the_translation_does_not_know_is_refused(extra: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest):
        to_chat({"model": "gpt-4o-mini", "input": "hi", **extra})
