"""policy.yaml loading: every error names file, line, column, field and what is allowed.

Run `python tests/test_policy_loader.py` to regenerate the field tables of docs/policy-reference.md.
"""

from __future__ import annotations

import io
import json
import re
import sys
import textwrap
import types
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
import pytest
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from guardproxy.backends.configs import BackendConfig
from guardproxy.detectors.configs import DetectorConfig
from guardproxy.errors import PolicyInvalid
from guardproxy.policies import load_policy, parse_policy, policy_fingerprint, validate_cmd
from guardproxy.policies.schema import (
    Action,
    AuditConfig,
    AuthConfig,
    BlockStep,
    Escalation,
    ImageSettings,
    McpServer,
    ModelRoute,
    Policy,
    Profile,
    ProxySettings,
    StateConfig,
    StreamSettings,
    ToolAccess,
    ToolPinningConfig,
)

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "policy-reference.md"

HEAD = """\
backends:
  upstream: {type: openai}
models:
  - {name: m, backend: upstream}
detectors:
  inj: {type: injection_heuristic}
"""  # six lines: the snippets below start on line 7
TAIL = "models:\n  - {name: m, backend: upstream}\n"


def problems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, env: dict[str, str] | None = None) -> str:
    monkeypatch.chdir(tmp_path)
    Path("policy.yaml").write_text(textwrap.dedent(text))
    with pytest.raises(PolicyInvalid) as info:
        load_policy("policy.yaml", env=env or {})
    return info.value.message


def test_yaml_syntax_error_gives_line_column_and_parser_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = "backends:\n  upstream: {type: openai\nmodels: []\n"
    assert problems(tmp_path, monkeypatch, text) == (
        "policy.yaml:3:7: YAML syntax error: expected ',' or '}', but got ':' (while parsing a flow mapping on line 2)"
    )


def test_unknown_key_lists_allowed_fields_and_suggests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = HEAD + "input:\n  - detector: inj\n    action: block\n    treshold: 0.9\n"
    assert problems(tmp_path, monkeypatch, text) == (
        "policy.yaml:10:5: input[0].treshold: extra field 'treshold' not allowed; allowed fields: "
        "detector, threshold, timeout_ms, on_error, name, roles, labels, scope, window_turns, window_chars, escalate, "
        "action (did you mean 'threshold'?)"
    )


def test_wrong_type_says_what_is_expected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = "backends:\n  upstream:\n    type: openai\n    timeout_s: soon\n" + TAIL
    assert problems(tmp_path, monkeypatch, text) == (
        "policy.yaml:4:16: backends.upstream.timeout_s: expected a number, got 'soon'"
    )


def test_bad_action_lists_the_actions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = HEAD + "input:\n  - detector: inj\n    action: block\n  - detector: inj\n    action: blok\n"
    assert problems(tmp_path, monkeypatch, text) == (
        "policy.yaml:11:13: input[1].action: 'blok' is not allowed; allowed: block, redact, anonymize, flag, strip, escape, revise "
        "(did you mean 'block'?)"
    )


def test_bad_literal_in_a_list_points_at_the_item(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = HEAD + "  pii:\n    type: pii_regex\n    entities: [EMAIL_ADDRESS, EMAIL]\n"
    message = problems(tmp_path, monkeypatch, text)
    assert message.startswith("policy.yaml:9:31: detectors.pii.entities[1]: 'EMAIL' is not allowed; allowed: ")
    assert "EMAIL_ADDRESS, PHONE_NUMBER, CREDIT_CARD, US_SSN, IBAN_CODE, IP_ADDRESS, SECRET" in message


def test_unknown_detector_type_lists_types(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = HEAD + "  pii: {type: pii_regx}\n"
    message = problems(tmp_path, monkeypatch, text)
    prefix = "policy.yaml:7:15: detectors.pii.type: unknown detector type 'pii_regx'; allowed: "
    suffix = " (did you mean 'pii_regex'?)"
    assert message.startswith(prefix)
    assert message.endswith(suffix)
    allowed = message[len(prefix) : -len(suffix)].split(", ")
    assert allowed == sorted(allowed)
    assert {"blocklist", "injection_heuristic", "pii_regex", "template"} <= set(allowed)


def test_missing_type_and_missing_required_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = "backends:\n  upstream: {base_url: 'http://x'}\ndetectors: {}\n"
    assert problems(tmp_path, monkeypatch, text).splitlines() == [
        "policy.yaml:1:1: missing required field 'models'",
        "policy.yaml:2:13: backends.upstream: missing field 'type'; allowed: llama_cpp, openai, transformers",
    ]


def test_unknown_detector_reference_points_at_the_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = HEAD + "input:\n  - {detector: inj, action: block}\n  - {detector: nope, action: flag}\n"
    assert problems(tmp_path, monkeypatch, text) == (
        "policy.yaml:9:16: input[1].detector: unknown detector 'nope'; defined: ['inj']"
    )


def test_unknown_backend_reference_points_at_the_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = "backends:\n  upstream: {type: openai}\nmodels:\n  - name: m\n    backend: upstreem\n"
    assert problems(tmp_path, monkeypatch, text) == (
        "policy.yaml:5:14: models[0].backend: unknown backend 'upstreem'; defined: ['upstream']"
    )


def test_missing_env_var_names_line_and_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = "backends:\n  upstream:\n    type: openai\n    api_key: ${OPENAI_KEY}\n" + TAIL
    assert problems(tmp_path, monkeypatch, text, env={"OTHER": "x"}) == (
        "policy.yaml:4:14: backends.upstream.api_key: environment variable 'OPENAI_KEY' is not set; "
        "set it or give a default: ${OPENAI_KEY:-...}"
    )


def test_malformed_reference_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = "backends:\n  upstream:\n    type: openai\n    base_url: http://${HOST\n" + TAIL
    message = problems(tmp_path, monkeypatch, text)
    assert message.startswith("policy.yaml:4:15: backends.upstream.base_url: malformed reference '${'")


def test_missing_file_is_a_clear_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PolicyInvalid, match=r"^policy\.yaml: policy file not found \(resolved to .*policy\.yaml\)$"):
        load_policy("policy.yaml")


def test_every_error_is_listed_in_line_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = HEAD + "  pii: {type: pii_regex}\n  pii: {type: blocklist}\n"
    text += "input:\n  - {detector: inj, action: block, threshold: 1.5}\n"
    assert problems(tmp_path, monkeypatch, text).splitlines() == [
        "policy.yaml:8:3: detectors.pii: duplicate key (first defined on line 7)",
        "policy.yaml:10:47: input[0].threshold: must be <= 1.0, got 1.5",
    ]


def test_empty_and_non_mapping_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert "policy.yaml: the policy file is empty" in problems(tmp_path, monkeypatch, "# nothing yet\n")
    assert problems(tmp_path, monkeypatch, "- a\n").startswith("policy.yaml:1:1: the policy must be a mapping")


def test_env_interpolation_defaults_escapes_and_types() -> None:
    text = textwrap.dedent(
        """\
        backends:
          upstream:
            type: openai
            base_url: ${URL:-http://127.0.0.1:9/v1}
            api_key: ${KEY:-}
            timeout_s: ${TIMEOUT:-30}
            max_retries: ${RETRIES}
            headers: {x-literal: "$${NOT_A_VAR}", x-tricky: "${TRICKY}"}
        models:
          - {name: m, backend: upstream}
        """
    )
    env = {"RETRIES": "5", "URL": "", "TRICKY": "a: b # not yaml"}
    backend = parse_policy(text, env=env).backends["upstream"]
    assert backend.base_url == "http://127.0.0.1:9/v1"  # set but empty counts as unset for `:-`, as in sh
    assert backend.api_key == ""
    assert backend.timeout_s == 30.0
    assert backend.max_retries == 5
    assert backend.headers == {"x-literal": "${NOT_A_VAR}", "x-tricky": "a: b # not yaml"}
    assert parse_policy(text, env={**env, "TIMEOUT": "2.5"}).backends["upstream"].timeout_s == 2.5
    with pytest.raises(
        PolicyInvalid, match=r"^<policy>:6:16: backends.upstream.timeout_s: expected a number, got 'x'$"
    ):
        parse_policy(text, env={**env, "TIMEOUT": "x"})


def test_merge_keys_and_anchors_work() -> None:
    text = (
        HEAD
        + "input:\n  - &step {detector: inj, action: block, timeout_ms: 50}\noutput:\n  - {<<: *step, action: flag}\n"
    )
    policy = parse_policy(text)
    assert policy.output[0].action == "flag"
    assert policy.output[0].timeout_ms == 50


def test_shipped_policy_loads_with_every_section() -> None:
    policy = load_policy(REPO / "policy.yaml", env={})
    assert [m.name for m in policy.models] == ["gpt-4o-mini", "gpt-4o", "gpt-4.1-mini"]
    assert {d.type for d in policy.detectors.values()} == {
        "injection_classifier",
        "injection_heuristic",
        "moderation_classifier",
        "presidio",
        "pii_regex",
        "blocklist",
        "template",
        "url_guard",
        "control_chars",
    }
    assert [(s.detector, s.action) for s in policy.input] == [
        ("injection_model", "block"),
        ("injection_rules", "block"),
        ("injection_rules", "block"),  # scope: conversation
        ("moderation", "block"),
        ("secrets", "block"),
        ("shape", "flag"),
        ("pii", "anonymize"),
    ]
    assert [(s.detector, s.action) for s in policy.output] == [
        ("banned", "block"),
        ("moderation", "block"),
        ("secrets", "block"),
        ("pii", "redact"),
        ("exfil_images", "redact"),
        ("exfil_links", "redact"),
        ("terminal", "strip"),
    ]
    assert [s.scope for s in policy.input].count("conversation") == 1
    assert policy.tool_pinning.mode == "flag"
    assert policy.backends["upstream"].base_url == "https://api.openai.com/v1"


def test_shipped_commented_proxy_section_is_valid_and_matches_defaults() -> None:
    text = (REPO / "policy.yaml").read_text()
    text = text[: text.index("\n# Hot reload applies")]  # the end marker must stay last: left out here
    # the shipped settings that differ from the defaults come first, as a live `proxy:` block: left out here
    text = text[: text.index("\nproxy:\n")] + text[text.index("\n# More proxy settings") :]
    block = text[text.index("# proxy:") :]
    uncommented = "\n".join(line.removeprefix("# ") for line in block.splitlines())
    policy = parse_policy(text + "\n" + uncommented, env={})
    assert policy.proxy == ProxySettings()


def test_validate_cmd(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert validate_cmd(str(REPO / "policy.yaml"), out, err) == 0
    assert re.fullmatch(
        r".*policy\.yaml: OK: 3 models, 1 backend, 10 detectors, 7 input steps, 7 output steps "
        r"\(fingerprint [0-9a-f]{16}\)\n",
        out.getvalue(),
    )
    assert err.getvalue() == ""
    bad = tmp_path / "bad.yaml"
    bad.write_text(HEAD + "input:\n  - {detector: inj, action: blok}\n")
    out, err = io.StringIO(), io.StringIO()
    assert validate_cmd(str(bad), out, err) == 2
    assert out.getvalue() == ""
    assert err.getvalue().startswith(f"{bad}:8:29: input[0].action: 'blok' is not allowed")


def test_fingerprint_follows_meaning_not_layout_or_secrets() -> None:
    base = parse_policy(HEAD + "input:\n  - {detector: inj, action: block}\n")
    relaid = parse_policy(
        "# comment\nmodels:\n- name: m\n  backend: upstream\ndetectors:\n  inj:\n    type: injection_heuristic\n"
        "backends:\n  upstream:\n    type: openai\n    api_key: sk-secret\ninput: [{action: block, detector: inj}]\n"
    )
    stricter = parse_policy(HEAD + "input:\n  - {detector: inj, action: block, threshold: 0.4}\n")
    assert policy_fingerprint(base) == policy_fingerprint(relaid)
    assert policy_fingerprint(base) != policy_fingerprint(stricter)


# --- docs/policy-reference.md field tables, generated from the models so they cannot drift ---


def _members(union: Any) -> list[type[BaseModel]]:
    base = get_args(union)[0]
    return list(get_args(base)) if get_origin(base) in (Union, types.UnionType) else [base]


DOCUMENTED: dict[str, type[BaseModel]] = {
    "Policy": Policy,
    "ModelRoute": ModelRoute,
    "Step": BlockStep,
    "Escalation": Escalation,
    "AuditConfig": AuditConfig,
    "AuthConfig": AuthConfig,
    "ProxySettings": ProxySettings,
    "StreamSettings": StreamSettings,
    "ImageSettings": ImageSettings,
    "ToolPinningConfig": ToolPinningConfig,
    "Profile": Profile,
    "McpServer": McpServer,
    "ToolAccess": ToolAccess,
    "StateConfig": StateConfig,
}
DOCUMENTED.update({m.__name__: m for m in (*_members(BackendConfig), *_members(DetectorConfig))})
# Meanings for fields whose model has no `description=` yet; a model description wins.
NOTES: dict[tuple[str, str], str] = {
    ("Policy", "backends"): "Named upstream APIs. See `backends:`.",
    ("Policy", "models"): "Model names clients may use. See `models:`.",
    ("Policy", "detectors"): "Named detector instances. See `detectors:`.",
    ("Policy", "input"): "Steps run on the request. See steps.",
    ("Policy", "output"): "Steps run on the answer. See steps.",
    ("Policy", "audit"): "See `audit:`.",
    ("Policy", "proxy"): "See `proxy:`.",
    ("*", "type"): "Selects the kind; decides which other fields are allowed.",
    ("OpenAIBackendConfig", "base_url"): "Base URL including the version path, e.g. `http://127.0.0.1:8000/v1`.",
    ("OpenAIBackendConfig", "api_key"): "Sent upstream as `Authorization: Bearer ...`; empty sends none.",
    ("OpenAIBackendConfig", "connect_timeout_s"): "Time allowed to open a connection.",
    ("OpenAIBackendConfig", "max_connections"): "Connection pool size to this backend.",
    ("InjectionHeuristicConfig", "categories"): "Rule families to apply.",
    ("PiiRegexConfig", "entities"): "Entities to find; each finding is a span labelled with its entity.",
    ("BlocklistConfig", "label"): "Label of the spans found (shown as `[LABEL]` by `redact`).",
    ("TemplateConfig", "allowed_roles"): "Message roles allowed; null allows any.",
    ("TemplateConfig", "max_messages"): "Maximum number of messages; null = no limit.",
    ("Step", "action"): "What to do when the step fires. See Actions.",
    ("AuditConfig", "queue_size"): "Records waiting to be written before `on_full` applies.",
    ("ProxySettings", "block_error_code"): "`code` of the error returned for a blocked request.",
    ("ProxySettings", "max_body_bytes"): "Larger request bodies are refused with 413.",
    ("ProxySettings", "stream"): "Streaming hold-back. See its table.",
}
GENERATED = re.compile(r"(<!-- fields: (\w+) -->\n).*?(<!-- end fields -->)", re.DOTALL)


def _type_text(annotation: Any) -> str:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return " or ".join(f"`{a}`" for a in args)
    if origin in (Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        text = " or ".join(_type_text(a) for a in options)
        return text + (" or null" if len(options) < len(args) else "")
    if origin is list:
        return f"list of {_type_text(args[0])}"
    if origin is tuple:
        return f"[{', '.join(_type_text(a) for a in args)}]"
    if origin is dict:
        return f"mapping of {_type_text(args[0])} to {_type_text(args[1])}"
    if origin is Annotated:  # a discriminated union: named by its tag field
        discriminator = next(m.discriminator for m in args[1:] if isinstance(m, FieldInfo))
        return f"mapping with `{discriminator}:`"
    names = {str: "string", int: "integer", float: "number", bool: "boolean", Any: "anything"}
    if annotation in names:
        return names[annotation]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"mapping ({annotation.__name__})"
    return str(annotation)


def _bounds_text(metadata: list[Any]) -> str:
    parts = []
    for item in metadata:
        for attr, symbol in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if hasattr(item, attr) and getattr(item, attr) is not None:
                parts.append(f"{symbol} {getattr(item, attr)}")
        if getattr(item, "pattern", None):
            parts.append(f"matching `{item.pattern}`")
        if isinstance(item, annotated_types.MinLen):
            parts.append(f"at least {item.min_length} item")
    return f", {', '.join(parts)}" if parts else ""


def _default_text(field: Any) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "see its table"
    return f"`{json.dumps(value)}`"


def field_table(title: str, model: type[BaseModel]) -> str:
    rows = ["| Field | Type | Default | Meaning |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        annotation = Action if model is BlockStep and name == "action" else field.annotation
        kind = _type_text(annotation) + _bounds_text(field.metadata)
        required = "required" if model is BlockStep and name == "action" else _default_text(field)
        note = NOTES.get((title, name)) or NOTES.get(("*", name), "")
        description = (field.description or note).replace("|", "\\|")
        rows.append(f"| `{name}` | {kind} | {required} | {description} |")
    return "\n".join(rows) + "\n"


def rendered_docs(text: str) -> str:
    return GENERATED.sub(lambda m: m.group(1) + field_table(m.group(2), DOCUMENTED[m.group(2)]) + m.group(3), text)


def test_docs_field_tables_match_the_models() -> None:
    text = DOCS.read_text()
    assert set(DOCUMENTED) == {m.group(2) for m in GENERATED.finditer(text)}
    for model in (*_members(BackendConfig), *_members(DetectorConfig)):
        [kind] = get_args(model.model_fields["type"].annotation)
        assert f"### `type: {kind}`" in text, f"docs/policy-reference.md has no section for type {kind}"
    assert rendered_docs(text) == text, "run `python tests/test_policy_loader.py` to regenerate the tables"


if __name__ == "__main__":
    DOCS.write_text(rendered_docs(DOCS.read_text()))
    sys.exit(0)
