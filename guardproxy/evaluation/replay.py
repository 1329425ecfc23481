"""`guardproxy replay`: what a new policy would have decided on the traffic already in the audit log.

Each stored record's (redacted) input segments go through the new policy's input steps, each text
whole and as the role it was checked as, its output segments through the output steps, and the
result is compared with the decision the proxy made then. The report names the request ids that change, never their texts.

Redacted text hides exactly what earlier steps found: a span a step fired on is stored as `[LABEL]`,
so re-running that detector on the stored text cannot see it again. Unless `carry_over=False`, a
new step therefore also counts as fired when the record shows a step of the same stage and detector
that fired with a score at or above the new step's threshold (for a cascade step that escalated: the
escalation detector's score against the new step's `escalate.threshold`, when it escalates to the same
detector). Use `carry_over=False` for logs kept with `audit.store_raw: true`. Request-level steps
(e.g. `template`) need the whole request body, which is not stored: they are judged by carry-over alone.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from guardproxy.audit.feedback import Feedback
from guardproxy.audit.records import AuditRecord, Outcome, Segment, StepRecord
from guardproxy.core import JSON, Context, Stage
from guardproxy.policies.chain import Chain, CompiledStep, StepResult
from guardproxy.policies.schema import Policy


@dataclass(frozen=True, slots=True)
class Decision:
    blocked_stage: Stage | None  # where the request was (or would be) blocked; None = not blocked
    fired: frozenset[str]  # step names
    output_checked: bool = True  # False: blocked at input back then, so there is no answer to check

    @property
    def blocked(self) -> bool:
        return self.blocked_stage is not None


@dataclass(slots=True)
class StepTally:
    stage: Stage
    detector: str
    old_fired: int = 0  # records in which this step fired back then
    new_fired: int = 0  # records in which it fires under the new policy
    carried_over: int = 0  # of new_fired: only because the stored record showed the detector firing
    errors: int = 0  # records in which the detector failed (its on_error applied)
    in_new_policy: bool = False

    def to_dict(self) -> JSON:
        return {
            "stage": self.stage,
            "detector": self.detector,
            "old_fired": self.old_fired,
            "new_fired": self.new_fired,
            "carried_over": self.carried_over,
            "errors": self.errors,
            "in_new_policy": self.in_new_policy,
        }


@dataclass(slots=True)
class ReplayReport:
    replayed: int = 0
    skipped_error: int = 0  # records of failed requests (upstream errors): no policy decision to compare
    unchanged: int = 0
    output_unchecked: int = 0  # blocked at input then, allowed now: the answer was never generated
    newly_blocked: list[str] = field(default_factory=list)
    newly_allowed: list[str] = field(default_factory=list)
    steps: dict[str, StepTally] = field(default_factory=dict)
    feedback: dict[str, JSON] = field(default_factory=dict)

    def to_dict(self) -> JSON:
        detectors: dict[str, JSON] = {}
        for tally in self.steps.values():
            entry = detectors.setdefault(
                f"{tally.stage}:{tally.detector}", {"stage": tally.stage, "detector": tally.detector}
            )
            entry["old_fired"] = entry.get("old_fired", 0) + tally.old_fired
            entry["new_fired"] = entry.get("new_fired", 0) + tally.new_fired
        return {
            "records": {
                "replayed": self.replayed,
                "skipped_error": self.skipped_error,
                "unchanged": self.unchanged,
                "newly_blocked": len(self.newly_blocked),
                "newly_allowed": len(self.newly_allowed),
                "output_unchecked": self.output_unchecked,
            },
            "changed": {"newly_blocked": self.newly_blocked, "newly_allowed": self.newly_allowed},
            "steps": {name: tally.to_dict() for name, tally in self.steps.items()},
            "detectors": detectors,
            "feedback": self.feedback,
        }


def stored_decision(record: AuditRecord) -> Decision:
    stage: Stage | None = None
    if record.blocked:
        stage = "input" if record.outcome == Outcome.BLOCKED_INPUT else "output"
    return Decision(stage, frozenset(s.name for s in record.steps if s.fired))


class Replayer:
    """The new policy's chains, run over stored records one at a time."""

    def __init__(self, input_chain: Chain, output_chain: Chain, *, carry_over: bool = True) -> None:
        self.input = input_chain
        self.output = output_chain
        self.carry_over = carry_over

    async def decide(self, record: AuditRecord, report: ReplayReport) -> Decision:
        fired: set[str] = set()
        if await self._stage(self.input, record, record.input_segments, fired, report):
            return Decision("input", frozenset(fired))
        if record.outcome == Outcome.BLOCKED_INPUT:
            return Decision(None, frozenset(fired), output_checked=False)
        blocked = await self._stage(self.output, record, record.output_segments, fired, report)
        return Decision("output" if blocked else None, frozenset(fired))

    async def _stage(
        self,
        chain: Chain,
        record: AuditRecord,
        segments: tuple[Segment, ...],
        fired: set[str],
        report: ReplayReport,
    ) -> bool:
        """Run one stage; add the steps that fire to `fired`; True if the stage blocks."""
        results: dict[str, list[StepResult]] = {}
        for segment in segments:
            verdict = await chain.check(
                segment.text, Context(record.request_id, chain.stage, segment.role, record.model)
            )
            for result in verdict.results:
                results.setdefault(result.step.name, []).append(result)
        blocks = False
        for step in (*chain.request_steps, *chain.text_steps):
            tally = report.steps[step.name]
            step_results = results.get(step.name, [])
            seen = any(r.fired for r in step_results)
            carried = not seen and self.carry_over and _carried(step, record.steps)
            if any(not r.ran for r in step_results):
                tally.errors += 1
            if seen or carried:
                fired.add(step.name)
                tally.new_fired += 1
                tally.carried_over += int(carried)
            blocks = blocks or any(r.blocks for r in step_results) or (carried and step.action == "block")
        return blocks


def _carried(step: CompiledStep, stored: Iterable[StepRecord]) -> bool:
    return any(
        s.stage == step.stage and s.detector == step.detector_name and s.ran and s.fired and _still_fires(step, s)
        for s in stored
    )


def _still_fires(step: CompiledStep, stored: StepRecord) -> bool:
    """Whether a step that fired back then would fire at the new step's operating point: a cascade step that
    escalated to the detector the new step escalates to is judged on that detector's score and threshold."""
    said, escalation = stored.escalation, step.escalation
    if said is not None and escalation is not None and said.detector == escalation.detector_name:
        return said.score is None or said.score >= escalation.threshold
    return stored.score is None or stored.score >= step.threshold


async def replay(
    records: Iterable[AuditRecord],
    input_chain: Chain,
    output_chain: Chain,
    *,
    feedback: Mapping[str, Feedback] | None = None,
    carry_over: bool = True,
) -> ReplayReport:
    """Compare the chains' decisions with the stored ones. `feedback`: the latest label per request id."""
    report = ReplayReport()
    for chain in (input_chain, output_chain):
        for step in (*chain.request_steps, *chain.text_steps):
            report.steps[step.name] = StepTally(step.stage, step.detector_name, in_new_policy=True)
    replayer = Replayer(input_chain, output_chain, carry_over=carry_over)
    labels: dict[str, dict[str, list[str]]] = {}
    for record in records:
        if record.outcome == Outcome.ERROR:
            report.skipped_error += 1
            continue
        report.replayed += 1
        old = stored_decision(record)
        # Counted once per record, however many of its texts a step fired on.
        fired_then = {s.name: s for s in record.steps if s.fired}
        for name, stored in fired_then.items():
            report.steps.setdefault(name, StepTally(stored.stage, stored.detector)).old_fired += 1
        new = await replayer.decide(record, report)
        report.output_unchecked += int(not new.output_checked)
        if new.blocked and not old.blocked:
            report.newly_blocked.append(record.request_id)
        elif old.blocked and not new.blocked:
            report.newly_allowed.append(record.request_id)
        else:
            report.unchanged += 1
        fb = (feedback or {}).get(record.request_id)
        if fb is not None:
            labels.setdefault(fb.label, {}).setdefault(_feedback_outcome(fb, old, new), []).append(record.request_id)
    report.feedback = {label: _feedback_summary(label, groups) for label, groups in sorted(labels.items())}
    return report


def _feedback_outcome(fb: Feedback, old: Decision, new: Decision) -> str:
    if fb.label == "false_positive":
        return "now_allowed" if not new.blocked else "still_blocked"
    if fb.label == "false_negative":
        return "now_blocked" if new.blocked else "still_allowed"
    return "changed" if new.blocked != old.blocked else "unchanged"


def _feedback_summary(label: str, groups: dict[str, list[str]]) -> JSON:
    keys = {
        "false_positive": ("now_allowed", "still_blocked"),
        "false_negative": ("now_blocked", "still_allowed"),
    }.get(label, ("changed", "unchanged"))
    summary: JSON = {"total": sum(len(ids) for ids in groups.values())}
    for key in keys:
        summary[key] = len(groups.get(key, []))
    summary["ids"] = {key: groups.get(key, []) for key in keys}
    return summary


def summary_text(report: ReplayReport, *, policy: str, db: str) -> str:
    data = report.to_dict()
    counts = data["records"]
    lines = [
        f"replay of {policy} over {db}: {counts['replayed']} records"
        + (f" ({counts['skipped_error']} failed requests skipped)" if counts["skipped_error"] else ""),
        f"  newly blocked: {counts['newly_blocked']}   newly allowed: {counts['newly_allowed']}"
        f"   unchanged: {counts['unchanged']}",
    ]
    if counts["output_unchecked"]:
        lines.append(f"  ({counts['output_unchecked']} now allowed at input were never answered: output not checked)")
    if report.steps:
        width = max(len(name) for name in report.steps)
        lines.append(f"  {'step'.ljust(width)}  {'detector':<20} {'old':>5} {'new':>5}  note")
        for name, tally in report.steps.items():
            notes = []
            if not tally.in_new_policy:
                notes.append("not in new policy")
            if tally.carried_over:
                notes.append(f"{tally.carried_over} carried over")
            if tally.errors:
                notes.append(f"{tally.errors} errors")
            lines.append(
                f"  {name.ljust(width)}  {tally.detector:<20} {tally.old_fired:>5} {tally.new_fired:>5}  "
                + ", ".join(notes)
            )
    for label, summary in report.feedback.items():
        parts = ", ".join(f"{key.replace('_', ' ')} {value}" for key, value in summary.items() if key != "ids")
        lines.append(f"  feedback {label}: {parts}")
    for key in ("newly_blocked", "newly_allowed"):
        ids = data["changed"][key]
        if ids:
            shown = ", ".join(ids[:10]) + (f" ... (+{len(ids) - 10})" if len(ids) > 10 else "")
            lines.append(f"  {key.replace('_', ' ')}: {shown}")
    return "\n".join(lines)


async def replay_policy(
    policy: Policy,
    db: str,
    *,
    since: float | None = None,
    limit: int | None = None,
    carry_over: bool = True,
) -> ReplayReport:
    """Open the store, replay its records (oldest first) under `policy`, close it."""
    from guardproxy.audit.store import latest_feedback, open_store

    store = open_store(db)
    try:
        feedback = latest_feedback(store.feedback())
        return await replay_with_policy(
            policy, store.query(since=since, limit=limit), feedback=feedback, carry_over=carry_over
        )
    finally:
        store.close()


async def replay_with_policy(
    policy: Policy,
    records: Iterable[AuditRecord],
    *,
    feedback: Mapping[str, Feedback] | None = None,
    carry_over: bool = True,
) -> ReplayReport:
    """Build the policy's detectors (as the proxy does), replay `records`, close everything. Also the review
    console's draft replay."""
    from guardproxy.proxy.runtime import build_backends, build_chains

    backends = build_backends(policy)
    try:
        detectors, input_chain, output_chain = build_chains(policy, backends)
        try:
            return await replay(records, input_chain, output_chain, feedback=feedback, carry_over=carry_over)
        finally:
            for detector in detectors.values():
                await detector.aclose()
    finally:
        for backend in backends.values():
            await backend.aclose()


def run_replay(
    policy_path: Path,
    db: str,
    *,
    since: str | None,
    limit: int | None,
    out: Path | None,
    carry_over: bool = True,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """The `guardproxy replay` command. 0 = report written; 2 = bad policy, database or argument."""
    import asyncio

    from guardproxy.audit.export import EXIT_OK, EXIT_USAGE, open_existing, parse_since
    from guardproxy.errors import PolicyInvalid
    from guardproxy.policies.loader import load_policy, policy_fingerprint

    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    prog = "guardproxy replay"
    try:
        since_ts = None if since is None else parse_since(since)
        policy = load_policy(policy_path)
    except (ValueError, PolicyInvalid) as exc:
        print(f"{prog}: {exc}", file=stderr)
        return EXIT_USAGE
    if limit is not None and limit < 1:
        print(f"{prog}: --limit must be at least 1", file=stderr)
        return EXIT_USAGE
    probe = open_existing(db, prog, stderr)
    if probe is None:
        return EXIT_USAGE
    probe.close()
    report = asyncio.run(replay_policy(policy, db, since=since_ts, limit=limit, carry_over=carry_over))
    print(summary_text(report, policy=str(policy_path), db=db), file=stdout)
    if out is not None:
        document = {
            "policy": str(policy_path),
            "policy_fingerprint": policy_fingerprint(policy),
            "db": db,
            "since": since_ts,
            "limit": limit,
            "carry_over": carry_over,
            **report.to_dict(),
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(document, indent=2) + "\n")
    return EXIT_OK
