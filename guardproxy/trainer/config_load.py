"""One loader for the trainer's YAML configs (classifier, dataset, sidecar, sft/dpo).

The configs are trl-style pydantic dataclasses (help text in `field(metadata={"help": ...})`, attribute access
as before); pydantic checks every value's type, and errors name the place to fix exactly as the policy loader's
do: `file:line:col: field.path: problem`, every problem of the file at once (`guardproxy/config_loading.py`).

The one rule for relative paths (fields marked `metadata={"path": True}`):
- a relative path written in a config file is resolved against the directory of that file;
- a path given on the command line (an override) is resolved against the working directory;
- URLs (`scheme://...`) and `package:<module>` references are left as they are;
- resolved paths are stored absolute, so a record (manifest, model card, report) names the file that was used
  whatever the working directory of a later reader.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import ConfigDict, TypeAdapter, ValidationError

from guardproxy.config_loading import YamlTree, syntax_message

T = TypeVar("T")
PATH = "path"  # the metadata key that marks a path field (a string, or a list of strings)
# Every trainer config dataclass: `@pydantic.dataclasses.dataclass(config=TRAINER_CONFIG)`. Unknown keys are
# errors (a typo must not silently fall back to a default).
TRAINER_CONFIG = ConfigDict(extra="forbid")


class ConfigError(ValueError):
    """A trainer config file is not valid; the message names file, line, column and field."""


def resolve_path(value: str, base: Path) -> str:
    """The rule above for one path written in a file whose directory is `base`."""
    if "://" in value or value.startswith("package:") or Path(value).is_absolute():
        return value
    return str((base / value).resolve())


def resolve_paths(cls: type[Any], data: dict[str, Any], base: Path, skip: frozenset[str] = frozenset()) -> None:
    """Resolve, in place, the path fields of `data` (the raw mapping for `cls`), nested configs included."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        value = data.get(f.name)
        if f.name in skip or value is None:
            continue
        if f.metadata.get(PATH):
            if isinstance(value, str):
                data[f.name] = resolve_path(value, base)
            elif isinstance(value, list):
                data[f.name] = [resolve_path(v, base) if isinstance(v, str) else v for v in value]
            continue
        nested = _nested_config(hints[f.name])
        if nested is None:
            continue
        if isinstance(value, dict):
            resolve_paths(nested, value, base)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    resolve_paths(nested, item, base)


def _nested_config(tp: Any) -> type[Any] | None:
    """The config dataclass a field holds (directly, in a list, or optional), else None."""
    for candidate in (tp, *typing.get_args(tp)):
        if isinstance(candidate, type) and dataclasses.is_dataclass(candidate):
            return candidate
        inner = typing.get_args(candidate)
        if typing.get_origin(candidate) is list and inner and dataclasses.is_dataclass(inner[0]):
            return typing.cast(type[Any], inner[0])
    return None


Prepare = Callable[[dict[str, Any], Path, frozenset[str]], None]


def load_yaml_config(
    cls: type[T],
    path: str | Path,
    overrides: Mapping[str, Any] | None = None,
    *,
    prepare: Prepare | None = None,
    finish: Callable[[T, YamlTree], T] | None = None,
) -> T:
    """Read, resolve and validate one config file; raises ConfigError with every problem at once.

    `overrides` (command-line values) replace top-level fields and keep their paths as given. `prepare(data,
    base, overridden)` may adjust the raw mapping after path resolution (e.g. apply a policy file);
    `finish(config, tree)` may check what needs the validated config and report through `tree`.
    """
    source = str(path)
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{source}: config file not found (resolved to {Path(path).resolve()})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{source}: cannot read config file: {exc}") from None
    tree = YamlTree(source, cls, root_name=cls.__name__)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = tree.build(root, (), None) if root is not None else {}
    except yaml.MarkedYAMLError as exc:
        raise ConfigError(syntax_message(source, exc)) from None
    if not isinstance(data, dict):
        tree.report(root, "expected a mapping of config fields at the top level")
        raise ConfigError(tree.message())
    overridden = frozenset(overrides or {})
    data.update(overrides or {})
    tree.not_from_file.update(overridden)
    base = Path(path).parent
    resolve_paths(cls, data, base, overridden)
    if prepare is not None:
        prepare(data, base, overridden)
    config = validate_config(cls, data, tree)
    if finish is not None and not tree.problems:
        config = finish(config, tree)
    if tree.problems:
        raise ConfigError(tree.message())
    return config


def validate_config(cls: type[T], data: Mapping[str, Any], tree: YamlTree) -> T:
    """`cls` from `data`; pydantic's errors are reported through `tree` (at their YAML nodes when it has them)."""
    try:
        return TypeAdapter(cls).validate_python(dict(data))
    except ValidationError as exc:
        for err in exc.errors():
            tree.report_validation(err)
        raise ConfigError(tree.message()) from None


def config_from_mapping(cls: type[T], data: Mapping[str, Any], where: str) -> T:
    """`cls` from a mapping that has no file of its own (e.g. inline in another config): `where: field: problem`."""
    return validate_config(cls, data, YamlTree(where, cls, root_name=cls.__name__))
