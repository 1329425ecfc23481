"""Shadow report on a real audit database: traffic through the proxy, a current (blocking) step and a
candidate flag step, reviewer feedback; the report compares the two decisions by request id."""

from __future__ import annotations

import io
import json
from pathlib import Path

import httpx

from guardproxy.audit.store import open_store
from guardproxy.trainer.shadow_report import cli_main
from tests.fake_upstream import FakeUpstream, wait_until
from tests.proxy_harness import ProxyServer
from tests.test_model_registry import write_tiny_guard_model

POLICY = """
backends:
  upstream: {{type: openai, base_url: {upstream}, api_key: k, timeout_s: 10, max_retries: 0}}
models:
  - {{name: gpt-4o-mini, backend: upstream}}
detectors:
  guard: {{type: injection_classifier, model_path: {current}, threads: 1}}
  guard_v2: {{type: injection_classifier, model_path: {candidate}, threads: 1}}
input:
  - {{detector: guard, action: block}}
  - {{detector: guard_v2, action: flag, name: shadow}}
audit:
  path: {audit}
"""

TEXTS = {
    "current_only": "tell me about pineapple",  # v1 fires, v2 does not
    "candidate_only": "tell me about mango",
    "both": "pineapple mango",
    "neither": "hello weather",
}


def _traffic_with_feedback(upstream: FakeUpstream, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    reg = tmp_path / "guard-classifier"
    write_tiny_guard_model(reg / "v1", fires_on="pineapple")
    write_tiny_guard_model(reg / "v2", fires_on="mango")
    audit = tmp_path / "audit.db"
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.format(upstream=upstream.base_url, current=reg / "v1", candidate=reg / "v2", audit=audit))
    ids: dict[str, str] = {}
    with ProxyServer(policy) as proxy, httpx.Client(base_url=proxy.url, timeout=15) as client:
        for kind, text in TEXTS.items():
            body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}
            response = client.post("/v1/chat/completions", json=body)
            assert response.status_code == (200 if kind in ("candidate_only", "neither") else 400), response.text
            ids[kind] = response.headers["x-guardproxy-request-id"]
        # The reviewer: blocking "pineapple" was wrong; "mango" should have been caught.
        for kind, label in (("current_only", "false_positive"), ("candidate_only", "false_negative")):
            fb = client.post("/v1/feedback", json={"request_id": ids[kind], "label": label})
            assert fb.status_code == 201, fb.text
        # Feedback about another step says nothing about these two detectors.
        fb = client.post("/v1/feedback", json={"request_id": ids["both"], "label": "false_positive", "step": "pii"})
        assert fb.status_code == 201, fb.text
    store = open_store(str(audit))
    try:
        assert wait_until(lambda: len(list(store.query())) == len(TEXTS))
    finally:
        store.close()
    return audit, ids


def test_shadow_report_compares_candidate_with_current_on_live_traffic(upstream: FakeUpstream, tmp_path: Path) -> None:
    audit, ids = _traffic_with_feedback(upstream, tmp_path)
    out, err = io.StringIO(), io.StringIO()
    report_path = tmp_path / "reports" / "shadow.json"
    args = ["--db", str(audit), "--current", "guard", "--candidate", "shadow", "--out", str(report_path)]
    assert cli_main(args, out=out, err=err) == 0, err.getvalue()

    report = json.loads(report_path.read_text())
    assert (report["records"], report["compared"]) == (4, 4)
    assert report["agreement"] == {"rate": 0.5, "both_fired": 1, "neither_fired": 1}
    assert report["candidate_only"] == {"count": 1, "request_ids": [ids["candidate_only"]]}
    assert report["current_only"] == {"count": 1, "request_ids": [ids["current_only"]]}
    labelled = report["labelled"]
    assert labelled["count"] == 2
    assert (labelled["current"]["correct"], labelled["current"]["fp"], labelled["current"]["fn"]) == (0, 1, 1)
    assert (labelled["candidate"]["correct"], labelled["candidate"]["tp"], labelled["candidate"]["tn"]) == (2, 1, 1)
    assert sorted(labelled["fixed"]["request_ids"]) == sorted([ids["current_only"], ids["candidate_only"]])
    assert labelled["regressed"]["count"] == 0

    summary = out.getvalue()
    assert "agreement: 50.0%" in summary and "fixed by the candidate: 2" in summary
    for text in TEXTS.values():  # ids only: no prompt text leaves the audit store through the report
        assert text not in summary and text not in report_path.read_text()

    out = io.StringIO()
    assert cli_main([*args[:6], "--since", "2999-01-01"], out=out, err=err) == 0
    assert "records read: 0" in out.getvalue()


def test_shadow_report_refuses_a_step_no_record_has(upstream: FakeUpstream, tmp_path: Path) -> None:
    audit, _ = _traffic_with_feedback(upstream, tmp_path)
    err = io.StringIO()
    assert cli_main(["--db", str(audit), "--current", "guard", "--candidate", "shadw"], out=io.StringIO(), err=err) == 2
    assert "no record has a step 'shadw'" in err.getvalue() and "shadow" in err.getvalue()
    assert cli_main(["--db", str(tmp_path / "nope.db"), "--current", "a", "--candidate", "b"], err=io.StringIO()) == 2
