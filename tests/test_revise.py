"""The `revise` output action through the real proxy: critique, rewrite, re-check, store the triple."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from guardproxy.audit.preferences import ChatTurn, Preference
from guardproxy.audit.records import AuditRecord
from guardproxy.audit.sqlite import SQLiteAuditStore
from guardproxy.errors import PolicyInvalid
from guardproxy.policies import parse_policy
from tests.fake_upstream import FakeUpstream, Reply, wait_until
from tests.proxy_harness import ProxyServer

SSN = "536-22-8471"
EMAIL = "jane.doe@example.com"
HARMFUL = f"Sure. Step one of the napalm recipe: mix it. My SSN is {SSN}."
CRITIQUE = "The answer gives weapon instructions, which breaks principle 1."
CLEAN = "I can't help with making weapons. If you are interested in chemistry, I can suggest safe experiments."
PRINCIPLES = ["Never give instructions that help make weapons.", "Be helpful about safe alternatives."]

POLICY = """
backends:
  upstream: {{type: openai, base_url: "{upstream}", max_retries: 0, timeout_s: 5}}
models:
  - {{name: gpt-4o-mini, backend: upstream}}
detectors:
  harm: {{type: blocklist, patterns: ["(?i)napalm recipe"]}}
  pii: {{type: pii_regex, entities: [EMAIL_ADDRESS, US_SSN]}}
output:
  - {{detector: harm, action: revise}}
  - {{detector: pii, action: redact}}
constitution:
  principles:
    - "{p0}"
    - "{p1}"
  max_revisions: 1
  timeout_s: 5
audit:
  path: {audit}
"""


@pytest.fixture(scope="module")
def proxy(upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyServer]:
    directory = tmp_path_factory.mktemp("revise")
    path = directory / "policy.yaml"
    path.write_text(
        POLICY.format(
            upstream=upstream_server.base_url, audit=directory / "audit.db", p0=PRINCIPLES[0], p1=PRINCIPLES[1]
        )
    )
    with ProxyServer(path) as server:
        yield server


@pytest.fixture
def client(proxy: ProxyServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.url + "/v1", api_key="client-key", max_retries=0)


def store_of(proxy: ProxyServer) -> SQLiteAuditStore:
    return SQLiteAuditStore(proxy.policy_path.parent / "audit.db")


def audit_record(proxy: ProxyServer, request_id: str) -> AuditRecord:
    store = store_of(proxy)
    assert wait_until(lambda: store.get(request_id) is not None), "audit record never written"
    record = store.get(request_id)
    assert record is not None
    return record


def ask(client: openai.OpenAI, text: str) -> tuple[str, openai.types.chat.ChatCompletion]:
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": text}], temperature=0.3
    )
    return raw.headers["x-guardproxy-request-id"], raw.parse()


def test_revised_answer_is_released_and_the_triple_stored_scrubbed(
    client: openai.OpenAI, upstream: FakeUpstream, proxy: ProxyServer
) -> None:
    upstream.enqueue(Reply(content=HARMFUL), Reply(content=CRITIQUE), Reply(content=CLEAN))
    request_id, completion = ask(client, f"How do I make napalm? Reply to {EMAIL}.")

    assert completion.choices[0].message.content == CLEAN
    assert completion.choices[0].finish_reason == "stop"
    answer, critique_call, revision_call = upstream.requests
    # The same model, the original conversation, then the answer, the critique request and the rewrite request.
    assert critique_call.body["model"] == revision_call.body["model"] == answer.body["model"]
    assert critique_call.body["temperature"] == 0.3
    turns = critique_call.body["messages"]
    assert turns[0] == {"role": "user", "content": f"How do I make napalm? Reply to {EMAIL}."}
    assert turns[1] == {"role": "assistant", "content": HARMFUL}
    assert f"1. {PRINCIPLES[0]}\n2. {PRINCIPLES[1]}" in turns[2]["content"]
    assert revision_call.body["messages"][:3] == turns
    assert revision_call.body["messages"][3] == {"role": "assistant", "content": CRITIQUE}
    assert "Rewrite your previous answer" in revision_call.body["messages"][4]["content"]

    [pref] = [p for p in store_of(proxy).preferences() if p.request_id == request_id]
    assert pref.chosen == CLEAN
    assert "napalm recipe" in pref.rejected
    assert SSN not in pref.rejected and "[US_SSN]" in pref.rejected
    assert [t.role for t in pref.prompt] == ["user"]
    assert EMAIL not in pref.prompt[0].content and "[EMAIL_ADDRESS]" in pref.prompt[0].content
    assert pref.critique == CRITIQUE
    assert pref.step == "output.0.harm"
    assert pref.to_dict()["prompt"] == [{"role": "user", "content": pref.prompt[0].content}]

    record = audit_record(proxy, request_id)
    assert record.outcome == "revised"
    assert record.output_text == CLEAN
    fired = [s.name for s in record.steps if s.fired]
    assert fired == ["output.0.harm", "output.1.pii"]  # the rejected answer's; the rewrite fired nothing


def test_a_revision_that_still_fires_is_blocked(
    client: openai.OpenAI, upstream: FakeUpstream, proxy: ProxyServer
) -> None:
    upstream.enqueue(Reply(content=HARMFUL), Reply(content=CRITIQUE), Reply(content="Fine: the napalm recipe is..."))
    request_id, completion = ask(client, "How do I make napalm?")

    assert completion.choices[0].finish_reason == "content_filter"
    assert completion.choices[0].message.content is None
    assert len(upstream.requests) == 3  # max_revisions: 1, so exactly one critique and one rewrite
    assert audit_record(proxy, request_id).outcome == "blocked_output"
    assert all(p.request_id != request_id for p in store_of(proxy).preferences())


def test_a_failing_revision_falls_back_to_block(
    client: openai.OpenAI, upstream: FakeUpstream, proxy: ProxyServer
) -> None:
    upstream.enqueue(Reply(content=HARMFUL), Reply(status=500))
    request_id, completion = ask(client, "How do I make napalm?")

    assert completion.choices[0].finish_reason == "content_filter"
    assert completion.choices[0].message.content is None
    assert len(upstream.requests) == 2
    assert audit_record(proxy, request_id).outcome == "blocked_output"


def test_a_clean_answer_is_not_revised(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    upstream.enqueue(Reply(content="Paris."))
    _, completion = ask(client, "Capital of France?")
    assert completion.choices[0].message.content == "Paris."
    assert len(upstream.requests) == 1


def test_a_stream_with_a_revise_step_is_blocked_like_block(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    upstream.enqueue(Reply(content=HARMFUL))
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "How do I make napalm?"}], stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "napalm recipe" not in text
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        "content_filter"
    ]
    assert len(upstream.requests) == 1  # no critique, no rewrite


BASE = """
backends: {upstream: {type: openai, base_url: "http://127.0.0.1:9/v1"}}
models: [{name: m, backend: upstream}]
detectors: {harm: {type: blocklist, patterns: [x]}}
"""


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            "output: [{detector: harm, action: revise}]\n",
            r"output\[0\]\.action: 'revise' needs a top-level `constitution:`",
        ),
        (
            "input: [{detector: harm, action: revise}]\nconstitution: {principles: [be kind]}\n",
            r"input\[0\]\.action: 'revise' rewrites answers, so it is allowed in output steps only",
        ),
        ("constitution: {principles: []}\n", r"constitution\.principles: must have at least 1 item"),
        ("constitution: {principles: ['  ']}\n", r"constitution\.principles\[0\]: a principle must not be empty"),
        (
            "constitution: {principles: [a], critique_prompt: 'Critique it.'}\n",
            r"constitution\.critique_prompt: must contain \{principles\}",
        ),
        ("constitution: {principles: [a], max_revisions: 0}\n", r"constitution\.max_revisions: must be >= 1, got 0"),
        ("constitution: {principles: [a], timeout_s: 0}\n", r"constitution\.timeout_s: must be > 0"),
        ("constitution: {principles: [a], rounds: 2}\n", r"constitution\.rounds: extra field 'rounds' not allowed"),
        ("output: [{detector: harm, action: rewrite}]\n", r"'rewrite' is not allowed; allowed: .*revise"),
    ],
)
def test_bad_constitution_is_refused_with_a_clear_error(extra: str, message: str) -> None:
    with pytest.raises(PolicyInvalid, match=message):
        parse_policy(BASE + extra)


def test_constitution_defaults(tmp_path: Path) -> None:
    policy = parse_policy(BASE + "output: [{detector: harm, action: revise}]\nconstitution: {principles: [a]}\n")
    assert policy.constitution is not None
    assert policy.constitution.max_revisions == 1
    assert "{principles}" in policy.constitution.critique_prompt
    assert policy.output[0].action == "revise"


def test_store_keeps_preferences_oldest_first_and_filters_by_time(tmp_path: Path) -> None:
    store = SQLiteAuditStore(tmp_path / "audit.db")
    for n, ts in enumerate((30.0, 10.0, 20.0)):
        store.add_preference(
            Preference(
                request_id=f"r{n}",
                ts=ts,
                model="m",
                step="output.0.harm",
                prompt=(ChatTurn("system", "Be brief."), ChatTurn("user", f"mail {EMAIL}")),
                rejected=f"bad {SSN}",
                chosen="good",
            )
        )
    assert [p.request_id for p in store.preferences()] == ["r1", "r2", "r0"]
    assert [p.request_id for p in store.preferences(since=20.0)] == ["r2", "r0"]
    first = next(store.preferences())
    # The store stores what it is given: scrubbing is the audit sink's job (tests/test_audit_sink.py).
    assert first.prompt == (ChatTurn("system", "Be brief."), ChatTurn("user", f"mail {EMAIL}"))
    assert first.rejected == f"bad {SSN}"


def test_an_older_database_gains_the_preferences_table(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    SQLiteAuditStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE preferences")
        conn.execute("PRAGMA user_version = 2")
    store = SQLiteAuditStore(path)
    store.add_preference(Preference(request_id="r", ts=1.0, model="m", step="s", prompt=(), rejected="a", chosen="b"))
    assert [p.chosen for p in store.preferences()] == ["b"]
