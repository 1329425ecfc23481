"""Training rows for SFT and DPO, in TRL's conversational formats.

SFT: `{"prompt": [messages], "completion": [assistant message]}` (loss on the completion only).
DPO: `{"prompt": [messages], "chosen": [assistant message], "rejected": [assistant message]}`.
Plain-string prompts become one user turn, so training and evaluation both go through the chat template.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from guardproxy.audit.store import open_store

Message = dict[str, str]
Row = dict[str, list[Message]]


class DataError(ValueError):
    """A dataset line that is not in a supported shape; the message names file and line."""


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with Path(path).open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{number}: not JSON: {exc}") from None
            if not isinstance(record, dict):
                raise DataError(f"{path}:{number}: expected a JSON object")
            yield number, record


def sft_rows(path: str | Path) -> list[Row]:
    rows: list[Row] = []
    for number, record in read_jsonl(path):
        where = f"{path}:{number}"
        if "messages" in record:
            messages = _messages(record["messages"], where)
            if len(messages) < 2 or messages[-1]["role"] != "assistant":
                raise DataError(f"{where}: messages must end with the assistant's answer after at least one turn")
            rows.append({"prompt": messages[:-1], "completion": messages[-1:]})
        elif "prompt" in record and "completion" in record:
            rows.append(
                {"prompt": _prompt(record["prompt"], where), "completion": _answer(record["completion"], where)}
            )
        else:
            raise DataError(f"{where}: expected `messages` or `prompt` + `completion`")
    if not rows:
        raise DataError(f"{path}: no examples")
    return rows


def dpo_rows(audit_db: str | None, pairs: str | None, since: float | None = None) -> list[Row]:
    rows: list[Row] = []
    if audit_db:
        if "://" not in audit_db and not Path(audit_db).is_file():  # opening would create an empty store
            raise DataError(f"audit_db: no audit store at {audit_db}")
        store = open_store(audit_db)
        try:
            for pref in store.preferences(since=since):
                where = f"{audit_db}: preference of {pref.request_id}"
                prompt = [{"role": t.role, "content": t.content} for t in pref.prompt]
                rows.append(_pair(prompt, pref.chosen, pref.rejected, where))
        finally:
            store.close()
    if pairs:
        for number, record in read_jsonl(pairs):
            where = f"{pairs}:{number}"
            missing = [k for k in ("prompt", "chosen", "rejected") if k not in record]
            if missing:
                raise DataError(f"{where}: missing {', '.join(missing)}")
            rows.append(_pair(_prompt(record["prompt"], where), record["chosen"], record["rejected"], where))
    if not rows:
        raise DataError("no preference pairs: the audit store has no revise triples and no pairs file was given")
    return rows


def prompt_texts(path: str | Path, limit: int) -> list[str]:
    """Evaluation prompts: the `text` (or `prompt`) field of the first `limit` lines."""
    texts: list[str] = []
    for number, record in read_jsonl(path):
        text = record.get("text", record.get("prompt"))
        if not isinstance(text, str):
            raise DataError(f"{path}:{number}: expected a string `text` or `prompt`")
        texts.append(text)
        if len(texts) == limit:
            break
    return texts


def _pair(prompt: list[Message], chosen: Any, rejected: Any, where: str) -> Row:
    return {"prompt": prompt, "chosen": _answer(chosen, where), "rejected": _answer(rejected, where)}


def _prompt(value: Any, where: str) -> list[Message]:
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    messages = _messages(value, where)
    if not messages:
        raise DataError(f"{where}: empty prompt")
    return messages


def _answer(value: Any, where: str) -> list[Message]:
    if isinstance(value, str):
        return [{"role": "assistant", "content": value}]
    messages = _messages(value, where)
    if len(messages) != 1 or messages[0]["role"] != "assistant":
        raise DataError(f"{where}: an answer is a string or one assistant message")
    return messages


def _messages(value: Any, where: str) -> list[Message]:
    if not isinstance(value, list):
        raise DataError(f"{where}: messages must be a list")
    out: list[Message] = []
    for i, m in enumerate(value):
        if not (isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)):
            raise DataError(f"{where}: message {i} needs string `role` and `content`")
        out.append({"role": m["role"], "content": m["content"]})
    return out
