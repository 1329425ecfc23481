"""Policy files for the gateway tests, pointing at the fake upstream."""

from __future__ import annotations

from pathlib import Path

from tests.proxy_harness import free_port

STANDARD = """
backends:
  upstream:
    type: openai
    base_url: {upstream}
    api_key: upstream-secret
    timeout_s: {timeout_s}
    max_retries: 2
    backoff_s: 0.01
  dead:
    type: openai
    base_url: http://127.0.0.1:{dead_port}/v1
    max_retries: 0
models:
  - {{name: gpt-4o-mini, backend: upstream}}
  - {{name: renamed, backend: upstream, upstream_model: real-upstream-model}}
  - {{name: down, backend: dead}}
  - {{name: with-fallback, backend: dead, fallbacks: [gpt-4o-mini]}}
detectors:
  injection: {{type: injection_heuristic}}
  pii: {{type: pii_regex, entities: [EMAIL_ADDRESS, PHONE_NUMBER, CREDIT_CARD, US_SSN, IBAN_CODE, IP_ADDRESS]}}
  banned: {{type: blocklist, patterns: ["(?i)internal use only"]}}
input:
  - {{detector: injection, action: block, roles: [user, assistant, tool, tool_call]}}
  - {{detector: pii, action: anonymize}}
output:
  - {{detector: banned, action: block}}
  - {{detector: pii, action: redact}}
audit:
  path: {audit}
proxy:
  block_error_code: {code}
  max_body_bytes: 65536
  stream: {{holdback_chars: 48, context_chars: 64}}
{extra}
"""


def write_policy(
    directory: Path,
    upstream: str,
    *,
    code: str = "content_filter",
    timeout_s: float = 2.0,
    extra: str = "",
    name: str = "policy.yaml",
) -> Path:
    path = directory / name
    path.write_text(
        STANDARD.format(
            upstream=upstream,
            dead_port=free_port(),
            audit=directory / "audit.db",
            code=code,
            timeout_s=timeout_s,
            extra=extra,
        )
    )
    return path


def write_policy_with(
    directory: Path,
    upstream: str,
    *,
    detectors: str = "",
    input_steps: str = "",
    output_steps: str = "",
    proxy: str = "",
    extra: str = "",
    name: str = "policy.yaml",
) -> Path:
    """`STANDARD` with more detectors, steps (prepended to each chain) and `proxy:` settings, as YAML lines
    indented by two spaces."""
    path = write_policy(directory, upstream, extra=extra, name=name)
    text = path.read_text()
    for section, lines in (("detectors", detectors), ("input", input_steps), ("output", output_steps)):
        text = text.replace(f"\n{section}:\n", f"\n{section}:\n{lines}", 1)
    text = text.replace("\nproxy:\n", f"\nproxy:\n{proxy}", 1)
    path.write_text(text)
    return path
