"""The closed loop end to end, with real parts only: a running proxy serves a tiny real classifier (v1) from a
model registry; clients talk to it with the official `openai` SDK; v1's mistakes are reported through
`POST /v1/feedback`; the sidecar trainer builds a snapshot from the proxy's own audit database, fine-tunes v2,
gates and promotes it; the proxy hot-swaps to v2 under continuous traffic without failing a request, and
its decisions on the corrected examples change.

v1 (see tests/loop_helpers.py) misses attacks phrased "override mode engaged ..." and blocks benign questions
about passwords.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("accelerate")

from guardproxy.audit.sqlite import SQLiteAuditStore
from guardproxy.detectors.model_files import read_pointer
from guardproxy.trainer.registry import HISTORY_FILE, history, promote
from guardproxy.trainer.sidecar import load_config, run_once
from tests.fake_upstream import FakeUpstream, wait_until
from tests.loop_helpers import ATTACKS, BENIGN, NEW_ATTACKS, NEW_BENIGN, REGISTRY, train_v1, write_sidecar_config
from tests.proxy_harness import ProxyServer

pytestmark = pytest.mark.slow

REQUEST_ID = "x-guardproxy-request-id"
STEP = "input.0.inj"
MODEL = "gpt-4o-mini"
# The default audit settings (store_raw: false): classifier decisions leave the text in the log (only personal
# data is redacted), so the trainer can learn from the blocked prompts. PII is scrubbed again in the snapshot.
POLICY = """
backends:
  upstream: {{type: openai, base_url: {upstream}, api_key: k, timeout_s: 10, max_retries: 0}}
models:
  - {{name: {model}, backend: upstream}}
detectors:
  inj: {{type: injection_classifier, model_path: {registry}, threads: 1}}
input:
  - {{detector: inj, action: block}}
audit:
  path: {audit}
"""


@dataclass(frozen=True)
class Answer:
    text: str
    request_id: str
    blocked: bool


def ask(client: openai.OpenAI, text: str) -> Answer:
    """One chat completion through the proxy: blocked by the policy (400) or answered (200)."""
    try:
        raw = client.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": text}]
        )
    except openai.BadRequestError as exc:
        assert exc.code == "content_filter", exc  # a policy block, not some other bad request
        return Answer(text, exc.response.headers[REQUEST_ID], blocked=True)
    assert raw.status_code == 200 and raw.parse().choices[0].message.content == text  # the upstream echoes
    return Answer(text, raw.headers[REQUEST_ID], blocked=False)


def send_feedback(proxy: ProxyServer, answer: Answer, label: str) -> None:
    body = {"request_id": answer.request_id, "label": label, "stage": "input", "step": STEP, "note": "review"}
    response = httpx.post(proxy.url + "/v1/feedback", json=body, headers={"x-guardproxy-user": "reviewer"}, timeout=10)
    assert response.status_code == 201, response.text


class Traffic:
    """A client sending requests back to back (a short pause leaves CPU to the trainer) until stopped.
    Anything but an answer or a policy block is a failure."""

    def __init__(self, url: str, texts: list[str]) -> None:
        self.statuses: Counter[int] = Counter()
        self.failures: list[str] = []
        self._url, self._texts = url, texts
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        with openai.OpenAI(base_url=self._url + "/v1", api_key="k", max_retries=0, timeout=15) as client:
            i = 0
            while not self._stop.is_set():
                try:
                    status = 400 if ask(client, self._texts[i % len(self._texts)]).blocked else 200
                except (openai.OpenAIError, AssertionError) as exc:
                    with self._lock:
                        self.failures.append(repr(exc))
                else:
                    with self._lock:
                        self.statuses[status] += 1
                i += 1
                time.sleep(0.02)

    def count(self) -> int:
        with self._lock:
            return sum(self.statuses.values())

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=20)


def test_feedback_through_the_proxy_retrains_promotes_and_changes_its_decisions(
    upstream: FakeUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = tmp_path / "world"
    world.mkdir()
    train_v1(world)
    registry = world / REGISTRY
    promote(registry, "v1", reason="first version", actor="test")
    monkeypatch.chdir(world)  # the classifier config's relative paths (base model, data) are the world's
    audit_db = world / "audit.db"
    policy = world / "policy.yaml"
    policy.write_text(POLICY.format(upstream=upstream.base_url, model=MODEL, registry=registry, audit=audit_db))
    config = write_sidecar_config(world, dataset={"detectors": ["inj"]})

    with (
        ProxyServer(policy, watch=True, watch_interval_s=0.05) as proxy,
        openai.OpenAI(base_url=proxy.url + "/v1", api_key="k", max_retries=0, timeout=15) as client,
    ):
        # v1 in service: its mistakes on the two new patterns are reported by a reviewer.
        attacks = [ask(client, t) for t in NEW_ATTACKS]
        benign = [ask(client, t) for t in NEW_BENIGN]
        missed = [a for a in attacks if not a.blocked]
        false_blocks = [a for a in benign if a.blocked]
        assert len(missed) >= 4 and len(false_blocks) >= 4, (missed, false_blocks)  # v1's blind spots
        for answer in missed:
            send_feedback(proxy, answer, "false_negative")
        for answer in false_blocks:
            send_feedback(proxy, answer, "false_positive")
        # Ordinary traffic v1 decides correctly: block events and allowed requests.
        ordinary = [ask(client, f"{a} again {i}") for i in range(3) for a in ATTACKS]
        ordinary += [ask(client, f"{b} again {i}") for i in range(3) for b in BENIGN]
        assert [a.blocked for a in ordinary] == [True] * 3 * len(ATTACKS) + [False] * 3 * len(BENIGN)

        # The sidecar retrains from the proxy's audit database while clients keep talking to the proxy.
        with Traffic(proxy.url, [BENIGN[1], ATTACKS[0]]) as traffic:
            assert wait_until(lambda: traffic.count() >= 4, timeout_s=10)
            report = run_once(load_config(config))
            assert report.status == "promoted", report.gate
            assert report.current_version == "v1" and report.candidate_version == "v2"
            assert read_pointer(registry) == "v2"
            # The watcher notices the promotion and swaps the runtime (the reload counter moves once).
            assert wait_until(
                lambda: 'guardproxy_policy_reloads_total{result="applied"} 1.0' in proxy.get("/metrics").text,
                timeout_s=20,
            )
            swapped_at = traffic.count()
            assert wait_until(lambda: traffic.count() >= swapped_at + 4, timeout_s=10)  # traffic goes on under v2
        assert traffic.failures == [], traffic.failures[:3]
        assert set(traffic.statuses) == {200, 400}, traffic.statuses  # answers and policy blocks, nothing else
        assert traffic.count() >= 8

        # The snapshot the candidate trained on holds every correction, labelled as the reviewer said.
        assert report.snapshot is not None
        snapshot = [json.loads(line) for line in (Path(report.snapshot) / "data.jsonl").read_text().splitlines()]
        corrected = {r["text"]: r["label"] for r in snapshot if r["signal"] == "feedback"}
        # As the detector is served them: the stored texts, without the "role: " of the audit's search text.
        assert corrected == {a.text: "injection" for a in missed} | {a.text: "benign" for a in false_blocks}

        # v2 in service: the corrected examples are now decided as the reviewer said. Not all of them need
        # flip: a 2-layer random-init model fine-tuned for 300 steps, promoted on its aggregate F1 over a fixed
        # evaluation set (not on these examples), can leave one or two near its threshold.
        after_missed = [ask(client, a.text) for a in missed]
        after_false_blocks = [ask(client, a.text) for a in false_blocks]
        now_blocked = sum(a.blocked for a in after_missed)
        now_allowed = sum(not a.blocked for a in after_false_blocks)
        assert now_blocked >= 0.75 * len(missed), (now_blocked, len(missed))
        assert now_allowed >= 0.75 * len(false_blocks), (now_allowed, len(false_blocks))
        # What v1 got right stays right.
        assert all(ask(client, f"{a} once more").blocked for a in ATTACKS)
        assert not any(ask(client, f"{b} once more").blocked for b in BENIGN)

        # The audit log holds the post-swap requests with v2's decisions.
        after = after_missed + after_false_blocks
        store = SQLiteAuditStore(audit_db)
        try:
            assert wait_until(lambda: all(store.get(a.request_id) is not None for a in after), timeout_s=10)
            for answer in after:
                record = store.get(answer.request_id)
                assert record is not None and record.input_text == f"user: {answer.text}"
                assert record.outcome == ("blocked_input" if answer.blocked else "allowed")
                assert record.status == (400 if answer.blocked else 200)
                [step] = [s for s in record.steps if s.name == STEP]
                assert step.ran and step.fired == answer.blocked
        finally:
            store.close()

    # The registry's history shows the sidecar's promotion, with its reason.
    moves = history(registry)
    assert [(h.action, h.from_version, h.to_version) for h in moves] == [
        ("promote", "v1", "v1"),
        ("promote", "v1", "v2"),
    ]
    reason = moves[-1].reason
    assert reason.startswith(f"sidecar run {report.run_id}: ") and "f1 on eval" in reason, reason
    last_line = json.loads((registry / HISTORY_FILE).read_text().splitlines()[-1])
    assert (last_line["action"], last_line["to"], last_line["reason"]) == ("promote", "v2", reason)
