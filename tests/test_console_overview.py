"""The console's overview numbers and span marks, on records built by hand (the HTTP and browser tests run the
real proxy; these pin the arithmetic)."""

from __future__ import annotations

from guardproxy.audit.feedback import Feedback
from guardproxy.audit.records import AuditRecord, Outcome, Segment, StepRecord
from guardproxy.audit.search import RecordOutline
from guardproxy.console.detail import build_detail, split_marks
from guardproxy.console.overview import percentile, summarise

T0 = 1_700_000_000.0


def step(
    name: str,
    detector: str,
    *,
    fired: bool,
    latency: float = 1.0,
    error: str | None = None,
    labels: tuple[str, ...] = (),
) -> StepRecord:
    return StepRecord(
        name=name,
        stage="input",
        detector=detector,
        action="block",
        ran=error is None,
        fired=fired,
        latency_ms=latency,
        labels=labels,
        error=error,
    )


def record(i: int, outcome: Outcome, *steps: StepRecord, text: str = "") -> AuditRecord:
    return AuditRecord(
        request_id=f"r{i}",
        ts=T0 + i * 60,
        client="c",
        endpoint="/v1/chat/completions",
        model="m",
        backend="b",
        stream=False,
        outcome=outcome,
        status=200,
        latency_ms=1.0,
        steps=steps,
        input_segments=(Segment("user", 0, text),),
    )


def fb(request_id: str, label: str, step: str | None = None) -> Feedback:
    return Feedback(request_id=request_id, label=label, actor="qa", ts=T0, step=step)  # type: ignore[arg-type]


def test_precision_counts_labelled_fires_and_false_positives() -> None:
    records = [
        record(1, Outcome.BLOCKED_INPUT, step("input.0.inj", "inj", fired=True)),
        record(2, Outcome.BLOCKED_INPUT, step("input.0.inj", "inj", fired=True)),
        record(3, Outcome.BLOCKED_INPUT, step("input.0.inj", "inj", fired=True)),
        record(4, Outcome.ALLOWED, step("input.0.inj", "inj", fired=False)),
        record(5, Outcome.FLAGGED, step("input.0.inj", "inj", fired=True), step("input.1.pii", "pii", fired=True)),
    ]
    feedback = {
        "r1": fb("r1", "false_positive"),
        "r2": fb("r2", "correct"),
        "r4": fb("r4", "false_negative"),  # not a fire: does not count for precision
        "r5": fb("r5", "false_positive", step="input.1.pii"),  # about pii only
    }
    o = summarise(map(RecordOutline.of, records), feedback, range_name="all", since=None, until=T0 + 600)
    assert (o.precision["inj"].fires, o.precision["inj"].labelled, o.precision["inj"].false_positives) == (4, 2, 1)
    assert o.precision["inj"].value == 0.5
    assert (o.precision["pii"].labelled, o.precision["pii"].value) == (1, 0.0)
    assert o.labelled == 4
    assert o.blocked == 3 and o.outcomes["flagged"] == 1
    assert o.detectors["inj"].block_rate == 3 / 5
    assert sum(bar.height > 0 for bar in o.bars) >= 3


def test_failures_errors_and_latency() -> None:
    records = [
        record(1, Outcome.BLOCKED_INPUT, step("input.0.inj", "inj", fired=False, error="timeout after 50 ms")),
        record(2, Outcome.ERROR, step("input.0.inj", "inj", fired=False, latency=3.0)),
        record(3, Outcome.ALLOWED, step("input.0.inj", "inj", fired=False, latency=5.0)),
    ]
    o = summarise(map(RecordOutline.of, records), {}, range_name="all", since=None, until=T0 + 600)
    assert (o.errors, o.step_errors, o.fail_closed) == (1, 1, 1)
    assert o.detectors["inj"].percentile(50) == 3.0 and o.detectors["inj"].percentile(99) == 5.0
    assert percentile([], 50) is None


def test_only_labels_of_fired_steps_are_marked_as_spans() -> None:
    owners = {"EMAIL_ADDRESS": ["input.1.pii"]}
    pieces = split_marks("mail [EMAIL_ADDRESS] or [NOTE] now", owners)
    assert [(p.text, p.steps) for p in pieces] == [
        ("mail ", ()),
        ("[EMAIL_ADDRESS]", ("input.1.pii",)),
        (" or [NOTE] now", ()),
    ]
    quiet = record(1, Outcome.ALLOWED, step("input.0.x", "x", fired=False, labels=("NOTE",)), text="a [NOTE]")
    assert not any(p.marked for s in build_detail(quiet, (), {}).input for p in s.pieces)
