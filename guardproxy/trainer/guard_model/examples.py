"""Training rows -> Llama Guard prompts split at the conversation: a shared prefix and a per-example rest.

Everything before `<BEGIN CONVERSATION>` depends only on the assessed role and the category list, so a batch
of rows with the same (role, categories) shares one prefix: it is evaluated once per batch and its key/value
cache is repeated for every row (the same trick llama.cpp's prompt cache plays at inference time).
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from guardproxy.detectors.llama_guard_prompt import LLAMA_GUARD_3_CATEGORIES, Category, Turn, render_chatml

# Split before the blank line: the tokenizer merges "\n\n" at a text's end but not before "User", so a
# prefix ending in it would tokenise differently alone than inside the prompt (measured: 100 of 100 rows).
CONVERSATION_START = "<BEGIN CONVERSATION>"
END_OF_ANSWER = "<|im_end|>"
Label = Literal["safe", "unsafe"]


class GuardDataError(ValueError):
    """A training or evaluation file of guard rows is not valid; the message names file and line."""


@dataclass(frozen=True, slots=True)
class GuardRow:
    role: Literal["User", "Agent"]
    user: str
    answer: str | None
    label: Label
    codes: tuple[str, ...]
    custom: tuple[Category, ...]
    source: str
    group: str

    def turns(self) -> list[Turn]:
        if self.role == "User":
            return [Turn("User", self.user)]
        return [Turn("User", self.user), Turn("Agent", self.answer or "")]

    def categories(self) -> tuple[Category, ...]:
        return LLAMA_GUARD_3_CATEGORIES + self.custom

    def target(self) -> str:
        verdict = "safe" if self.label == "safe" else "unsafe\n" + ",".join(self.codes)
        return verdict.strip() + END_OF_ANSWER


@dataclass(frozen=True, slots=True)
class SplitPrompt:
    prefix: str  # up to and including CONVERSATION_START: shared by rows of one (role, categories)
    rest: str  # the conversation, the closing instructions, the assistant header
    target: str  # what the model must answer


def split_prompt(row: GuardRow) -> SplitPrompt:
    prompt = render_chatml(row.turns(), row.categories())
    at = prompt.index(CONVERSATION_START) + len(CONVERSATION_START)
    return SplitPrompt(prompt[:at], prompt[at:], row.target())


def read_rows(path: Path) -> list[GuardRow]:
    rows: list[GuardRow] = []
    first_custom = len(LLAMA_GUARD_3_CATEGORIES) + 1
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise GuardDataError(f"{path}: cannot read guard rows ({exc})") from exc
    for number, line in enumerate(text.split("\n"), 1):  # not splitlines: U+2028 may sit inside a string
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            custom = tuple(
                Category(
                    f"S{first_custom + i}", c["name"], c.get("label") or c["name"].lower(), c.get("description", "")
                )
                for i, c in enumerate(raw.get("custom") or ())
            )
            row = GuardRow(
                role=raw["role"],
                user=str(raw["user"]),
                answer=raw.get("answer"),
                label=raw["label"],
                codes=tuple(raw.get("codes") or ()),
                custom=custom,
                source=str(raw.get("source", "")),
                group=str(raw.get("group", "")),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise GuardDataError(f"{path}:{number}: not a guard row ({exc})") from exc
        _check(row, f"{path}:{number}")
        rows.append(row)
    if not rows:
        raise GuardDataError(f"{path}: no rows")
    return rows


def _check(row: GuardRow, where: str) -> None:
    if row.role not in ("User", "Agent") or row.label not in ("safe", "unsafe"):
        raise GuardDataError(f"{where}: role must be User|Agent and label safe|unsafe")
    if row.role == "Agent" and not row.answer:
        raise GuardDataError(f"{where}: an Agent row needs the answer")
    known = {c.code for c in row.categories()}
    if row.label == "unsafe" and (not row.codes or any(c not in known for c in row.codes)):
        raise GuardDataError(f"{where}: unsafe needs codes among {sorted(known)}, got {list(row.codes)}")
    if row.label == "safe" and row.codes:
        raise GuardDataError(f"{where}: a safe row has no codes")


def batches(prefixes: Sequence[Hashable], size: int, order: Iterable[int]) -> list[list[int]]:
    """Indices grouped by prefix (in `order`), cut into batches of at most `size`."""
    by_prefix: dict[Hashable, list[int]] = {}
    for i in order:
        by_prefix.setdefault(prefixes[i], []).append(i)
    return [group[at : at + size] for group in by_prefix.values() for at in range(0, len(group), size)]
