"""YAML files validated by pydantic, with errors that point at the line to fix.

The YAML is composed into nodes (not loaded straight to Python) so that every value keeps its line and column;
pydantic's error locations are then mapped back to those nodes. Every error in the file is reported at once,
one `file:line:col: field.path: problem; allowed: ...` per line. Shared by the policy loader
(`policies/loader.py`) and the trainer's config files (`trainer/config_load.py`).
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

YamlPath = tuple[str | int, ...]

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_STR_TAG = "tag:yaml.org,2002:str"

# The `models[0].backend: ...` prefix of cross-field errors (a model validator's, a dataclass __post_init__'s).
_MESSAGE_PATH = re.compile(r"^([A-Za-z_]\w*(?:\[\d+\]|\.[A-Za-z_][\w-]*)*): ")
_BOUNDS = {
    "greater_than_equal": ("ge", ">="),
    "greater_than": ("gt", ">"),
    "less_than_equal": ("le", "<="),
    "less_than": ("lt", "<"),
}


class YamlTree:
    """Turns composed YAML nodes into plain data, remembering which node each path came from.

    `root` is the pydantic model (or pydantic dataclass) the data is validated as: `report_validation` maps
    its error locations back to the nodes. Subclasses may rewrite string scalars (`_text`, e.g. the policy's
    `${VAR}` interpolation) and mark paths whose value is unknown (`unknown_values`), whose validation errors
    are then not reported (the reason the value is unknown is the error worth reading).
    """

    def __init__(
        self, source: str, root: Any, *, root_name: str = "config", section_kinds: Mapping[str, str] | None = None
    ) -> None:
        self.source = source
        self.root = root
        self.root_name = root_name  # names the whole file in an error that has no field path
        self.section_kinds = dict(section_kinds or {})
        self.nodes: dict[YamlPath, tuple[yaml.Node | None, yaml.Node]] = {}
        self.problems: list[tuple[int, int, str]] = []
        self.unknown_values: set[YamlPath] = set()
        # Top-level fields whose value came from elsewhere (the command line): no line of the file to point at.
        self.not_from_file: set[str] = set()
        self._open: set[int] = set()
        self._scalars = yaml.constructor.SafeConstructor()

    def build(self, node: yaml.Node, path: YamlPath, key: yaml.Node | None) -> Any:
        self.nodes[path] = (key, node)
        if isinstance(node, yaml.ScalarNode):
            if node.tag == _STR_TAG:
                return self._text(node, path)
            return self._scalars.construct_object(node)
        if id(node) in self._open:
            self.report(node, f"{dotted(path)}: an alias refers to its own parent (recursive structure)")
            return None
        self._open.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode) and node.tag == _SEQ_TAG:
                return [self.build(item, (*path, i), None) for i, item in enumerate(node.value)]
            if isinstance(node, yaml.MappingNode) and node.tag == _MAP_TAG:
                return self._build_mapping(node, path)
            self.report(node, f"{dotted(path)}: unsupported YAML tag {node.tag!r}")
            return None
        finally:
            self._open.discard(id(node))

    def _build_mapping(self, node: yaml.MappingNode, path: YamlPath) -> dict[str, Any]:
        first_seen: dict[str, yaml.Node] = {}
        for key, _ in node.value:
            if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                if key.value in first_seen:
                    line = first_seen[key.value].start_mark.line + 1
                    self.report(key, f"{dotted((*path, key.value))}: duplicate key (first defined on line {line})")
                first_seen.setdefault(key.value, key)
        # Merge keys (`<<: *anchor`) expand in place; explicit keys after them win, as in YAML.
        self._scalars.flatten_mapping(node)
        winners: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                self.report(key, f"{dotted(path)}: mapping keys must be plain names, not lists or mappings")
                continue
            # Keys stay text: keys are names, and `yes:` or `1:` must not turn into True or 1.
            winners.pop(key.value, None)
            winners[key.value] = (key, value)
        return {name: self.build(value, (*path, name), key) for name, (key, value) in winners.items()}

    def _text(self, node: yaml.ScalarNode, path: YamlPath) -> str:
        """A string scalar's value; the policy loader interpolates `${VAR}` here."""
        text: str = node.value
        return text

    def report(self, node: yaml.Node | None, text: str) -> None:
        if node is None:
            self.problems.append((0, 0, f"{self.source}: {text}"))
            return
        line, col = node.start_mark.line + 1, node.start_mark.column + 1
        self.problems.append((line, col, f"{self.source}:{line}:{col}: {text}"))

    def report_at(self, path: YamlPath, text: str) -> None:
        """A problem with the value at `path` (or its nearest recorded parent): `file:line:col: path: text`."""
        self.report(self._value_node(path), f"{dotted(path)}: {text}")

    def message(self) -> str:
        return "\n".join(text for *_, text in sorted(set(self.problems)))

    def report_validation(self, err: ErrorDetails) -> None:
        path, node_type = walk(err["loc"], self.root)
        if path in self.unknown_values:
            return  # the value is unknown; the missing variable is the error worth reading
        kind = err["type"]
        if kind in ("extra_forbidden", "unexpected_keyword_argument"):  # models / pydantic dataclasses
            _, parent_type = walk(err["loc"][:-1], self.root)
            allowed = list(_fields(_unwrap(parent_type)) or {})
            name = str(path[-1])
            text = f"extra field {name!r} not allowed; allowed fields: {', '.join(allowed)}{_suggest(name, allowed)}"
            self.report(self._key_node(path), f"{dotted(path)}: {text}")
        elif kind == "missing":
            where = f"{dotted(path[:-1])}: " if path[:-1] else ""
            self.report(self._value_node(path[:-1]), f"{where}missing required field {path[-1]!r}")
        elif kind in ("union_tag_invalid", "union_tag_not_found"):
            self._report_tag(err, path, node_type)
        elif kind == "literal_error":
            allowed = [str(v) for v in get_args(_unwrap(node_type))] or [str(err.get("ctx", {}).get("expected"))]
            shown = _show(err["input"])
            text = f"{shown} is not allowed; allowed: {', '.join(allowed)}{_suggest(err['input'], allowed)}"
            self.report(self._value_node(path), f"{dotted(path)}: {text}")
        elif kind == "value_error" and not path:
            self._report_cross_reference(str(err.get("ctx", {}).get("error", err["msg"])))
        elif kind in _BOUNDS:
            bound, symbol = _BOUNDS[kind]
            limit = err.get("ctx", {}).get(bound)
            self.report(self._value_node(path), f"{dotted(path)}: must be {symbol} {limit}, got {_show(err['input'])}")
        elif kind == "string_pattern_mismatch":
            pattern = err.get("ctx", {}).get("pattern")
            text = f"{_show(err['input'])} does not have the required form (pattern {pattern})"
            self.report(self._value_node(path), f"{dotted(path)}: {text}")
        elif kind == "too_short":
            least = err.get("ctx", {}).get("min_length")
            self.report(self._value_node(path), f"{dotted(path)}: must have at least {least} item(s)")
        elif kind.endswith(("_type", "_parsing")) or kind == "int_from_float":
            text = f"expected {_expected(node_type)}, got {_show(err['input'])}"
            self.report(self._value_node(path), f"{dotted(path)}: {text}")
        else:
            text = f"{err['msg']}, got {_show(err['input'])}"
            self.report(self._value_node(path), f"{dotted(path) or self.root_name}: {text}")

    def _report_tag(self, err: ErrorDetails, path: YamlPath, union_type: Any) -> None:
        discriminator = str(err.get("ctx", {}).get("discriminator", "type")).strip("'")
        tags = list(_union_members(union_type) or {})
        if discriminator == "type":
            tags.sort()  # types are a registry, read alphabetically; actions keep their schema order
        field = (*path, discriminator)
        if err["type"] == "union_tag_not_found":
            text = f"missing field {discriminator!r}; allowed: {', '.join(tags)}"
            self.report(self._value_node(path), f"{dotted(path)}: {text}")
            return
        given = err["input"].get(discriminator) if isinstance(err["input"], dict) else err.get("ctx", {}).get("tag")
        if discriminator == "type":
            kind = self.section_kinds.get(str(path[0]), "") if path else ""
            text = f"unknown {kind + ' ' if kind else ''}type {_show(given)}; allowed: {', '.join(tags)}"
        else:
            text = f"{_show(given)} is not allowed; allowed: {', '.join(tags)}"
        self.report(self._value_node(field), f"{dotted(field)}: {text}{_suggest(given, tags)}")

    def _report_cross_reference(self, text: str) -> None:
        match = _MESSAGE_PATH.match(text)
        path: YamlPath = ()
        if match:
            parts = re.findall(r"\[(\d+)\]|([A-Za-z_][\w-]*)", match.group(1))
            path = tuple(int(index) if index else name for index, name in parts)
        self.report(self._value_node(path) if path else None, text)

    def _value_node(self, path: YamlPath) -> yaml.Node | None:
        # The nearest recorded ancestor: a missing field points at the mapping that lacks it.
        if path and path[0] in self.not_from_file:
            return None
        for end in range(len(path), -1, -1):
            if path[:end] in self.nodes:
                return self.nodes[path[:end]][1]
        return None

    def _key_node(self, path: YamlPath) -> yaml.Node | None:
        key, _ = self.nodes.get(path, (None, None))
        return key or self._value_node(path)


def walk(loc: tuple[int | str, ...], root: Any) -> tuple[YamlPath, Any]:
    """Map a pydantic error location to the YAML path (tags of discriminated unions removed) and its type."""
    node_type: Any = root
    path: list[str | int] = []
    for item in loc:
        members = _union_members(node_type)
        if members is not None and item in members:
            node_type = members[item]
            continue
        node_type = _unwrap(node_type)
        fields = _fields(node_type)
        if fields is not None:
            field = fields.get(item) if isinstance(item, str) else None
            node_type = field.annotation if field else None
        elif get_origin(node_type) in (dict, list):
            node_type = get_args(node_type)[-1]
        else:
            node_type = None
        path.append(item)
    return tuple(path), node_type


def _fields(node_type: Any) -> dict[str, FieldInfo] | None:
    """The fields of a pydantic model or pydantic dataclass, else None."""
    if isinstance(node_type, type) and issubclass(node_type, BaseModel):
        return dict(node_type.model_fields)
    fields = getattr(node_type, "__pydantic_fields__", None) if isinstance(node_type, type) else None
    return dict(fields) if isinstance(fields, dict) else None


def _union_members(node_type: Any) -> dict[str, Any] | None:
    """Tag -> model of an `Annotated[Union[...], Field(discriminator=...)]`, else None."""
    if get_origin(node_type) is not Annotated:
        return None
    base, *metadata = get_args(node_type)
    discriminator = next((m.discriminator for m in metadata if isinstance(m, FieldInfo) and m.discriminator), None)
    if not isinstance(discriminator, str):
        return None
    models = get_args(base) if get_origin(base) in (Union, types.UnionType) else (base,)
    members: dict[str, Any] = {}
    for model in models:
        for tag in get_args(model.model_fields[discriminator].annotation):
            members[tag] = model
    return members


def _unwrap(node_type: Any) -> Any:
    """Strip Annotated and Optional to the type that says what a value must be."""
    while True:
        if get_origin(node_type) is Annotated:
            node_type = get_args(node_type)[0]
        elif get_origin(node_type) in (Union, types.UnionType):
            options = [arg for arg in get_args(node_type) if arg is not type(None)]
            if len(options) != 1:
                return node_type
            node_type = options[0]
        else:
            return node_type


def _expected(node_type: Any) -> str:
    node_type = _unwrap(node_type)
    origin = get_origin(node_type) or node_type
    if origin is Literal:
        return "one of " + ", ".join(str(v) for v in get_args(node_type))
    names: dict[Any, str] = {
        bool: "true or false",
        int: "a whole number",
        float: "a number",
        str: "a string (quote it)",
        list: "a list",
        dict: "a mapping",
    }
    if origin in names:
        return names[origin]
    if _fields(origin) is not None or origin in (Union, types.UnionType):
        return "a mapping"
    return str(node_type)


def _show(value: Any) -> str:
    if value is None:
        return "an empty value (null)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _suggest(given: object, allowed: list[str]) -> str:
    close = difflib.get_close_matches(given, allowed, n=1) if isinstance(given, str) else []
    return f" (did you mean {close[0]!r}?)" if close else ""


def dotted(path: YamlPath) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z0-9_-]+", part):
            text += f".{part}" if text else part
        else:
            text += f"[{part!r}]"
    return text


def syntax_message(source: str, exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
    context = ""
    if exc.context and exc.context_mark:
        context = f" ({exc.context} on line {exc.context_mark.line + 1})"
    return f"{where}: YAML syntax error: {exc.problem or exc.context}{context}"
