"""First run: the everyday-question suite through the real proxy with the shipped policy, as a new user meets it.

    python bench/bench_first_run.py                       # policy.yaml, bench/data/first_run/benign_suite.jsonl
    python bench/bench_first_run.py --policy my.yaml --out /tmp/first_run.json
    python bench/bench_first_run.py --model runs/candidates/v3-recal --out bench/results/first_run_v3_recal.json
    python bench/bench_first_run.py --stream --data tests/data/code_answers_fresh.jsonl --out /tmp/code_stream.json

Every prompt of the suite (hand-written for this benchmark, kept out of training: see
bench/data/first_run/README.md) is sent with the official `openai` SDK to the real app (uvicorn, the shipped
policy.yaml, its real model detectors). The upstream is the test suite's fake OpenAI server scripted to answer
each prompt with the plausible answer written beside it in the suite, so the *output* steps see a real-looking
answer (code, recipes, dosages) and not an echo. Requests go one at a time.

Per prompt it records: refused on input (400 content_filter, and which step), answer stopped by an output
step (finish_reason content_filter), flagged, the prompt changed on its way upstream (anonymize), the answer
changed on its way back (redact), and every step that fired, read back from the proxy's own audit log. The
target of issue 11 is <= 1% refused.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: the test harness lives in tests/

from guardproxy.audit.records import AuditRecord, Outcome  # noqa: E402
from guardproxy.audit.store import open_store  # noqa: E402
from tests.fake_upstream import FakeUpstream, Reply  # noqa: E402
from tests.proxy_harness import ProxyServer  # noqa: E402

DEFAULT_DATA = ROOT / "bench" / "data" / "first_run" / "benign_suite.jsonl"
DEFAULT_OUT = ROOT / "bench" / "results" / "first_run.json"
MODEL = "gpt-4o-mini"


@dataclass(frozen=True, slots=True)
class Prompt:
    id: str
    category: str
    text: str
    answer: str


@dataclass(slots=True)
class Outcomes:
    """What happened to one prompt."""

    prompt: Prompt
    request_id: str | None = None
    refused_input: bool = False
    stopped_output: bool = False
    blocking_step: str | None = None
    blocking_labels: list[str] = field(default_factory=list)
    prompt_changed_upstream: bool = False
    answer_changed: bool = False
    answer_received: str | None = None
    audit: AuditRecord | None = None


def load_suite(path: Path) -> list[Prompt]:
    prompts = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
                # The code-answer sets (tests/data/code_answers_fresh.jsonl) say "question" and carry no id.
                text = r["text"] if "text" in r else r["question"]
                prompts.append(Prompt(str(r.get("id", n)), str(r.get("category", "-")), str(text), str(r["answer"])))
            except (json.JSONDecodeError, KeyError) as exc:
                raise SystemExit(f"{path}:{n}: not a suite record ({exc})") from exc
    return prompts


def _send(client: openai.OpenAI, upstream: FakeUpstream, prompt: Prompt, stream: bool) -> Outcomes:
    upstream.reset()
    upstream.enqueue(Reply(content=prompt.answer))
    out = Outcomes(prompt)
    try:
        if stream:
            return _send_streamed(client, prompt, out)
        raw = client.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": prompt.text}]
        )
    except openai.BadRequestError as exc:
        out.request_id = exc.response.headers.get("x-guardproxy-request-id")
        body = exc.body if isinstance(exc.body, dict) else {}
        meta = body.get("guardproxy") or (body.get("error") or {}).get("guardproxy") or {}
        out.refused_input = True
        out.blocking_step = f"input:{meta.get('step', '?')}"
        out.blocking_labels = list(meta.get("labels") or [])
        return out
    out.request_id = raw.headers.get("x-guardproxy-request-id")
    completion = raw.parse()
    choice = completion.choices[0]
    out.answer_received = choice.message.content
    out.stopped_output = choice.finish_reason == "content_filter"
    out.answer_changed = out.answer_received != prompt.answer
    sent = upstream.requests
    if sent:
        out.prompt_changed_upstream = sent[-1].body["messages"][-1]["content"] != prompt.text
    return out


def _send_streamed(client: openai.OpenAI, prompt: Prompt, out: Outcomes) -> Outcomes:
    """The answer streamed: the relay checks it window by window, so an output step sees growing prefixes of
    it (a partial code block among them), and any window it stops ends the stream with content_filter."""
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": prompt.text}], stream=True
    )
    out.request_id = raw.headers.get("x-guardproxy-request-id")
    parts: list[str] = []
    finish: str | None = None
    for chunk in raw.parse():
        for choice in chunk.choices:
            parts.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    out.answer_received = "".join(parts)
    out.stopped_output = finish == "content_filter"
    out.answer_changed = out.answer_received != prompt.answer
    return out


def _attach_audit(results: list[Outcomes], audit_path: Path) -> None:
    store = open_store(str(audit_path))
    try:
        for r in results:
            if r.request_id:
                r.audit = store.get(r.request_id)
    finally:
        store.close()


def _pct(n: int, d: int) -> float:
    return round(100.0 * n / d, 2) if d else 0.0


def served_copy(policy: Path, out: Path, model: Path | None, fake_backends: bool) -> Path:
    """A copy of the policy as the bench serves it.

    `model`: the classifier detectors serve this directory (a candidate) instead of the shipped one.
    `fake_backends`: every model is answered by the fake upstream (`UPSTREAM_URL`), so a policy written for a
    local model (policy.local.yaml) is measured on its guard alone, with the suite's answers.
    """
    tree = yaml.safe_load(policy.read_text(encoding="utf-8"))
    if model is not None:
        for config in tree.get("detectors", {}).values():
            if config.get("type") in {"injection_classifier", "moderation_classifier"}:
                config["model_path"] = str(model.resolve())
    if fake_backends:
        tree["backends"] = {"fake": {"type": "openai", "base_url": "${UPSTREAM_URL}", "api_key": "k"}}
        tree["models"] = [{"name": m["name"], "backend": "fake"} for m in tree["models"]]
    out.write_text(yaml.safe_dump(tree, sort_keys=False), encoding="utf-8")
    return out


def summarise(
    results: list[Outcomes],
    policy: Path,
    data: Path,
    wall_s: float,
    model: Path | None = None,
    fake_backends: bool = False,
    stream: bool = False,
) -> dict[str, Any]:
    n = len(results)
    refused = [r for r in results if r.refused_input or r.stopped_output]
    fired: Counter[str] = Counter()
    fired_labels: dict[str, Counter[str]] = {}
    flagged = 0
    missing_audit = 0
    step_errors: Counter[str] = Counter()  # a failed or timed-out step blocks (fail closed): not a detector verdict
    for r in results:
        if r.audit is None:
            missing_audit += 1
            continue
        flagged += r.audit.outcome == Outcome.FLAGGED
        for step in r.audit.steps:
            if step.error:
                step_errors[f"{step.stage}:{step.name}:{step.error}"] += 1
            if step.fired:
                key = f"{step.stage}:{step.name}({step.detector},{step.action})"
                fired[key] += 1
                fired_labels.setdefault(key, Counter()).update(step.labels)
        if r.stopped_output and r.blocking_step is None:
            blocking = [s for s in r.audit.steps if s.fired and s.action == "block" and str(s.stage) == "output"]
            if blocking:
                r.blocking_step = f"output:{blocking[0].name}"
                r.blocking_labels = list(blocking[0].labels)
    by_category: dict[str, dict[str, Any]] = {}
    for cat in sorted({r.prompt.category for r in results}):
        part = [r for r in results if r.prompt.category == cat]
        bad = sum(r.refused_input or r.stopped_output for r in part)
        by_category[cat] = {"n": len(part), "refused": bad, "refused_pct": _pct(bad, len(part))}
    command = (
        f"python bench/bench_first_run.py --policy {_rel(policy)}"
        + (f" --model {_rel(model)}" if model else "")
        + (" --fake-backends" if fake_backends else "")
        + (" --stream" if stream else "")
        + (f" --data {_rel(data)}" if data != DEFAULT_DATA else "")
    )
    return {
        "command": command,
        "policy": _rel(policy),
        "model": _rel(model) if model else "as the policy says (shipped: models/guard-classifier, newest version)",
        "data": _rel(data),
        "setup": "real proxy (uvicorn) + official openai SDK; fake upstream answers each prompt with the suite's "
        f"hand-written answer; {'streamed' if stream else 'non-streamed'}; one request at a time",
        "prompts": n,
        "refused": len(refused),
        "refused_pct": _pct(len(refused), n),
        "refused_on_input": sum(r.refused_input for r in results),
        "answer_stopped_on_output": sum(r.stopped_output for r in results),
        "flagged": flagged,
        "prompt_changed_upstream": sum(r.prompt_changed_upstream for r in results),
        "answer_changed_not_stopped": sum(r.answer_changed and not r.stopped_output for r in results),
        "steps_fired": {
            k: {"n": v, "pct": _pct(v, n), "labels": dict(fired_labels[k].most_common())}
            for k, v in sorted(fired.items(), key=lambda kv: -kv[1])
        },
        "by_category": by_category,
        "refused_prompts": [
            {
                "id": r.prompt.id,
                "category": r.prompt.category,
                "text": r.prompt.text,
                "step": r.blocking_step,
                "labels": r.blocking_labels,
            }
            for r in refused
        ],
        "changed_answers": [
            {"id": r.prompt.id, "sent": r.prompt.answer, "received": r.answer_received}
            for r in results
            if r.answer_changed and not r.stopped_output
        ],
        "audit_records_missing": missing_audit,
        "step_errors": dict(step_errors),
        "wall_s": round(wall_s, 1),
    }


def _rel(path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


def run(
    policy: Path, data: Path, model: Path | None = None, fake_backends: bool = False, stream: bool = False
) -> dict[str, Any]:
    prompts = load_suite(data)
    results: list[Outcomes] = []
    with tempfile.TemporaryDirectory(prefix="first-run-") as tmp, FakeUpstream() as upstream:
        changed = model is not None or fake_backends
        served = served_copy(policy, Path(tmp) / "policy.yaml", model, fake_backends) if changed else policy
        os.environ["UPSTREAM_URL"] = upstream.base_url
        cwd = Path.cwd()
        os.chdir(tmp)  # the shipped policy writes ./guardproxy-audit.db
        started = time.monotonic()
        try:
            with ProxyServer(served.resolve()) as proxy:
                client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="k", max_retries=0)
                for i, prompt in enumerate(prompts, 1):
                    results.append(_send(client, upstream, prompt, stream))
                    if i % 50 == 0:
                        print(f"{i}/{len(prompts)}", file=sys.stderr)
            # Leaving the server flushes its audit sink.
            _attach_audit(results, Path(tmp) / "guardproxy-audit.db")
        finally:
            os.chdir(cwd)
        wall = time.monotonic() - started
    return summarise(results, policy, data, wall, model, fake_backends, stream)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", type=Path, default=ROOT / "policy.yaml")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--model", type=Path, help="serve this model directory in the classifier detectors (a candidate)"
    )
    parser.add_argument(
        "--fake-backends",
        action="store_true",
        help="answer every model from the fake upstream (to measure policy.local.yaml's guard without its model)",
    )
    parser.add_argument(
        "--stream", action="store_true", help="stream every answer (the relay checks it window by window)"
    )
    args = parser.parse_args(argv)
    report = run(args.policy.resolve(), args.data.resolve(), args.model, args.fake_backends, args.stream)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(
        f"{report['prompts']} prompts: {report['refused']} refused ({report['refused_pct']}%; "
        f"{report['refused_on_input']} on input, {report['answer_stopped_on_output']} answers stopped), "
        f"{report['flagged']} flagged, {report['answer_changed_not_stopped']} answers altered; -> {args.out}"
    )
    for step, v in report["steps_fired"].items():
        print(f"  {step}: {v['n']} ({v['pct']}%) {v['labels']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
