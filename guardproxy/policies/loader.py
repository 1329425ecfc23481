"""Load policy.yaml into a validated `Policy`, with errors that point at the line to fix.

The line-and-column machinery is `guardproxy/config_loading.py` (shared with the trainer's configs); this
module adds what only the policy has: `${VAR}` interpolation, the end marker, the fingerprint.
Every error in the file is reported at once, one `file:line:col: field.path: problem; allowed: ...` per line.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

import yaml
from pydantic import ValidationError

from guardproxy.config_loading import YamlPath, YamlTree, dotted, syntax_message
from guardproxy.errors import PolicyInvalid
from guardproxy.policies.schema import Policy

# `$${` first so that an escaped reference is never read as a reference.
_REFERENCE = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_VARIABLE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)
_SECTION_KIND = {"detectors": "detector", "backends": "backend"}

# Optional last line of a policy file. A file that was cut off while being written lacks it, so hot reload
# can tell a half-written file from a finished one (see `PolicyWatcher`); the shipped policies end with it.
END_MARKER = "# end of policy"


def ends_with_end_marker(text: str) -> bool:
    """True when the last non-blank line of the policy text is END_MARKER."""
    lines = text.rstrip().splitlines()
    return bool(lines) and lines[-1].strip() == END_MARKER


def _misplaced_end_marker(text: str, source: str) -> str | None:
    """END_MARKER anywhere but last means text was appended after it (or an old tail survived a rewrite)."""
    lines = text.rstrip().splitlines()
    for number, line in enumerate(lines[:-1], start=1):
        if line.strip() == END_MARKER:
            return f"{source}:{number}:1: {END_MARKER!r} must be the last line of the file; text follows it"
    return None


def load_policy(path: str | Path, *, env: Mapping[str, str] | None = None) -> Policy:
    """Read, interpolate and validate a policy file. Raises PolicyInvalid naming file, line and field."""
    source = str(path)
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise PolicyInvalid(f"{source}: policy file not found (resolved to {Path(path).resolve()})") from None
    except UnicodeDecodeError as exc:
        raise PolicyInvalid(f"{source}: not UTF-8 text (invalid byte at offset {exc.start})") from None
    except OSError as exc:
        raise PolicyInvalid(f"{source}: cannot read policy file: {exc.strerror or exc}") from None
    return parse_policy(text, source=source, env=env)


def parse_policy(text: str, *, source: str = "<policy>", env: Mapping[str, str] | None = None) -> Policy:
    """Validate policy YAML text; `source` names the file in error messages, `env` defaults to os.environ."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        raise PolicyInvalid(syntax_message(source, exc)) from None
    if root is None:
        raise PolicyInvalid(f"{source}: the policy file is empty; it needs at least `backends:` and `models:`")
    if (misplaced := _misplaced_end_marker(text, source)) is not None:
        raise PolicyInvalid(misplaced)
    builder = _Builder(source, os.environ if env is None else env)
    try:
        data = builder.build(root, (), None)
    except yaml.MarkedYAMLError as exc:
        raise PolicyInvalid(syntax_message(source, exc)) from None
    if not isinstance(data, dict):
        builder.report(root, "the policy must be a mapping with `backends:`, `models:`, ... at the top level")
        raise PolicyInvalid(builder.message())
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            builder.report_validation(err)
        raise PolicyInvalid(builder.message()) from None
    if builder.problems:
        raise PolicyInvalid(builder.message())
    return policy


def validate_cmd(path: str, out: TextIO, err: TextIO) -> int:
    """`guardproxy policy validate PATH`: 0 and a one-line summary, or 2 and every problem on `err`."""
    try:
        policy = load_policy(path)
    except PolicyInvalid as exc:
        print(exc.message, file=err)
        return 2
    if not ends_with_end_marker(Path(path).read_bytes().decode("utf-8-sig")):
        hint = "hot reload cannot tell a half-written file from a finished one (docs/policy-reference.md#hot-reload)"
        print(f"{path}: note: the last line is not {END_MARKER!r}; without it {hint}", file=err)
    counts = [
        _count(len(policy.models), "model"),
        _count(len(policy.backends), "backend"),
        _count(len(policy.detectors), "detector"),
        _count(len(policy.input), "input step"),
        _count(len(policy.output), "output step"),
    ]
    for name, profile in policy.profiles.items():
        counts.append(
            f"profile {name} ({_count(len(profile.input), 'input step')}, {_count(len(profile.output), 'output step')})"
        )
    print(f"{path}: OK: {', '.join(counts)} (fingerprint {policy_fingerprint(policy)})", file=out)
    return 0


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def policy_fingerprint(policy: Policy) -> str:
    """A short stable hash of what the policy does, for audit records and metrics.

    Independent of YAML layout, comments and mapping order; list order (step order) counts.
    Backend credentials are left out so that the fingerprint never helps guess a secret.
    """
    data = policy.model_dump(mode="json")
    for backend in data["backends"].values():
        backend.pop("api_key", None)
        backend["headers"] = sorted(backend.get("headers", {}))
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class _Builder(YamlTree):
    """The policy's YAML tree: string values interpolate `${VAR}` from the environment."""

    def __init__(self, source: str, env: Mapping[str, str]) -> None:
        super().__init__(source, Policy, root_name="policy", section_kinds=_SECTION_KIND)
        self.env = env

    def _text(self, node: yaml.ScalarNode, path: YamlPath) -> str:
        return self._interpolate(node, path)

    def _interpolate(self, node: yaml.ScalarNode, path: YamlPath) -> str:
        text: str = node.value
        if "${" not in text:
            return text

        def substitute(match: re.Match[str]) -> str:
            token, body = match.group(0), match.group(1)
            if token == "$${":
                return "${"
            reference = _VARIABLE.fullmatch(body) if body is not None else None
            if reference is None:
                hint = "write ${NAME} or ${NAME:-default}, or $${ for a literal '${'"
                self._env_problem(node, path, f"malformed reference {token!r}; {hint}")
                return token
            name, default = reference.group(1), reference.group(2)
            if default is not None:
                return self.env.get(name) or default
            if name not in self.env:
                self._env_problem(
                    node, path, f"environment variable {name!r} is not set; set it or give a default: ${{{name}:-...}}"
                )
                return ""
            return self.env[name]

        return _REFERENCE.sub(substitute, text)

    def _env_problem(self, node: yaml.Node, path: YamlPath, text: str) -> None:
        self.unknown_values.add(path)
        self.report(node, f"{dotted(path)}: {text}")
