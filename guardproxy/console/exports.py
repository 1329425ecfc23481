"""Export the events page's filter as JSON lines or CSV, and import reviewers' labels back from CSV.

The CSV has one row per record with its latest reviewer label in `label`; edit that column (and `note`) in a
spreadsheet and import the file: each row whose label differs from the stored latest one becomes a feedback row,
(a row whose label is already the latest, note or not, adds nothing: importing a file twice stores it once),
written exactly as `POST /v1/feedback` writes it. The audit record id (`request_id`) is the key. Cells that a
spreadsheet would run as a formula (`=`, `+`, `-`, `@` first) are exported with a leading `'`.
"""

from __future__ import annotations

import asyncio
import csv
import io
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field

import msgspec

from guardproxy.audit.feedback import Feedback
from guardproxy.audit.records import AuditRecord, UnknownRequest
from guardproxy.audit.search import RecordFilter
from guardproxy.audit.sink import AuditSink
from guardproxy.audit.store import AuditStore, latest_feedback
from guardproxy.errors import InvalidRequest
from guardproxy.proxy.feedback import parse_feedback, store_feedback

CSV_COLUMNS = (
    "request_id",
    "time",
    "outcome",
    "model",
    "client",
    "profile",
    "fired_steps",
    "labels",
    "latency_ms",
    "label",
    "note",
    "input_text",
    "output_text",
)
IMPORT_REQUIRED = ("request_id", "label")
MAX_IMPORT_ROWS = 10_000
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_encode = msgspec.json.Encoder().encode


CHUNK_BYTES = 64 * 1024
_QUEUED_CHUNKS = 8


async def in_thread(produce: Callable[[], Iterator[bytes]]) -> AsyncIterator[bytes]:
    """Runs a blocking generator (a store's reading cursor, which belongs to the thread that opened it) in one
    thread of its own, and yields its output in chunks of about CHUNK_BYTES; memory stays bounded by a small
    queue, and a client that leaves stops the reader."""
    chunks: queue.Queue[bytes | BaseException | None] = queue.Queue(_QUEUED_CHUNKS)
    stop = threading.Event()

    def put(item: bytes | BaseException | None) -> bool:
        while not stop.is_set():
            try:
                chunks.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            buffer = bytearray()
            for piece in produce():
                buffer += piece
                if len(buffer) >= CHUNK_BYTES:
                    if not put(bytes(buffer)):
                        return
                    buffer.clear()
            if buffer and not put(bytes(buffer)):
                return
            put(None)
        except Exception as exc:  # noqa: BLE001 - handed to the response, which fails the download visibly
            put(exc)

    thread = threading.Thread(target=run, name="console-export", daemon=True)
    thread.start()
    try:
        while True:
            item = await asyncio.to_thread(chunks.get)
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def jsonl_lines(store: AuditStore, where: RecordFilter) -> Iterator[bytes]:
    for record in store.search(where):
        yield record.to_json().encode() + b"\n"


def csv_lines(store: AuditStore, where: RecordFilter) -> Iterator[bytes]:
    feedback = latest_feedback(store.feedback())
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for record in store.search(where):
        fb = feedback.get(record.request_id)
        writer.writerow(_safe(v) for v in _csv_row(record, "" if fb is None else fb.label))
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue().encode()


def _csv_row(record: AuditRecord, label: str) -> list[str]:
    from guardproxy.console.events import when

    return [
        record.request_id,
        when(record.ts),
        record.outcome.value,
        record.model,
        record.client,
        str(record.meta.get("profile", "")),
        " ".join(s.name for s in record.steps if s.fired),
        " ".join(dict.fromkeys(label for s in record.steps if s.fired for label in s.labels)),
        f"{record.latency_ms:.1f}",
        label,
        "",
        record.input_text,
        record.output_text,
    ]


def _safe(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_START) else value


def _unsafe(value: str) -> str:
    return value[1:] if value.startswith("'") and value[1:].startswith(_FORMULA_START) else value


@dataclass(slots=True)
class ImportResult:
    stored: int = 0
    unchanged: int = 0
    skipped_blank: int = 0
    errors: list[str] = field(default_factory=list)  # "line N: problem"; rows with errors store nothing


async def import_csv(text: str, sink: AuditSink, store: AuditStore, *, actor: str) -> ImportResult:
    """Checks every row first; stores nothing when any row is wrong (bad input loses nothing, half an import
    is not written)."""
    result, pending = await asyncio.to_thread(check_rows, text, store, actor=actor)
    if result.errors:
        return result
    for fb in pending:
        try:
            await store_feedback(sink, fb)
        except UnknownRequest:
            result.errors.append(f"request {fb.request_id}: no longer in the audit log")
            continue
        result.stored += 1
    return result


def check_rows(text: str, store: AuditStore, *, actor: str) -> tuple[ImportResult, list[Feedback]]:
    """The rows as feedback to store, or the result's errors (line-numbered). Reads the store: call off the loop."""
    result = ImportResult()
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    missing = [c for c in IMPORT_REQUIRED if c not in (reader.fieldnames or ())]
    if missing:
        result.errors.append(f"line 1: the header lacks the column(s) {', '.join(missing)}")
        return result, []
    latest = latest_feedback(store.feedback())
    pending: list[Feedback] = []
    now = time.time()
    for line, row in enumerate(reader, start=2):
        if line - 1 > MAX_IMPORT_ROWS:
            result.errors.append(f"line {line}: more than {MAX_IMPORT_ROWS} rows; split the file")
            break
        request_id = (row.get("request_id") or "").strip()
        label = (row.get("label") or "").strip()
        if not label:
            result.skipped_blank += 1
            continue
        body = {"request_id": request_id, "label": label}
        note = _unsafe((row.get("note") or "").strip())
        if note:
            body["note"] = note
        try:
            fb = parse_feedback(_encode(body), actor=actor, now=now)
        except InvalidRequest as exc:
            result.errors.append(f"line {line}: {exc.message}")
            continue
        if store.get(fb.request_id) is None:
            result.errors.append(f"line {line}: no audit record has the request id {fb.request_id!r}")
            continue
        current = latest.get(fb.request_id)
        if current is not None and current.label == fb.label:  # re-importing a file adds nothing
            result.unchanged += 1
            continue
        pending.append(fb)
    return result, pending
