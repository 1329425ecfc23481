"""A step's `labels:` list: which of its detector's findings and categories the step acts on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from guardproxy.core import Context, Detection, Span
from guardproxy.policies.chain import Chain, compile_steps
from guardproxy.policies.schema import BlockStep, RedactStep

CTX = Context(request_id="t", stage="output")
TEXT = "Ada Lovelace wrote to ada@example.com"
NAME = Span(0, 12, "PERSON", 0.85)
EMAIL = Span(22, 37, "EMAIL_ADDRESS", 1.0)


@dataclass
class Reports:
    """Reports a fixed detection, as a PII or moderation detector would."""

    detection: Detection
    name: str = "fixed"
    scope: Literal["text", "request"] = "text"
    seen: list[str] = field(default_factory=list)

    async def detect(self, text: str, ctx: Context) -> Detection:
        self.seen.append(text)
        return self.detection

    async def aclose(self) -> None:
        return None


def chain_of(step: BlockStep | RedactStep, detection: Detection) -> Chain:
    return Chain.build("output", compile_steps("output", [step], {"fixed": Reports(detection)}))


async def test_a_step_edits_only_its_labels_and_the_audit_copy_loses_every_finding() -> None:
    found = Detection(score=1.0, labels=("EMAIL_ADDRESS", "PERSON"), spans=(NAME, EMAIL))
    step = RedactStep(action="redact", detector="fixed", labels=["EMAIL_ADDRESS"])
    verdict = await chain_of(step, found).check(TEXT, CTX)
    assert [(e.label, TEXT[e.start : e.end]) for e in verdict.edits] == [("EMAIL_ADDRESS", "ada@example.com")]
    assert [(e.label, TEXT[e.start : e.end]) for e in verdict.sensitive] == [
        ("PERSON", "Ada Lovelace"),
        ("EMAIL_ADDRESS", "ada@example.com"),
    ]


async def test_findings_outside_the_labels_do_not_fire_the_step() -> None:
    only_a_name = Detection(score=0.85, labels=("PERSON",), spans=(NAME,))
    step = RedactStep(action="redact", detector="fixed", labels=["EMAIL_ADDRESS", "PHONE_NUMBER"])
    verdict = await chain_of(step, only_a_name).check(TEXT, CTX)
    [result] = verdict.results
    assert not result.fired and result.score == 0.0 and verdict.edits == ()
    assert [e.label for e in verdict.sensitive] == ["PERSON"]  # still kept out of the audit log


async def test_categories_count_at_their_own_scores() -> None:
    moderation = Detection(
        score=0.9, labels=("violence", "sexual"), label_scores={"violence": 0.9, "sexual": 0.55, "hate": 0.1}
    )
    only_sexual = BlockStep(action="block", detector="fixed", labels=["sexual"], threshold=0.6)
    assert (await chain_of(only_sexual, moderation).check("x", CTX)).blocked_by is None  # 0.55 < 0.6
    only_violence = BlockStep(action="block", detector="fixed", labels=["violence", "hate"], threshold=0.6)
    blocked = (await chain_of(only_violence, moderation).check("x", CTX)).blocked_by
    assert blocked is not None and blocked.labels == ("violence",) and blocked.score == 0.9


async def test_without_labels_every_finding_counts() -> None:
    found = Detection(score=1.0, labels=("EMAIL_ADDRESS", "PERSON"), spans=(NAME, EMAIL))
    verdict = await chain_of(RedactStep(action="redact", detector="fixed"), found).check(TEXT, CTX)
    assert [e.label for e in verdict.edits] == ["PERSON", "EMAIL_ADDRESS"]
