"""The events page: its query string as a `RecordFilter`, and one page of rows, newest first."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from guardproxy.audit.export import parse_since
from guardproxy.audit.feedback import FEEDBACK_LABELS, Feedback
from guardproxy.audit.records import AuditRecord, Outcome
from guardproxy.audit.search import UNLABELLED, PageCursor, RecordFilter
from guardproxy.audit.store import AuditStore, latest_feedback

PAGE_SIZE = 50
MAX_TEXT_FILTER = 200
# The query-string fields of the filter form, in the form's order.
FILTER_FIELDS = (
    "outcome",
    "stage",
    "step",
    "detector",
    "label",
    "model",
    "client",
    "profile",
    "review",
    "since",
    "until",
    "q",
)
SNIPPET_CHARS = 140


class FilterInvalid(ValueError):
    """A filter value the page cannot use; the message names the field."""


@dataclass(frozen=True, slots=True)
class EventRow:
    record: AuditRecord
    when: str
    fired: tuple[str, ...]
    labels: tuple[str, ...]
    review: str | None
    snippet: str


@dataclass(frozen=True, slots=True)
class EventsPage:
    rows: list[EventRow]
    next_cursor: str | None  # the `before` value of the next (older) page
    params: dict[str, str]  # the filter as given, for the form and the links


def parse_filter(query: Mapping[str, str], *, now: float | None = None) -> RecordFilter:
    def value(name: str) -> str | None:
        raw = query.get(name, "").strip()
        return raw or None

    outcome = value("outcome")
    if outcome is not None and outcome not in {o.value for o in Outcome}:
        raise FilterInvalid(f"outcome: unknown outcome {outcome!r}; one of {', '.join(o.value for o in Outcome)}")
    stage = value("stage")
    if stage not in (None, "input", "output"):
        raise FilterInvalid(f"stage: must be input or output, got {stage!r}")
    review = value("review")
    if review is not None and review != UNLABELLED and review not in FEEDBACK_LABELS:
        raise FilterInvalid(f"review: one of {', '.join((*FEEDBACK_LABELS, UNLABELLED))}, got {review!r}")
    text = value("q")
    if text is not None and len(text) > MAX_TEXT_FILTER:
        raise FilterInvalid(f"q: the search text is longer than {MAX_TEXT_FILTER} characters")
    return RecordFilter(
        outcome=None if outcome is None else Outcome(outcome),
        stage="input" if stage == "input" else "output" if stage == "output" else None,
        step=value("step"),
        detector=value("detector"),
        label=value("label"),
        model=value("model"),
        client=value("client"),
        profile=value("profile"),
        review=next((label for label in FEEDBACK_LABELS if label == review), None),
        unlabelled=review == UNLABELLED,
        since=_time("since", value("since"), now),
        until=_time("until", value("until"), now),
        text=text,
    )


def _time(name: str, text: str | None, now: float | None) -> float | None:
    if text is None:
        return None
    try:
        return parse_since(text, now=now)
    except ValueError:
        raise FilterInvalid(f"{name}: expected e.g. 15m, 2h, 7d or an ISO-8601 date/time, got {text!r}") from None


def parse_cursor(text: str | None) -> PageCursor | None:
    if not text:
        return None
    ts, sep, request_id = text.partition("~")
    try:
        return PageCursor(float(ts), request_id) if sep and request_id else None
    except ValueError:
        raise FilterInvalid(f"before: not a page cursor: {text!r}") from None


def load_page(store: AuditStore, query: Mapping[str, str], *, now: float | None = None) -> EventsPage:
    where = parse_filter(query, now=now)
    before = parse_cursor(query.get("before"))
    records = list(store.search(where, before=before, limit=PAGE_SIZE + 1))
    feedback = latest_feedback(store.feedback(request_ids=[r.request_id for r in records])) if records else {}
    rows = [row_of(record, feedback.get(record.request_id)) for record in records[:PAGE_SIZE]]
    next_cursor = None
    if len(records) > PAGE_SIZE:
        last = records[PAGE_SIZE - 1]
        next_cursor = f"{last.ts!r}~{last.request_id}"
    params = {name: query[name].strip() for name in FILTER_FIELDS if query.get(name, "").strip()}
    return EventsPage(rows, next_cursor, params)


def row_of(record: AuditRecord, fb: Feedback | None) -> EventRow:
    fired = tuple(s.name for s in record.steps if s.ran and s.fired)
    labels = tuple(dict.fromkeys(label for s in record.steps if s.fired for label in s.labels))
    text = record.input_text or record.output_text
    snippet = text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 1] + "…"
    return EventRow(record, when(record.ts), fired, labels, None if fb is None else fb.label, snippet)


def when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")
