"""Reviewer and client feedback on a logged decision: the training signal of the sidecar trainer.

Feedback is keyed by the audit record's request id and attributed to who gave it. Its note and actor are
scrubbed of personal data before they are stored (like audit text), so feedback never carries raw PII.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from guardproxy.core import JSON

FeedbackLabel = Literal["false_positive", "false_negative", "correct"]
FEEDBACK_LABELS: tuple[FeedbackLabel, ...] = ("false_positive", "false_negative", "correct")


@dataclass(frozen=True, slots=True, kw_only=True)
class Feedback:
    """`false_positive`: a step fired (blocked/flagged/redacted) and should not have; `false_negative`: the
    request or answer should have been caught and was not; `correct`: the decision was right.

    `step` optionally names the policy step (or `detector`) the feedback is about; None = the whole decision.
    """

    request_id: str
    label: FeedbackLabel
    actor: str  # who said so: an API key id, a user name from the CLI
    ts: float  # unix seconds
    note: str = ""
    stage: Literal["input", "output"] | None = None
    step: str | None = None

    def to_dict(self) -> JSON:
        return {
            "request_id": self.request_id,
            "label": self.label,
            "actor": self.actor,
            "ts": self.ts,
            "note": self.note,
            "stage": self.stage,
            "step": self.step,
        }
