"""Does an answer match the JSON schema its request asked for (`response_format`)?

`{"type": "json_schema", "json_schema": {"schema": ...}}` asks for JSON valid against the schema, `{"type":
"json_object"}` for a JSON object. An upstream that ignores it (or was steered away from it) answers otherwise,
and a client that parses the answer trusts it. This check reports `invalid_json` or `schema_mismatch`;
`proxy.response_schema` decides (flag or block), like `proxy.unscanned` for unreadable parts.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any, ClassVar, Literal

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, best_match

from guardproxy.core import JSON, Context, Detection
from guardproxy.errors import InvalidRequest

_OBJECT: JSON = {"type": "object"}


def requested_schema(request: JSON, *, validate: bool = True) -> JSON | None:
    """The schema a chat request asks the answer to follow, or None. Raises 400 for a schema that is invalid
    (`validate`: the gateway checks once, on input; the answer's check reads it again without)."""
    fmt = request.get("response_format")
    if not isinstance(fmt, dict):
        return None
    if fmt.get("type") == "json_object":
        return _OBJECT
    if fmt.get("type") != "json_schema":
        return None
    spec = fmt.get("json_schema")
    schema = spec.get("schema", {}) if isinstance(spec, dict) else None
    if not isinstance(schema, dict):
        raise InvalidRequest(
            "Invalid value for 'response_format.json_schema.schema': expected an object.",
            param="response_format.json_schema.schema",
        )
    if not validate:
        return schema
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise InvalidRequest(
            f"Invalid value for 'response_format.json_schema.schema': not a valid JSON schema ({exc.message[:200]}).",
            param="response_format.json_schema.schema",
        ) from None
    return schema


class ResponseSchemaCheck:
    """Reads the schema from `ctx.request` (validated on input) and the answer's content as `text`.

    Compiled validators are kept by the schema's canonical JSON (one runtime's worth, bounded): building one
    costs more than validating a typical answer, and an application sends the same schema again and again."""

    name = "response_schema"
    scope: Literal["text", "request"] = "text"
    inline: ClassVar[bool] = True  # InlineDetector

    def __init__(self, max_schemas: int = 256) -> None:
        self._validators: OrderedDict[str, Draft202012Validator] = OrderedDict()
        self._max = max_schemas

    def _validator(self, schema: JSON) -> Draft202012Validator:
        key = json.dumps(schema, sort_keys=True, separators=(",", ":"))
        found = self._validators.get(key)
        if found is None:
            found = self._validators[key] = Draft202012Validator(schema)
            if len(self._validators) > self._max:
                self._validators.popitem(last=False)
        else:
            self._validators.move_to_end(key)
        return found

    async def detect(self, text: str, ctx: Context) -> Detection:
        schema = requested_schema(ctx.request, validate=False)
        if schema is None:
            return Detection(score=0.0)
        try:
            value: Any = json.loads(text)
        except json.JSONDecodeError as exc:
            return Detection(score=1.0, labels=("invalid_json",), explanation=f"not JSON: {exc.msg} at {exc.pos}")
        error = best_match(self._validator(schema).iter_errors(value))
        if error is None:
            return Detection(score=0.0)
        # The path and the failing keyword, not the message: it quotes the answer's values.
        return Detection(
            score=1.0, labels=("schema_mismatch",), explanation=f"{error.json_path}: fails '{error.validator}'"
        )

    async def aclose(self) -> None:
        return None
