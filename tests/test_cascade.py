"""A step's `escalate:` (a cascade): texts the step's own detector scores in the band are decided by another.

Unit tests drive the chain runner with injected detectors (fixed reports, counted calls, failures); one test
runs the real app over HTTP with the openai SDK, two deterministic `custom` detectors (tests/scored_detectors.py)
and reads the audit record; the others check the policy's validation, replay and the record's round trip.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import subprocess
import sys
import textwrap
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Union, get_args, get_origin

import httpx
import openai
import pytest

from guardproxy.audit.records import AuditRecord, EscalationRecord, Outcome, Segment, StepRecord
from guardproxy.audit.search import RecordFilter
from guardproxy.audit.sqlite import SQLiteAuditStore
from guardproxy.core import Context, Detection, Span
from guardproxy.detectors.configs import DetectorConfig, checks_texts
from guardproxy.detectors.registry import DETECTOR_TYPES
from guardproxy.errors import PolicyInvalid
from guardproxy.evaluation.replay import replay
from guardproxy.policies import load_policy, parse_policy
from guardproxy.policies.chain import Chain, StepResult, compile_steps
from guardproxy.policies.schema import BlockStep, Escalation, RedactStep
from guardproxy.proxy.runtime import build_chains
from tests.audit_wait import audit_row
from tests.console_setup import create_keys, signed_in, wait_for_record
from tests.fake_upstream import FakeUpstream
from tests.policies import write_policy_with
from tests.proxy_harness import ProxyServer

REPO = Path(__file__).resolve().parents[1]
CTX = Context(request_id="t", stage="input")


@dataclass
class Fixed:
    """Reports one fixed detection and counts its calls; `fail` raises instead, `delay_s` waits first."""

    detection: Detection
    name: str = "fixed"
    scope: Literal["text", "request"] = "text"
    fail: bool = False
    delay_s: float = 0.0
    calls: list[str] = field(default_factory=list)

    async def detect(self, text: str, ctx: Context) -> Detection:
        self.calls.append(text)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail:
            raise RuntimeError("judge exploded")
        return self.detection

    async def aclose(self) -> None:
        return None


def cascade(
    primary_score: float,
    judge: Fixed,
    *,
    on_error: Literal["block", "allow"] = "block",
    band: tuple[float, float] = (0.2, 0.8),
    timeout_ms: int = 10_000,
) -> tuple[Chain, Fixed]:
    found = Detection(score=primary_score, labels=("violence",), label_scores={"violence": primary_score})
    primary = Fixed(found, name="fast")
    step = BlockStep(
        action="block",
        detector="fast",
        threshold=0.5,
        on_error=on_error,
        escalate=Escalation(detector="judge", band=band, timeout_ms=timeout_ms),
    )
    return Chain.build("input", compile_steps("input", [step], {"fast": primary, "judge": judge})), primary


async def only_result(chain: Chain, text: str = "some text") -> StepResult:
    [result] = (await chain.check(text, CTX)).results
    return result


async def test_in_the_band_the_judge_blocks_what_the_fast_detector_would_pass() -> None:
    judge = Fixed(Detection(score=0.93, labels=("S1",)))
    chain, _ = cascade(0.3, judge)  # 0.3 < threshold 0.5: alone, the step would pass it
    verdict = await chain.check("some text", CTX)
    assert judge.calls == ["some text"]
    assert verdict.blocked_by is not None
    result = verdict.blocked_by
    assert result.fired and result.labels == ("S1",)
    assert result.score == 0.3 and result.label_scores == {"violence": 0.3}  # the step's own scores are kept
    assert result.escalation is not None
    assert (result.escalation.detector_name, result.escalation.ran, result.escalation.score) == ("judge", True, 0.93)


async def test_in_the_band_the_judge_passes_what_the_fast_detector_would_block() -> None:
    judge = Fixed(Detection(score=0.1))
    chain, _ = cascade(0.7, judge)  # 0.7 >= threshold 0.5: alone, the step would block it
    verdict = await chain.check("some text", CTX)
    assert len(judge.calls) == 1
    assert verdict.blocked_by is None and not verdict.flagged
    [result] = verdict.results
    assert result.ran and not result.fired and result.labels == () and result.score == 0.7
    assert result.escalation is not None and result.escalation.score == 0.1


@pytest.mark.parametrize(("score", "blocks"), [(0.0, False), (0.19, False), (0.8, True), (1.0, True)])
async def test_outside_the_band_the_judge_is_never_called(score: float, blocks: bool) -> None:
    judge = Fixed(Detection(score=1.0), fail=True)  # would fail the step if it were asked
    chain, primary = cascade(score, judge)
    result = await only_result(chain)
    assert judge.calls == [] and len(primary.calls) == 1
    assert result.ran and result.fired is blocks and result.blocks is blocks and result.escalation is None


async def test_the_band_includes_low_and_excludes_high() -> None:
    for score, asked in ((0.2, 1), (0.7999, 1), (0.8, 0)):
        judge = Fixed(Detection(score=0.0))
        chain, _ = cascade(score, judge)
        await only_result(chain)
        assert len(judge.calls) == asked, score


@pytest.mark.parametrize(("on_error", "blocks"), [("block", True), ("allow", False)])
async def test_a_failing_judge_follows_the_steps_on_error(on_error: Literal["block", "allow"], blocks: bool) -> None:
    judge = Fixed(Detection(score=0.0), fail=True)
    chain, _ = cascade(0.5, judge, on_error=on_error)
    result = await only_result(chain)
    assert not result.ran and not result.fired and result.blocks is blocks
    assert result.score == 0.5  # what the step's own detector said is still reported
    assert result.error == "escalation to 'judge' failed: RuntimeError: judge exploded"
    assert result.escalation is not None and not result.escalation.ran and result.escalation.score is None


async def test_a_slow_judge_times_out_at_its_own_timeout_and_follows_on_error() -> None:
    judge = Fixed(Detection(score=1.0), delay_s=5.0)
    chain, _ = cascade(0.5, judge, on_error="allow", timeout_ms=50)
    result = await only_result(chain)
    assert not result.ran and not result.blocks
    assert result.error == "escalation to 'judge' failed: timeout after 50 ms"


async def test_a_failing_fast_detector_never_asks_the_judge() -> None:
    judge = Fixed(Detection(score=1.0))
    primary = Fixed(Detection(score=0.5), name="fast", fail=True)
    step = BlockStep(action="block", detector="fast", escalate=Escalation(detector="judge", band=(0.0, 1.0)))
    chain = Chain.build("input", compile_steps("input", [step], {"fast": primary, "judge": judge}))
    result = await only_result(chain)
    assert not result.ran and result.blocks and judge.calls == [] and result.escalation is None


async def test_the_judges_spans_are_acted_on_and_the_overruled_ones_stay_out_of_the_audit_copy() -> None:
    text = "call Ada at 555-0100"
    fast = Fixed(Detection(score=0.4, labels=("PERSON",), spans=(Span(5, 8, "PERSON", 0.4),)), name="fast")
    judge = Fixed(Detection(score=0.9, labels=("PHONE",), spans=(Span(12, 20, "PHONE", 0.9),)))
    step = RedactStep(
        action="redact", detector="fast", threshold=0.3, escalate=Escalation(detector="judge", band=(0.3, 0.6))
    )
    chain = Chain.build("output", compile_steps("output", [step], {"fast": fast, "judge": judge}))
    verdict = await chain.check(text, CTX)
    assert [(e.label, text[e.start : e.end]) for e in verdict.edits] == [("PHONE", "555-0100")]
    assert [text[e.start : e.end] for e in verdict.sensitive] == ["Ada", "555-0100"]


async def test_an_inline_fast_detector_with_a_waiting_judge_runs_as_a_task() -> None:
    @dataclass
    class InlineFixed(Fixed):
        inline: bool = True

    fast = InlineFixed(Detection(score=0.5), name="fast")
    step = BlockStep(action="block", detector="fast", escalate=Escalation(detector="judge", band=(0.2, 0.8)))
    [compiled] = compile_steps("input", [step], {"fast": fast, "judge": Fixed(Detection(score=0.0))})
    assert not compiled.inline  # the judge awaits: it needs a task and its timeout
    [alone] = compile_steps("input", [BlockStep(action="block", detector="fast")], {"fast": fast})
    assert alone.inline


# --- validation: every mistake is refused with file:line ---------------------------------------------------

HEAD = """\
backends:
  upstream: {type: openai}
models:
  - {name: m, backend: upstream}
detectors:
  fast: {type: injection_heuristic}
  judge: {type: blocklist, words: [bomb]}
  shape: {type: template, max_messages: 10}
input:
"""  # nine lines: the step starts on line 10


def problem(tmp_path: Path, step: str) -> str:
    path = tmp_path / "policy.yaml"
    path.write_text(HEAD + textwrap.indent(step, "  "))
    with pytest.raises(PolicyInvalid) as info:
        load_policy(path, env={})
    return info.value.message.replace(str(path), "policy.yaml")


@pytest.mark.parametrize(
    ("escalate", "message"),
    [
        (
            "{detector: judgee, band: [0.2, 0.8]}",
            "policy.yaml:10:58: input[0].escalate.detector: unknown detector 'judgee'; "
            "defined: ['fast', 'judge', 'shape']",
        ),
        (
            "{detector: fast, band: [0.2, 0.8]}",
            "policy.yaml:10:58: input[0].escalate.detector: 'fast' is the step's own detector; escalate to "
            "another (slower, better) one",
        ),
        (
            "{detector: judge, band: [0.8, 0.2]}",
            "policy.yaml:10:71: input[0].escalate.band: must be [low, high] with 0 <= low < high <= 1, got [0.8, 0.2]",
        ),
        (
            "{detector: judge, band: [0.5, 0.5]}",
            "policy.yaml:10:71: input[0].escalate.band: must be [low, high] with 0 <= low < high <= 1, got [0.5, 0.5]",
        ),
        (
            "{detector: judge, band: [0.2, 1.5]}",
            "policy.yaml:10:71: input[0].escalate.band: must be [low, high] with 0 <= low < high <= 1, got [0.2, 1.5]",
        ),
        (
            "{detector: shape, band: [0.2, 0.8]}",
            "policy.yaml:10:58: input[0].escalate.detector: 'shape' checks whole requests, not texts, so it cannot "
            "take part in a cascade",
        ),
        (
            "{detector: judge, band: [0.2]}",
            "policy.yaml:10:71: input[0].escalate.band: missing required field 1",
        ),
        (
            "{detector: judge, band: [0.2, 0.8], treshold: 0.7}",
            "policy.yaml:10:83: input[0].escalate.treshold: extra field 'treshold' not allowed; allowed fields: "
            "detector, band, threshold, timeout_ms (did you mean 'threshold'?)",
        ),
    ],
)
def test_a_bad_escalation_is_refused_with_file_and_line(tmp_path: Path, escalate: str, message: str) -> None:
    step = f"- {{detector: fast, action: block, escalate: {escalate}}}\n"
    assert problem(tmp_path, step) == message


def test_a_request_level_step_cannot_escalate(tmp_path: Path) -> None:
    step = "- {detector: shape, action: block, escalate: {detector: judge, band: [0.2, 0.8]}}\n"
    assert problem(tmp_path, step) == (
        "policy.yaml:10:16: input[0].detector: 'shape' checks whole requests, not texts, so it cannot take part "
        "in a cascade"
    )


def test_a_custom_request_level_judge_is_refused_when_the_chain_is_built() -> None:
    policy = parse_policy(
        HEAD.replace(
            "  shape: {type: template, max_messages: 10}\n",
            "  shape: {type: custom, class_path: 'tests.scored_detectors:RequestWordScores', "
            "options: {scores: {x: 1}}}\n",
        )
        + "  - {detector: fast, action: block, escalate: {detector: shape, band: [0.2, 0.8]}}\n",
        env={},
    )
    with pytest.raises(PolicyInvalid) as info:
        build_chains(policy)
    assert info.value.message == (
        "input.0.fast: a cascade needs two detectors that check texts; 'fast' escalating to 'shape' includes one "
        "that checks whole requests"
    )


def test_checks_texts_agrees_with_every_built_in_detector_class() -> None:
    base = get_args(DetectorConfig)[0]
    members = get_args(base) if get_origin(base) in (Union, types.UnionType) else (base,)
    checked = 0
    for model in members:
        [kind] = get_args(model.model_fields["type"].annotation)
        if kind == "custom":
            continue  # a custom class tells its scope when it is built
        module, attribute = DETECTOR_TYPES[kind]
        cls = getattr(importlib.import_module(module), attribute)
        assert checks_texts(model.model_construct(type=kind)) is (cls.scope == "text"), kind
        checked += 1
    assert checked == len(DETECTOR_TYPES)


# --- the audit record and replay ---------------------------------------------------------------------------


def escalated_step(*, judge_score: float | None, fired: bool) -> StepRecord:
    return StepRecord(
        name="input.0.fast",
        stage="input",
        detector="fast",
        action="block",
        ran=judge_score is not None,
        fired=fired,
        latency_ms=12.0,
        score=0.4,
        labels=("S1",) if fired else (),
        escalation=EscalationRecord(detector="judge", ran=judge_score is not None, latency_ms=11.0, score=judge_score),
    )


def test_an_escalated_step_survives_the_records_json_and_the_audit_store(tmp_path: Path) -> None:
    step = escalated_step(judge_score=0.9, fired=True)
    record = AuditRecord(
        request_id="r1",
        ts=1.0,
        client="c",
        endpoint="/v1/chat/completions",
        model="m",
        backend="b",
        stream=False,
        outcome=Outcome.BLOCKED_INPUT,
        status=400,
        latency_ms=13.0,
        steps=(
            step,
            StepRecord(name="x", stage="input", detector="y", action="flag", ran=True, fired=False, latency_ms=1),
        ),
    )
    data = record.to_dict()
    assert data["steps"][0]["escalation"] == {
        "detector": "judge",
        "ran": True,
        "score": 0.9,
        "latency_ms": 11.0,
        "error": None,
    }
    assert "escalation" not in data["steps"][1]  # steps without a cascade keep their former shape
    assert AuditRecord.from_json(record.to_json()) == record
    store = SQLiteAuditStore(tmp_path / "audit.db")
    try:
        store.write_batch([record])
        assert store.get("r1") == record
        [outline] = store.outlines(RecordFilter())  # the console's fast path decodes steps on its own
        assert outline.steps == record.steps
    finally:
        store.close()


CASCADE_POLICY = """\
backends:
  upstream: {type: openai}
models:
  - {name: m, backend: upstream}
detectors:
  fast: {type: custom, class_path: 'tests.scored_detectors:WordScores', options: {scores: {maybe: 0.4}}}
  judge: {type: custom, class_path: 'tests.scored_detectors:WordScores', options: {scores: {bomb: 0.9}, label: S9}}
input:
  - {detector: fast, action: block, escalate: {detector: judge, band: [0.2, 0.8], threshold: THRESHOLD}}
"""


def _record(request_id: str, step: StepRecord, blocked: bool) -> AuditRecord:
    return AuditRecord(
        request_id=request_id,
        ts=1.0,
        client="c",
        endpoint="/v1/chat/completions",
        model="m",
        backend="upstream",
        stream=False,
        outcome=Outcome.BLOCKED_INPUT if blocked else Outcome.ALLOWED,
        status=400 if blocked else 200,
        latency_ms=13.0,
        steps=(step,),
        input_segments=(Segment("user", 0, "maybe a [S9]" if blocked else "maybe a cake"),),
    )


async def test_replay_runs_the_cascade_and_carries_escalated_firings_over_on_the_judges_score() -> None:
    records = [
        # The judge's finding was redacted from the stored text: only carry-over can see it again.
        _record("blocked", escalated_step(judge_score=0.9, fired=True), blocked=True),
        _record("allowed", escalated_step(judge_score=0.0, fired=False), blocked=False),
    ]
    for threshold, newly_allowed in (("0.5", []), ("0.95", ["blocked"])):
        _, input_chain, output_chain = build_chains(parse_policy(CASCADE_POLICY.replace("THRESHOLD", threshold)))
        report = await replay(records, input_chain, output_chain)
        assert report.newly_allowed == newly_allowed and report.newly_blocked == []
        assert report.steps["input.0.fast"].carried_over == (1 if threshold == "0.5" else 0)


# --- the real app over HTTP ---------------------------------------------------------------------------------

DETECTORS = """\
  fast: {type: custom, class_path: 'tests.scored_detectors:WordScores', options: {scores: {maybe: 0.5, surely: 0.95}, label: unsure}}
  judge: {type: custom, class_path: 'tests.scored_detectors:WordScores', options: {scores: {bomb: 0.9}, label: S9}}
"""
STEPS = "  - {detector: fast, action: block, escalate: {detector: judge, band: [0.2, 0.8]}}\n"


def test_the_proxy_blocks_and_allows_on_the_judges_word_and_the_audit_record_shows_both_scores(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    keys = create_keys(tmp_path / "keys.db")
    auth = f"auth: {{mode: keys, keys_path: {tmp_path / 'keys.db'}}}"
    policy = write_policy_with(tmp_path, upstream.base_url, detectors=DETECTORS, input_steps=STEPS, extra=auth)
    db = tmp_path / "audit.db"
    with ProxyServer(policy) as proxy:
        client = openai.OpenAI(base_url=proxy.url + "/v1", api_key=keys.client, max_retries=0)
        # In the band (fast 0.5, which alone would block at 0.5), the judge finds a bomb: blocked by its word.
        with pytest.raises(openai.BadRequestError) as blocked:
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "maybe a bomb"}])
        # In the band, the judge finds nothing: allowed, though the fast detector alone would have blocked it.
        allowed = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "maybe a cake"}]
        )
        # Above the band: the fast detector blocks alone, the judge is not asked.
        with pytest.raises(openai.BadRequestError) as sure:
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "surely a cake"}])
        # A reviewer sees both scores on the request's console page.
        blocked_id = blocked.value.response.headers["x-guardproxy-request-id"]
        with signed_in(proxy, keys.reviewer) as console:
            wait_for_record(proxy, blocked_id, console)
            page = console.get(f"/console/events/{blocked_id}").text
        assert '<td>0.500<span class="escalation"> → judge 0.900</span></td>' in page
        metrics = httpx.get(proxy.url + "/metrics", headers={"authorization": f"Bearer {keys.admin}"}).text
    escalated = 'guardproxy_escalations_total{decision="%s",detector="judge",stage="input",step="input.0.fast"} 1.0'
    assert escalated % "fired" in metrics and escalated % "passed" in metrics and 'decision="error"' not in metrics
    body = blocked.value.body
    assert isinstance(body, dict) and body["guardproxy"] == {
        "step": "input.0.fast",
        "detector": "fast",
        "labels": ["S9"],
    }
    assert allowed.parse().choices[0].message.content == "maybe a cake"

    outcome, steps = audit_row(db, blocked.value.response.headers["x-guardproxy-request-id"])
    [step] = [s for s in steps if s["name"] == "input.0.fast"]
    assert outcome == "blocked_input"
    assert (step["fired"], step["score"], step["labels"]) == (True, 0.5, ["S9"])
    assert {k: step["escalation"][k] for k in ("detector", "ran", "score", "error")} == {
        "detector": "judge",
        "ran": True,
        "score": 0.9,
        "error": None,
    }

    outcome, steps = audit_row(db, allowed.headers["x-guardproxy-request-id"])
    [step] = [s for s in steps if s["name"] == "input.0.fast"]
    assert outcome == "allowed"
    assert (step["fired"], step["score"], step["escalation"]["score"]) == (False, 0.5, 0.0)

    outcome, steps = audit_row(db, sure.value.response.headers["x-guardproxy-request-id"])
    [step] = [s for s in steps if s["name"] == "input.0.fast"]
    assert outcome == "blocked_input" and step["score"] == 0.95 and "escalation" not in step


# --- bench/bench_cascade.py, end to end on a tiny set --------------------------------------------------------

BENCH_POLICY = """\
backends:
  upstream: {type: openai}
models:
  - {name: m, backend: upstream}
detectors:
  fast: {type: custom, class_path: 'tests.scored_detectors:WordScores', options: {scores: {maybe: 0.5, surely: 0.95}}}
input:
  - {detector: fast, action: block}
"""


def test_the_cascade_bench_measures_what_the_band_changes(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text(BENCH_POLICY)
    rows = [("maybe bad", "unsafe"), ("maybe fine", "safe"), ("surely bad", "unsafe"), ("hello", "safe")]
    rows.append(("quiet harm", "unsafe"))  # the fast detector misses it and it is outside the band
    (tmp_path / "set.jsonl").write_text("".join(json.dumps({"text": t, "label": label}) + "\n" for t, label in rows))
    out = tmp_path / "out.json"
    bench = [sys.executable, str(REPO / "bench" / "bench_cascade.py"), "--policy", str(tmp_path / "policy.yaml")]
    bench += ["--primary", "fast", "--judge-standin", "--standin-latency-ms", "0", "--only-data"]
    bench += ["--data", str(tmp_path / "set.jsonl"), "--band", "0.2", "0.8", "--out", str(out)]
    subprocess.run(bench, check=True, capture_output=True, cwd=tmp_path)
    report = json.loads(out.read_text())["configurations"]
    alone, judge, cascade = report["primary alone"], report["judge alone"], report["cascade [0.2, 0.8)"]
    assert alone["confusion"] == {"tp": 2, "fp": 1, "fn": 1, "tn": 1} and alone["escalated"] == 0
    assert judge["f1"] == 1.0  # the stand-in answers from the gold labels
    assert cascade["confusion"] == {"tp": 2, "fp": 0, "fn": 1, "tn": 2}
    assert (cascade["f1"], cascade["escalated"], cascade["primary_errors_in_band"]) == (0.8, 0.4, 0.5)
    assert cascade["sets"] == {"set": {"recall": 0.6667, "n": 5, "escalated": 0.4}}


def test_the_cascade_bench_says_what_to_pass_when_the_judge_model_is_missing(tmp_path: Path) -> None:
    bench = [sys.executable, str(REPO / "bench" / "bench_cascade.py"), "--judge-model", str(tmp_path / "none.gguf")]
    done = subprocess.run(bench, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr == (
        f"bench_cascade: judge model {tmp_path / 'none.gguf'} not found; pass --judge-model PATH, "
        "--judge-policy-yaml FILE --judge NAME, or --judge-standin\n"
    )


def test_the_shipped_policys_commented_cascade_is_valid_once_its_judge_is_declared() -> None:
    text = (REPO / "policy.yaml").read_text()
    for commented in (
        "  # guard_server: {type: openai",
        "  # llama_guard: {type: llama_guard, engine: openai",
        "  # - {detector: moderation, action: block, roles: [user, image_text], escalate:",
    ):
        assert text.count(commented) == 1, commented
        text = text.replace(commented, commented.replace("# ", "", 1))
    policy = parse_policy(text, env={})
    [step] = [s for s in policy.input if s.escalate is not None]
    assert step.escalate == Escalation(detector="llama_guard", band=(0.35, 0.65))
