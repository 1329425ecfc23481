"""`guardproxy trainer shadow-report`: how a candidate detector, run in shadow beside the current one, would
have decided on live traffic.

Shadow mode is a policy `flag` step running the candidate (e.g. `{type: injection_classifier, model_path:
models/guard-classifier/v4}`) next to the step of the current detector: flag steps never change traffic,
and the audit log records both decisions. This report compares them over the records where both ran —
agreement, fires only one of them made — and, on requests a reviewer labelled (`false_positive`,
`false_negative`, `correct`), which of the two would have been right. It names requests by id only, never
by text.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TextIO

from guardproxy.audit.feedback import Feedback
from guardproxy.audit.records import StepRecord
from guardproxy.core import JSON

EXIT_OK, EXIT_USAGE = 0, 2


class StepsOfRequest(Protocol):
    """What the report reads of a record: an `AuditRecord`, or a `RecordOutline` (no texts: cheaper to read)."""

    @property
    def request_id(self) -> str: ...

    @property
    def steps(self) -> tuple[StepRecord, ...]: ...


@dataclass(slots=True)
class Confusion:
    """One detector's decisions against the reviewers' labels (positive = should fire)."""

    tp: int = 0
    fp: int = 0
    tn: int = 0
    fn: int = 0

    def add(self, fired: bool, truth: bool) -> None:
        if fired and truth:
            self.tp += 1
        elif fired:
            self.fp += 1
        elif truth:
            self.fn += 1
        else:
            self.tn += 1

    def to_dict(self) -> JSON:
        n = self.tp + self.fp + self.tn + self.fn
        return {
            "tp": self.tp,
            "fp": self.fp,
            "tn": self.tn,
            "fn": self.fn,
            "correct": self.tp + self.tn,
            "accuracy": _ratio(self.tp + self.tn, n),
            "precision": _ratio(self.tp, self.tp + self.fp),
            "recall": _ratio(self.tp, self.tp + self.fn),
        }


@dataclass(slots=True)
class ShadowReport:
    current: str
    candidate: str
    records: int = 0  # audit records read
    compared: int = 0  # records where both steps ran
    both_fired: int = 0
    neither_fired: int = 0
    candidate_only: list[str] = field(default_factory=list)  # request ids
    current_only: list[str] = field(default_factory=list)
    labelled: int = 0
    current_vs_labels: Confusion = field(default_factory=Confusion)
    candidate_vs_labels: Confusion = field(default_factory=Confusion)
    fixed: list[str] = field(default_factory=list)  # labelled: current wrong, candidate right
    regressed: list[str] = field(default_factory=list)  # labelled: current right, candidate wrong
    steps_seen: set[str] = field(default_factory=set)

    @property
    def agreement(self) -> float | None:
        return _ratio(self.both_fired + self.neither_fired, self.compared)

    def to_dict(self, max_ids: int | None = None) -> JSON:
        def ids(values: list[str]) -> JSON:
            return {"count": len(values), "request_ids": values[:max_ids]}

        return {
            "current": self.current,
            "candidate": self.candidate,
            "records": self.records,
            "compared": self.compared,
            "agreement": {"rate": self.agreement, "both_fired": self.both_fired, "neither_fired": self.neither_fired},
            "candidate_only": ids(self.candidate_only),
            "current_only": ids(self.current_only),
            "labelled": {
                "count": self.labelled,
                "current": self.current_vs_labels.to_dict(),
                "candidate": self.candidate_vs_labels.to_dict(),
                "fixed": ids(self.fixed),
                "regressed": ids(self.regressed),
            },
        }


def step_decision(record: StepsOfRequest, key: str) -> bool | None:
    """Whether the step named `key` fired on this request; None when it did not run.

    `key` is a step name (`name:` in the policy, default `<stage>.<index>.<detector>`), else a detector
    name: every step using that detector counts, and fired means any of them fired.
    """
    steps = [s for s in record.steps if s.name == key] or [s for s in record.steps if s.detector == key]
    ran = [s for s in steps if s.ran]
    if not ran:
        return None
    return any(s.fired for s in ran)


def label_truth(
    fb: Feedback, *, current: str, candidate: str, current_fired: bool, candidate_fired: bool
) -> bool | None:
    """Should the detector have fired, per a reviewer? None when the feedback is about another step."""
    if fb.step is not None and fb.step not in (current, candidate):
        return None
    if fb.label == "false_positive":
        return False
    if fb.label == "false_negative":
        return True
    # "correct": the decision the feedback is about was right; without a step, that is the served one.
    return candidate_fired if fb.step == candidate else current_fired


def compare(
    records: Iterable[StepsOfRequest], feedback: Mapping[str, Feedback], *, current: str, candidate: str
) -> ShadowReport:
    """`feedback`: the label that counts per request id (`guardproxy.audit.store.latest_feedback`)."""
    report = ShadowReport(current=current, candidate=candidate)
    for record in records:
        report.records += 1
        report.steps_seen.update(s.name for s in record.steps)
        report.steps_seen.update(s.detector for s in record.steps)
        now, new = step_decision(record, current), step_decision(record, candidate)
        if now is None or new is None:
            continue
        report.compared += 1
        if now and new:
            report.both_fired += 1
        elif not now and not new:
            report.neither_fired += 1
        else:
            (report.candidate_only if new else report.current_only).append(record.request_id)
        fb = feedback.get(record.request_id)
        truth = None
        if fb is not None:
            truth = label_truth(fb, current=current, candidate=candidate, current_fired=now, candidate_fired=new)
        if truth is None:
            continue
        report.labelled += 1
        report.current_vs_labels.add(now, truth)
        report.candidate_vs_labels.add(new, truth)
        if now != truth and new == truth:
            report.fixed.append(record.request_id)
        elif now == truth and new != truth:
            report.regressed.append(record.request_id)
    return report


def summary_text(report: ShadowReport, *, max_ids: int = 10) -> str:
    lines = [
        f"shadow report: candidate {report.candidate!r} vs current {report.current!r}",
        f"  records read: {report.records}; both steps ran on: {report.compared}",
    ]
    if report.compared:
        lines.append(
            f"  agreement: {report.agreement:.1%} ({report.both_fired} both fired, {report.neither_fired} neither)"
        )
    for title, ids in (
        ("candidate only fired", report.candidate_only),
        ("current only fired", report.current_only),
    ):
        lines.append(f"  {title}: {len(ids)}{_shown(ids, max_ids)}")
    if report.labelled:
        lines.append(f"  on {report.labelled} labelled requests:")
        for who, confusion in (("current", report.current_vs_labels), ("candidate", report.candidate_vs_labels)):
            c = confusion.to_dict()
            lines.append(
                f"    {who:<9} right on {c['correct']}/{report.labelled}  tp={c['tp']} fp={c['fp']} "
                f"tn={c['tn']} fn={c['fn']}  precision={_fmt(c['precision'])} recall={_fmt(c['recall'])}"
            )
        lines.append(f"    fixed by the candidate: {len(report.fixed)}{_shown(report.fixed, max_ids)}")
        lines.append(f"    regressed: {len(report.regressed)}{_shown(report.regressed, max_ids)}")
    else:
        lines.append("  no labelled requests among them (label with `guardproxy audit label ID --as ...`)")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    from guardproxy.audit.export import SINCE_HELP

    parser = argparse.ArgumentParser(
        prog="guardproxy trainer shadow-report",
        description="Compare a shadow (candidate) detector step with the current one.",
    )
    parser.add_argument("--db", required=True, help="The audit database (audit.path of the policy).")
    parser.add_argument("--current", required=True, help="Step name (or detector name) of the serving detector.")
    parser.add_argument("--candidate", required=True, help="Step name (or detector name) of the shadow flag step.")
    parser.add_argument("--since", help=SINCE_HELP)
    parser.add_argument("--out", type=Path, help="Also write the report as JSON here.")
    parser.add_argument("--max-ids", type=int, default=1000, help="Request ids listed per group in the JSON.")
    return parser


def cli_main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """0 = report written; 2 = bad database, argument, or a step that is in no record."""
    from guardproxy.audit.export import open_existing, parse_since
    from guardproxy.audit.store import latest_feedback

    out = out or sys.stdout
    err = err or sys.stderr
    prog = "guardproxy trainer shadow-report"
    args = build_parser().parse_args(argv)
    try:
        since = None if args.since is None else parse_since(args.since)
    except ValueError as exc:
        print(f"{prog}: {exc}", file=err)
        return EXIT_USAGE
    store = open_existing(args.db, prog, err)
    if store is None:
        return EXIT_USAGE
    try:
        feedback = latest_feedback(store.feedback())
        report = compare(store.query(since=since), feedback, current=args.current, candidate=args.candidate)
    finally:
        store.close()
    missing = [key for key in (args.current, args.candidate) if key not in report.steps_seen]
    if report.records and missing:
        known = ", ".join(sorted(report.steps_seen)) or "none"
        print(f"{prog}: no record has a step {' or '.join(map(repr, missing))} (steps seen: {known})", file=err)
        return EXIT_USAGE
    print(summary_text(report), file=out)
    if args.out is not None:
        document = {"db": args.db, "since": since, **report.to_dict(max_ids=args.max_ids)}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return EXIT_OK


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _fmt(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float) else "–"


def _shown(ids: list[str], max_ids: int) -> str:
    if not ids:
        return ""
    return ": " + ", ".join(ids[:max_ids]) + (f" ... (+{len(ids) - max_ids})" if len(ids) > max_ids else "")
