"""PII scrubbing of everything the audit log keeps, in one place, before any store.

Stores (SQLite today, PostgreSQL next) store what they are given; the audit sink scrubs records on
its writer thread and feedback/preference rows in its `add_feedback`/`add_preference`, and the CLI's
`audit label` calls `scrub_feedback` itself. A new store therefore needs no scrubbing of its own.

Records follow the policy (`audit.store_raw: true` keeps their text as is). Feedback and preference
triples are always scrubbed: a feedback actor is a header the client chose, and triples are training
data that must not teach a model somebody's e-mail address.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from guardproxy.audit.feedback import Feedback
from guardproxy.audit.preferences import ChatTurn, Preference
from guardproxy.audit.records import AuditRecord, StepRecord
from guardproxy.detectors.pii_regex import scrub_pii

Scrub = Callable[[str], str]

WITHHELD = "[guardproxy: scrub failed, text withheld]"


def scrub_record(record: AuditRecord, scrub: Scrub) -> AuditRecord:
    """Every free text of a record scrubbed; raises what `scrub` raises (see `withhold_record`)."""
    return replace(
        record,
        # The client chooses the model name: PII can be put there like anywhere else.
        model=scrub(record.model),
        input_segments=tuple(replace(s, text=scrub(s.text)) for s in record.input_segments),
        output_segments=tuple(replace(s, text=scrub(s.text)) for s in record.output_segments),
        error=None if record.error is None else scrub(record.error),
        steps=tuple(_scrubbed_step(step, scrub) for step in record.steps),
    )


def withhold_record(record: AuditRecord) -> AuditRecord:
    """The record with every free text replaced by a marker: for when scrubbing it failed."""
    return replace(
        record,
        model=WITHHELD if record.model else "",
        input_segments=tuple(replace(s, text=WITHHELD) for s in record.input_segments),
        output_segments=tuple(replace(s, text=WITHHELD) for s in record.output_segments),
        error=None if record.error is None else WITHHELD,
        steps=tuple(step if step.error is None else replace(step, error=WITHHELD) for step in record.steps),
    )


def scrub_feedback(fb: Feedback, scrub: Scrub = scrub_pii) -> Feedback:
    return replace(
        fb,
        actor=scrub(fb.actor),  # a client's x-guardproxy-user header, as sent
        note=scrub(fb.note),
        step=None if fb.step is None else scrub(fb.step),
    )


def scrub_preference(pref: Preference, scrub: Scrub = scrub_pii) -> Preference:
    return replace(
        pref,
        model=scrub(pref.model),  # the model name the client sent
        prompt=tuple(ChatTurn(turn.role, scrub(turn.content)) for turn in pref.prompt),
        rejected=scrub(pref.rejected),
        chosen=scrub(pref.chosen),
        critique=scrub(pref.critique),
    )


def _scrubbed_step(step: StepRecord, scrub: Scrub) -> StepRecord:
    # A detector's error message may quote the text it failed on.
    return step if step.error is None else replace(step, error=scrub(step.error))
