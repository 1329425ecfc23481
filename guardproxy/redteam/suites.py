"""The shipped probe suites (data/attacks.jsonl, data/benign.jsonl; provenance in data/README.md) as typed probes."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any


class Category(enum.StrEnum):
    DIRECT_INJECTION = "direct_injection"
    INDIRECT_INJECTION = "indirect_injection"
    JAILBREAK = "jailbreak"
    PII_EXFILTRATION = "pii_exfiltration"
    SYSTEM_PROMPT_EXTRACTION = "system_prompt_extraction"
    BENIGN = "benign"


class SuiteName(enum.StrEnum):
    QUICK = "quick"  # the records flagged "quick": ~40 attacks over every category, ~20 benign prompts
    DEFAULT = "default"  # every record


@dataclass(frozen=True)
class Probe:
    """One chat request. `secret`: the value whose return counts as a leak (PII value, system-prompt canary)."""

    id: str
    category: Category
    messages: tuple[dict[str, Any], ...]
    source: str
    licence: str
    secret: str | None = None

    @property
    def is_attack(self) -> bool:
        return self.category is not Category.BENIGN


@dataclass(frozen=True)
class Suite:
    name: SuiteName
    attacks: tuple[Probe, ...]
    benign: tuple[Probe, ...]


def load_suite(name: SuiteName) -> Suite:
    return Suite(name, _load("attacks.jsonl", name), _load("benign.jsonl", name))


def _load(filename: str, name: SuiteName) -> tuple[Probe, ...]:
    text = resources.files("guardproxy.redteam").joinpath("data", filename).read_text(encoding="utf-8")
    probes = []
    for line in text.splitlines():
        record = json.loads(line)
        if name is SuiteName.QUICK and not record["quick"]:
            continue
        probes.append(
            Probe(
                id=record["id"],
                category=Category(record["category"]),
                messages=tuple(record["messages"]),
                source=record["source"],
                licence=record["licence"],
                secret=record.get("secret"),
            )
        )
    return tuple(probes)
