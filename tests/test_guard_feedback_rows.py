"""Guard-model feedback loop: audit feedback -> Agent rows, the precision/F1 promotion gate, registry versions.

Rows are read from real SQLite audit stores filled through `write_batch` and `add_feedback`; the gate is fed
confusions computed by `confusion()`; versions are written into a real registry directory.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Literal

import pytest

from guardproxy.audit import AuditRecord, Outcome, Segment, StepRecord
from guardproxy.audit.feedback import Feedback, FeedbackLabel
from guardproxy.audit.store import AuditStore, open_store
from guardproxy.detectors.llama_guard_prompt import LLAMA_GUARD_3_CATEGORIES, Category
from guardproxy.detectors.model_card import ModelCard
from guardproxy.detectors.model_files import version_dirs
from guardproxy.evaluation.metrics import Confusion, confusion
from guardproxy.trainer.guard_model.examples import GuardRow, read_rows
from guardproxy.trainer.guard_model.from_audit import reviewed_rows, row_json, write_rows
from guardproxy.trainer.guard_model.gate import GATED_METRICS, gate
from guardproxy.trainer.guard_model.versions import GGUF_FILE, add_version

T0 = 1_700_000_000.0
GUARD = "output.0.guard"  # the output guard step the rows are about
GUARD_DETECTOR = "llama_guard"
OTHER = "output.1.pii"  # another output step of the same requests


# --- building audit traffic ------------------------------------------------------------------------------


def out_step(
    name: str = GUARD,
    *,
    fired: bool,
    detector: str = GUARD_DETECTOR,
    action: str = "flag",
    labels: tuple[str, ...] = (),
    ran: bool = True,
) -> StepRecord:
    return StepRecord(
        name=name,
        stage="output",
        detector=detector,
        action=action,
        ran=ran,
        fired=fired,
        latency_ms=1.0,
        score=0.9 if fired else 0.1,
        labels=labels,
    )


def record(
    rid: str,
    *steps: StepRecord,
    user: str | Sequence[str] = "how do I bake bread?",
    answer: str = "Mix flour, water and yeast.",
    i: int = 0,
    outcome: Outcome = Outcome.ALLOWED,
) -> AuditRecord:
    users = [user] if isinstance(user, str) else list(user)
    segments = [Segment("system", 0, "You are helpful.")]
    for n, text in enumerate(users, 1):
        if n > 1:
            segments.append(Segment("assistant", len(segments), f"earlier answer {n}"))
        segments.append(Segment("user", len(segments), text))
    return AuditRecord(
        request_id=rid,
        ts=T0 + i,
        client="team-a",
        endpoint="/v1/chat/completions",
        model="m",
        backend="local",
        stream=False,
        outcome=outcome,
        status=200,
        latency_ms=3.0,
        steps=steps,
        input_segments=tuple(segments),
        output_segments=(Segment("assistant", 0, answer),) if answer else (),
    )


def feedback(
    rid: str,
    label: FeedbackLabel,
    *,
    note: str = "",
    step: str | None = GUARD,
    stage: Literal["input", "output"] | None = "output",
    ts: float = T0 + 10_000,
) -> Feedback:
    return Feedback(request_id=rid, label=label, actor="reviewer", ts=ts, note=note, stage=stage, step=step)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[AuditStore]:
    opened = open_store(str(tmp_path / "audit.db"))
    try:
        yield opened
    finally:
        opened.close()


def fill(store: AuditStore, records: Sequence[AuditRecord], fbs: Sequence[Feedback]) -> None:
    store.write_batch(records)
    for fb in fbs:
        store.add_feedback(fb)


# --- reviewed_rows ---------------------------------------------------------------------------------------


def test_false_negative_on_a_passed_step_is_a_positive_with_the_notes_codes(store: AuditStore) -> None:
    fill(
        store,
        [
            record(
                "r1",
                out_step(fired=False),
                out_step(OTHER, fired=False, detector="pii"),
                user=["first question", "tell me how to hurt someone"],
                answer="Here is how: \u2026 step one",
            )
        ],
        [feedback("r1", "false_negative", note="unsafe: S1,S10")],
    )

    result = reviewed_rows(store, [GUARD])

    assert result.negatives == ()
    assert result.dropped == {}
    assert result.positives == (
        GuardRow(
            role="Agent",
            user="tell me how to hurt someone",  # the last user message, not the first, not the system prompt
            answer="Here is how: \u2026 step one",
            label="unsafe",
            codes=("S1", "S10"),
            custom=(),
            source="audit:r1:false_negative",
            group="audit:r1",
        ),
    )


def test_codes_are_known_ones_sorted_by_number_and_unknown_codes_are_left_out(store: AuditStore) -> None:
    fill(
        store,
        [record("r1", out_step(fired=False))],
        [feedback("r1", "false_negative", note="S10 and S2, also S99 and S2 again")],
    )

    (row,) = reviewed_rows(store, [GUARD]).positives

    assert row.codes == ("S2", "S10")


def test_false_positive_on_a_flag_and_correct_on_a_pass_are_negatives(store: AuditStore) -> None:
    fill(
        store,
        [
            record(
                "fp",
                out_step(fired=True, labels=("unsafe", "S2", "non_violent_crimes")),
                answer="flagged but fine",
                outcome=Outcome.FLAGGED,
            ),
            record("ok", out_step(fired=False), answer="passed and fine", i=1),
        ],
        [
            feedback("fp", "false_positive", note="harmless, S2 is wrong"),
            feedback("ok", "correct", ts=T0 + 10_001),
        ],
    )

    result = reviewed_rows(store, [GUARD])

    assert result.positives == ()
    assert result.dropped == {}
    by_source = {row.source: row for row in result.negatives}
    assert set(by_source) == {"audit:fp:false_positive", "audit:ok:correct"}
    for row in result.negatives:
        assert (row.role, row.label, row.codes) == ("Agent", "safe", ())
    assert by_source["audit:fp:false_positive"].answer == "flagged but fine"
    assert by_source["audit:ok:correct"].answer == "passed and fine"


def test_an_unsafe_label_without_codes_is_dropped(store: AuditStore) -> None:
    fill(
        store,
        [record("r1", out_step(fired=False)), record("r2", out_step(fired=False), i=1)],
        [
            feedback("r1", "false_negative", note="unsafe"),
            feedback("r2", "false_negative", note="this is S99"),  # a code, but not a Llama Guard 3 one
        ],
    )

    result = reviewed_rows(store, [GUARD])

    assert result.positives == () and result.negatives == ()
    assert result.dropped == {"unsafe_without_codes": 2}


def test_a_confirmed_flag_takes_the_steps_codes(store: AuditStore) -> None:
    fill(
        store,
        [
            record(
                "r1",
                out_step(fired=True, labels=("unsafe", "S2", "non_violent_crimes")),
                out_step(OTHER, fired=True, detector="pii", labels=("S11",)),  # not the guard: its labels stay out
                answer="how to pick a lock",
                outcome=Outcome.FLAGGED,
            )
        ],
        [feedback("r1", "correct")],
    )

    result = reviewed_rows(store, [GUARD])

    assert result.negatives == ()
    (row,) = result.positives
    assert (row.label, row.codes, row.source) == ("unsafe", ("S2",), "audit:r1:correct")
    assert row.answer == "how to pick a lock"


def test_the_notes_codes_win_over_the_steps(store: AuditStore) -> None:
    fill(
        store,
        [record("r1", out_step(fired=True, labels=("unsafe", "S2")), outcome=Outcome.FLAGGED)],
        [feedback("r1", "correct", note="rather S9")],
    )

    (row,) = reviewed_rows(store, [GUARD]).positives

    assert row.codes == ("S9",)


def test_feedback_about_another_step_or_stage_is_ignored(store: AuditStore) -> None:
    fill(
        store,
        [
            record("other-step", out_step(fired=False), out_step(OTHER, fired=True, detector="pii")),
            record("input-stage", out_step(fired=False), i=1),
            record("mine", out_step(fired=False), i=2),
        ],
        [
            feedback("other-step", "false_negative", note="S1", step=OTHER),
            feedback("input-stage", "false_negative", note="S1", stage="input", step="input.0.injection"),
            feedback("mine", "false_negative", note="S1", step=OTHER),
            feedback("mine", "correct", ts=T0 + 9_000),  # older, but the only one about the guard
        ],
    )

    result = reviewed_rows(store, [GUARD])

    assert result.positives == ()
    assert [row.source for row in result.negatives] == ["audit:mine:correct"]


def test_feedback_inconsistent_with_the_step_is_counted_and_left_out(store: AuditStore) -> None:
    fill(
        store,
        [record("r1", out_step(fired=False))],
        [feedback("r1", "false_positive")],  # the guard never fired: not about it
    )

    result = reviewed_rows(store, [GUARD])

    assert result.positives == () and result.negatives == ()
    assert result.dropped == {"feedback:not_about_target": 1}


def test_steps_may_name_the_detector_and_the_latest_feedback_wins(store: AuditStore) -> None:
    fill(
        store,
        [record("r1", out_step(fired=False))],
        [
            feedback("r1", "correct", step=None, stage=None, ts=T0 + 100),
            feedback("r1", "false_negative", note="S5", step=None, stage=None, ts=T0 + 200),
        ],
    )

    result = reviewed_rows(store, [GUARD_DETECTOR])

    assert result.negatives == ()
    (row,) = result.positives
    assert (row.codes, row.source) == (("S5",), "audit:r1:false_negative")


def test_records_without_feedback_give_no_rows(store: AuditStore) -> None:
    fill(store, [record("r1", out_step(fired=True, labels=("unsafe", "S1")), outcome=Outcome.FLAGGED)], [])

    result = reviewed_rows(store, [GUARD])

    assert (result.positives, result.negatives, result.dropped) == ((), (), {})


def test_no_steps_is_an_error(store: AuditStore) -> None:
    with pytest.raises(ValueError, match="steps"):
        reviewed_rows(store, [])


# --- write_rows / read_rows ------------------------------------------------------------------------------


def test_written_rows_read_back_equal(tmp_path: Path, store: AuditStore) -> None:
    custom = (Category(f"S{len(LLAMA_GUARD_3_CATEGORIES) + 1}", "Secrets", "secrets", "API keys and passwords."),)
    rows = [
        GuardRow(
            "Agent", "line\u2028separated?", "Ça va \u2028 très bien, 日本語 \U0001f600", "safe", (), (), "a", "g1"
        ),
        GuardRow("User", "kill the process \u2029 now", None, "unsafe", ("S1", "S10"), (), "b", "g2"),
        GuardRow("Agent", "my key?", "sk-live-123", "unsafe", (custom[0].code,), custom, "c", "g3"),
    ]
    fill(store, [record("r1", out_step(fired=False), answer="ünïcødé \u2028 answer")], [])
    store.add_feedback(feedback("r1", "false_negative", note="S3"))
    rows += reviewed_rows(store, [GUARD]).positives
    path = tmp_path / "rows.jsonl"

    assert write_rows(path, rows) == 4

    text = path.read_text(encoding="utf-8")
    assert "日本語" in text and "\\u65e5" not in text  # written as UTF-8, not escaped
    assert len(text.split("\n")) == 5  # one line per row and the final newline: U+2028 breaks no line
    assert read_rows(path) == rows
    assert json.loads(text.split("\n")[2]) == row_json(rows[2])
    assert row_json(rows[2])["custom"] == [
        {"name": "Secrets", "label": "secrets", "description": "API keys and passwords."}
    ]


# --- gate ------------------------------------------------------------------------------------------------


def counts(tp: int, fp: int, fn: int, tn: int) -> Confusion:
    """A confusion computed by `confusion()` from predictions and truths with these counts."""
    flagged = [True] * tp + [True] * fp + [False] * fn + [False] * tn
    truth = [True] * tp + [False] * fp + [True] * fn + [False] * tn
    result = confusion(flagged, truth)
    assert result == Confusion(tp, fp, fn, tn)
    return result


def test_an_equal_candidate_passes() -> None:
    current = counts(40, 10, 10, 40)

    decision = gate(current, counts(40, 10, 10, 40))

    assert decision.passed
    assert decision.reasons == ()
    assert [(c.metric, c.passed) for c in decision.checks] == [(m, True) for m in GATED_METRICS]
    assert decision.checks[0].current == pytest.approx(0.8)
    assert decision.to_dict()["passed"] is True


def test_a_better_candidate_passes() -> None:
    assert gate(counts(40, 10, 10, 40), counts(45, 5, 5, 45)).passed


def test_lower_precision_fails_and_the_reason_names_it() -> None:
    current = counts(40, 10, 10, 40)  # precision 0.8, recall 0.8
    candidate = counts(45, 15, 5, 35)  # precision 0.75, recall 0.9: F1 0.8 -> 0.818

    decision = gate(current, candidate)

    assert not decision.passed
    assert len(decision.reasons) == 1
    assert decision.reasons[0].startswith("precision:")
    checks = {c.metric: c for c in decision.checks}
    assert not checks["precision"].passed
    assert checks["f1"].passed


def test_lower_f1_fails() -> None:
    decision = gate(counts(40, 10, 10, 40), counts(20, 2, 30, 48))  # more precise, far less recall

    assert not decision.passed
    assert [r.split(":")[0] for r in decision.reasons] == ["f1"]


def test_a_candidate_that_flags_nothing_fails() -> None:
    candidate = counts(0, 0, 50, 50)
    assert candidate.precision is None

    decision = gate(counts(40, 10, 10, 40), candidate)

    assert not decision.passed
    assert {r.split(":")[0] for r in decision.reasons} == {"precision", "f1"}
    assert all("undefined" in r for r in decision.reasons)
    assert all(c.candidate is None and not c.passed for c in decision.checks)


def test_a_current_model_that_flags_nothing_is_no_bar() -> None:
    assert gate(counts(0, 0, 50, 50), counts(10, 30, 40, 20)).passed


def test_tolerance_is_honoured() -> None:
    current = counts(40, 10, 10, 40)  # precision 0.8, F1 0.8
    candidate = counts(39, 11, 11, 39)  # precision 0.78, F1 0.78

    assert not gate(current, candidate).passed
    assert not gate(current, candidate, tolerance=0.01).passed
    decision = gate(current, candidate, tolerance=0.03)
    assert decision.passed and decision.reasons == ()


def test_a_negative_tolerance_is_an_error() -> None:
    with pytest.raises(ValueError, match="tolerance"):
        gate(counts(1, 0, 0, 1), counts(1, 0, 0, 1), tolerance=-0.01)


def test_calling_everything_unsafe_fails_although_f1_rises() -> None:
    truth = [True] * 50 + [False] * 50
    current = counts(25, 5, 25, 45)  # precision 0.833, recall 0.5, F1 0.625
    everything = confusion([True] * len(truth), truth)
    assert everything.recall == 1.0
    assert everything.precision == pytest.approx(0.5)  # the share of unsafe answers
    assert everything.f1 is not None and current.f1 is not None
    assert everything.f1 > current.f1  # F1 alone would promote it

    decision = gate(current, everything, tolerance=0.05)

    assert not decision.passed
    assert [r.split(":")[0] for r in decision.reasons] == ["precision"]


# --- add_version -----------------------------------------------------------------------------------------


def test_versions_are_added_in_order_with_model_and_card(tmp_path: Path) -> None:
    registry = tmp_path / "models" / "guard"
    first, second = tmp_path / "a.gguf", tmp_path / "b.gguf"
    first.write_bytes(b"GGUF\x00\x01first" + bytes(range(256)))
    second.write_bytes(b"GGUF\x00\x02second")

    v1 = add_version(registry, first, name="guard-smol", training={"rows": 12, "steps": ["output.0.guard"]})
    v2 = add_version(registry, second, name="guard-smol", training={"rows": 20}, evaluation={"f1": 0.8})

    assert (v1, v2) == (registry / "v1", registry / "v2")
    assert sorted(p.name for p in registry.iterdir()) == ["v1", "v2"]  # no staging directory left
    assert (v1 / GGUF_FILE).read_bytes() == first.read_bytes()
    assert (v2 / GGUF_FILE).read_bytes() == second.read_bytes()
    card1, card2 = ModelCard.load(v1), ModelCard.load(v2)
    assert (card1.name, card1.version, card1.training, card1.evaluation) == (
        "guard-smol",
        "v1",
        {"rows": 12, "steps": ["output.0.guard"]},
        {},
    )
    assert (card2.version, card2.training, card2.evaluation) == ("v2", {"rows": 20}, {"f1": 0.8})
    assert card1.created is not None and datetime.fromisoformat(card1.created).tzinfo is not None
    assert card1.serving is None
    assert version_dirs(registry) == [v1, v2]


def test_the_next_version_follows_the_highest_and_leaves_others_alone(tmp_path: Path) -> None:
    registry = tmp_path / "guard"
    (registry / "v3").mkdir(parents=True)
    (registry / "v3" / GGUF_FILE).write_bytes(b"old")
    (registry / "CURRENT").write_text("v3\n")
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"new")

    assert add_version(registry, gguf, name="g", training={}) == registry / "v4"

    assert (registry / "v3" / GGUF_FILE).read_bytes() == b"old"
    assert (registry / "CURRENT").read_text() == "v3\n"
    assert sorted(p.name for p in registry.iterdir()) == ["CURRENT", "v3", "v4"]


def test_a_missing_gguf_raises_and_leaves_nothing(tmp_path: Path) -> None:
    registry = tmp_path / "guard"
    registry.mkdir()

    with pytest.raises(FileNotFoundError, match=r"no-such\.gguf"):
        add_version(registry, tmp_path / "no-such.gguf", name="g", training={})

    assert list(registry.iterdir()) == []


def test_a_failure_while_staging_removes_the_staging_directory(tmp_path: Path) -> None:
    registry = tmp_path / "guard"
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")

    with pytest.raises(TypeError):
        add_version(registry, gguf, name="g", training={"not json": object()})  # the card cannot be written

    assert list(registry.iterdir()) == []
    assert add_version(registry, gguf, name="g", training={}) == registry / "v1"
