"""The review console over real HTTP (issue 14): sign-in, sessions, CSRF, escaping, no raw PII, labels stored
as POST /v1/feedback stores them, filters, the policy draft, export and import. The browser flow is in
tests/test_console_browser.py."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from guardproxy.audit.store import open_store
from tests.console_setup import (
    EMAIL,
    INJECTION,
    SCRIPT,
    Keys,
    allowed_request,
    blocked_request,
    csrf_of,
    keyed_policy,
    signed_in,
    wait_for_record,
)
from tests.fake_upstream import FakeUpstream
from tests.policies import write_policy
from tests.proxy_harness import ProxyServer

PAGES = (
    "/console",
    "/console/events",
    "/console/events/nope",
    "/console/policy",
    "/console/models",
    "/console/export",
    "/console/export.csv",
    "/console/export.jsonl",
    "/console/redteam",
)


@pytest.fixture(scope="module")
def console(
    tmp_path_factory: pytest.TempPathFactory, upstream_server: FakeUpstream
) -> Iterator[tuple[ProxyServer, Keys, Path]]:
    directory = tmp_path_factory.mktemp("console")
    policy, keys = keyed_policy(directory, upstream_server.base_url)
    with ProxyServer(policy) as proxy:
        yield proxy, keys, directory


@pytest.fixture
def reviewer(console: tuple[ProxyServer, Keys, Path]) -> Iterator[httpx.Client]:
    proxy, keys, _ = console
    with signed_in(proxy, keys.reviewer) as client:
        yield client


def test_anonymous_users_are_sent_to_sign_in_on_every_page(console: tuple[ProxyServer, Keys, Path]) -> None:
    proxy, _, _ = console
    for path in PAGES:
        response = httpx.get(proxy.url + path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"] == "/console/login"
    forged = httpx.post(proxy.url + "/console/policy", data={"draft": "x"}, headers={"origin": proxy.url})
    assert forged.status_code == 303  # no session: nothing runs


def test_client_keys_and_wrong_keys_cannot_sign_in(console: tuple[ProxyServer, Keys, Path]) -> None:
    proxy, keys, _ = console
    for secret, message in (
        (keys.client, "needs a reviewer or admin key"),
        ("gp-wrong", "Incorrect, revoked or expired"),
    ):
        with httpx.Client(base_url=proxy.url) as client:
            page = client.get("/console/login")
            response = client.post(
                "/console/login", data={"csrf": csrf_of(page.text), "secret": secret}, headers={"origin": proxy.url}
            )
            assert response.status_code == 200  # the form again, with the message
            assert message in response.text
            assert "gp_console=" not in response.headers.get("set-cookie", "")
            assert client.get("/console", follow_redirects=False).status_code == 303


def test_session_cookie_is_httponly_and_samesite_strict(console: tuple[ProxyServer, Keys, Path]) -> None:
    proxy, keys, _ = console
    with httpx.Client(base_url=proxy.url) as client:
        page = client.get("/console/login")
        response = client.post(
            "/console/login", data={"csrf": csrf_of(page.text), "secret": keys.reviewer}, headers={"origin": proxy.url}
        )
        cookies = response.headers.get_list("set-cookie")
        session = next(c for c in cookies if c.startswith("gp_console="))
        attributes = {part.strip().lower() for part in session.split(";")}
        assert "httponly" in attributes
        assert "samesite=strict" in attributes
        assert "path=/console" in attributes
        assert "content-security-policy" in client.get("/console").headers


def test_sign_in_form_refuses_cross_site_posts(console: tuple[ProxyServer, Keys, Path]) -> None:
    proxy, keys, _ = console
    with httpx.Client(base_url=proxy.url) as client:
        page = client.get("/console/login")
        token = csrf_of(page.text)
        evil = client.post(
            "/console/login", data={"csrf": token, "secret": keys.reviewer}, headers={"origin": "http://evil.example"}
        )
        assert evil.status_code == 403
        missing = client.post("/console/login", data={"secret": keys.reviewer}, headers={"origin": proxy.url})
        assert missing.status_code == 403


def test_label_forms_refuse_cross_site_posts_and_store_nothing(
    console: tuple[ProxyServer, Keys, Path], reviewer: httpx.Client
) -> None:
    proxy, keys, directory = console
    request_id = blocked_request(proxy, keys.client)
    wait_for_record(proxy, request_id, reviewer)
    token = csrf_of(reviewer.get(f"/console/events/{request_id}").text)
    url = f"/console/events/{request_id}/label"
    cases = [
        ({"label": "false_positive"}, {"origin": proxy.url}),  # no token
        ({"label": "false_positive", "csrf": "forged"}, {"origin": proxy.url}),  # wrong token
        ({"label": "false_positive", "csrf": token}, {"origin": "http://evil.example"}),  # right token, other site
        ({"label": "false_positive", "csrf": token}, {}),  # no Origin nor Referer
    ]
    for data, headers in cases:
        response = reviewer.post(url, data=data, headers=headers)
        assert response.status_code == 403, (data, headers)
        assert "Refused" in response.text
    store = open_store(str(directory / "audit.db"))
    try:
        assert list(store.feedback(request_id=request_id)) == []
    finally:
        store.close()


def test_console_label_is_stored_exactly_as_the_feedback_api_stores_it(
    console: tuple[ProxyServer, Keys, Path], reviewer: httpx.Client
) -> None:
    proxy, keys, directory = console
    first = blocked_request(proxy, keys.client)
    second = blocked_request(proxy, keys.client)
    wait_for_record(proxy, second, reviewer)
    token = csrf_of(reviewer.get(f"/console/events/{first}").text)
    note = f"benign, ask {EMAIL}"
    form = {"csrf": token, "label": "false_positive", "note": note, "step": "input.0.injection"}
    response = reviewer.post(f"/console/events/{first}/label", data=form, headers={"origin": proxy.url})
    assert response.status_code == 303
    assert "Label saved." in reviewer.get(response.headers["location"]).text
    api = httpx.post(
        proxy.url + "/v1/feedback",
        json={"request_id": second, "label": "false_positive", "note": note, "step": "input.0.injection"},
        headers={"authorization": f"Bearer {keys.reviewer}"},
    )
    assert api.status_code == 201
    store = open_store(str(directory / "audit.db"))
    try:
        (via_console,) = store.feedback(request_id=first)
        (via_api,) = store.feedback(request_id=second)
    finally:
        store.close()
    as_console, as_api = via_console.to_dict(), via_api.to_dict()
    for row in (as_console, as_api):
        row.pop("ts"), row.pop("request_id")
    assert as_console == as_api
    assert as_console["actor"] == "qa-reviewer"
    assert EMAIL not in as_console["note"] and "[EMAIL_ADDRESS]" in as_console["note"]
    bad = reviewer.post(
        f"/console/events/{first}/label", data={"csrf": token, "label": "maybe"}, headers={"origin": proxy.url}
    )
    assert bad.status_code == 400
    assert "&#39;label&#39; must be one of" in bad.text


def test_audit_text_is_escaped_and_raw_pii_never_reaches_a_page(
    console: tuple[ProxyServer, Keys, Path], reviewer: httpx.Client
) -> None:
    proxy, keys, _ = console
    scripted = blocked_request(proxy, keys.client, SCRIPT)
    mailed = allowed_request(proxy, keys.client, f"Please write to {EMAIL} about the invoice")
    wait_for_record(proxy, mailed, reviewer)
    detail = reviewer.get(f"/console/events/{scripted}").text
    assert "<script>" not in detail
    assert "&lt;script&gt;alert(&#39;xss&#39;)&lt;/script&gt;" in detail
    listing = reviewer.get("/console/events", params={"q": "xss"}).text
    assert "<script>" not in listing and "&lt;script&gt;" in listing
    for page in (
        reviewer.get(f"/console/events/{mailed}").text,
        reviewer.get("/console/events").text,
        reviewer.get("/console/export.csv").text,
        reviewer.get("/console/export.jsonl").text,
    ):
        assert EMAIL not in page
    assert "[EMAIL_ADDRESS]" in reviewer.get(f"/console/events/{mailed}").text
    assert 'id="store-raw"' not in detail


def test_events_filters(console: tuple[ProxyServer, Keys, Path], reviewer: httpx.Client) -> None:
    proxy, keys, _ = console
    blocked = blocked_request(proxy, keys.client, INJECTION + " zebra-filter-marker")
    allowed = allowed_request(proxy, keys.client, "a harmless question about zebra-filter-marker stripes")
    wait_for_record(proxy, allowed, reviewer)

    def ids(**params: str) -> set[str]:
        response = reviewer.get("/console/events", params=params)
        assert response.status_code == 200, response.text
        return {rid for rid in (blocked, allowed) if f'data-request-id="{rid}"' in response.text}

    assert ids(q="zebra-filter-marker") == {blocked, allowed}
    assert ids(q="ZEBRA-FILTER-MARKER", outcome="blocked_input") == {blocked}
    assert ids(q="zebra-filter-marker", detector="injection") == {blocked}
    assert ids(q="zebra-filter-marker", step="input.0.injection", stage="input") == {blocked}
    assert ids(q="zebra-filter-marker", stage="output") == set()
    assert ids(q="zebra-filter-marker", outcome="allowed", client="team-a") == {allowed}
    assert ids(q="zebra-filter-marker", client="someone-else") == set()
    assert ids(q="zebra-filter-marker", review="unlabelled", since="1h") == {blocked, allowed}
    assert ids(q="zebra-filter-marker", until="2000-01-01") == set()
    for params, message in (
        ({"outcome": "exploded"}, "unknown outcome"),
        ({"since": "yesterday-ish"}, "since: expected"),
        ({"review": "meh"}, "review: one of"),
    ):
        response = reviewer.get("/console/events", params=params)
        assert response.status_code == 400
        assert message in response.text


def test_overview_counts_and_precision(console: tuple[ProxyServer, Keys, Path], reviewer: httpx.Client) -> None:
    proxy, keys, _ = console
    request_id = blocked_request(proxy, keys.client)
    wait_for_record(proxy, request_id, reviewer)
    page = reviewer.get("/console", params={"range": "1h"})
    assert page.status_code == 200
    assert 'id="traffic-chart"' in page.text and "<rect" in page.text
    assert 'data-detector="injection"' in page.text
    assert reviewer.get("/console", params={"range": "nonsense"}).status_code == 200  # falls back to 24h


def test_policy_draft_validation_and_replay(console: tuple[ProxyServer, Keys, Path], reviewer: httpx.Client) -> None:
    proxy, keys, directory = console
    allowed = allowed_request(proxy, keys.client, "tell me about the quarterly cranberry report")
    wait_for_record(proxy, allowed, reviewer)
    running = (directory / "policy.yaml").read_text()
    page = reviewer.get("/console/policy").text
    assert "api_key: upstream-secret" in running and "upstream-secret" not in page  # literal secrets are masked
    token = csrf_of(page)
    broken = running.replace("action: anonymize", "action: obliterate")
    response = reviewer.post(
        "/console/policy", data={"csrf": token, "draft": broken, "action": "validate"}, headers={"origin": proxy.url}
    )
    assert response.status_code == 200
    assert 'id="draft-errors"' in response.text
    line = next(i for i, text in enumerate(broken.splitlines(), start=1) if "obliterate" in text)
    assert f"draft:{line}:" in response.text
    stricter = running.replace(
        'patterns: ["(?i)internal use only"]', 'patterns: ["(?i)internal use only", "(?i)cranberry"]'
    )
    stricter = stricter.replace("input:\n", "input:\n  - {detector: banned, action: block}\n", 1)
    response = reviewer.post(
        "/console/policy",
        data={"csrf": token, "draft": stricter, "action": "replay", "newest": "50"},
        headers={"origin": proxy.url},
    )
    assert response.status_code == 200, response.text
    assert 'id="replay-diff"' in response.text
    assert f">{allowed}</a>" in response.text
    bad_n = reviewer.post(
        "/console/policy",
        data={"csrf": token, "draft": stricter, "action": "replay", "newest": "0"},
        headers={"origin": proxy.url},
    )
    assert bad_n.status_code == 400


def test_export_and_label_import_round_trip(console: tuple[ProxyServer, Keys, Path], reviewer: httpx.Client) -> None:
    proxy, keys, directory = console
    request_id = blocked_request(proxy, keys.client, INJECTION + " export-marker")
    wait_for_record(proxy, request_id, reviewer)
    exported = reviewer.get("/console/export.csv", params={"q": "export-marker"})
    assert exported.status_code == 200
    assert exported.headers["content-disposition"].startswith("attachment")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [row["request_id"] for row in rows] == [request_id]
    lines = reviewer.get("/console/export.jsonl", params={"q": "export-marker"}).text.splitlines()
    assert [json.loads(line)["request_id"] for line in lines] == [request_id]
    rows[0]["label"], rows[0]["note"] = "false_positive", "=HYPERLINK(1) a note"
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    token = csrf_of(reviewer.get("/console/export").text)
    bad = "request_id,label\n" + request_id + ",false_positive\nno-such-id,correct\n" + request_id + ",meh\n"
    refused = reviewer.post("/console/import", data={"csrf": token, "csv": bad}, headers={"origin": proxy.url})
    assert refused.status_code == 200 and 'id="import-errors"' in refused.text
    assert "line 3: no audit record" in refused.text and "line 4: &#39;label&#39; must be one of" in refused.text
    store = open_store(str(directory / "audit.db"))
    try:
        assert list(store.feedback(request_id=request_id)) == []  # nothing of a bad file is stored
        upload = {"file": ("labels.csv", out.getvalue().encode(), "text/csv")}  # the file input (multipart)
        done = reviewer.post("/console/import", data={"csrf": token}, files=upload, headers={"origin": proxy.url})
        assert done.status_code == 200 and "Stored 1 labels" in done.text
        again = reviewer.post(
            "/console/import", data={"csrf": token, "csv": out.getvalue()}, headers={"origin": proxy.url}
        )
        assert "Stored 0 labels (1 unchanged" in again.text
        (fb,) = store.feedback(request_id=request_id)
        assert fb.label == "false_positive" and fb.actor == "qa-reviewer" and fb.note == "=HYPERLINK(1) a note"
    finally:
        store.close()


def test_reviewers_cannot_promote_models(console: tuple[ProxyServer, Keys, Path], reviewer: httpx.Client) -> None:
    proxy, _, _ = console
    token = csrf_of(reviewer.get("/console/models").text)
    response = reviewer.post(
        "/console/models", data={"csrf": token, "action": "rollback", "registry": "/tmp"}, headers={"origin": proxy.url}
    )
    assert response.status_code == 403
    assert "needs an admin key" in response.text


@pytest.mark.parametrize("token", [None, "short-token"])
def test_no_console_without_keys_or_a_long_token(
    tmp_path: Path, upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch, token: str | None
) -> None:
    if token is None:
        monkeypatch.delenv("GUARDPROXY_CONSOLE_TOKEN", raising=False)
    else:
        monkeypatch.setenv("GUARDPROXY_CONSOLE_TOKEN", token)  # too short to stand in for keys
    with ProxyServer(write_policy(tmp_path, upstream.base_url)) as proxy:
        for path in ("/console", "/console/login", "/console/static/console.css", "/console/events"):
            assert proxy.get(path).status_code == 404


def test_console_token_signs_in_when_keys_are_off(
    tmp_path: Path, upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GUARDPROXY_CONSOLE_TOKEN", "a-long-console-token-for-tests")
    with ProxyServer(write_policy(tmp_path, upstream.base_url)) as proxy:
        with httpx.Client(base_url=proxy.url) as client:
            page = client.get("/console/login")
            wrong = client.post(
                "/console/login", data={"csrf": csrf_of(page.text), "secret": "nope"}, headers={"origin": proxy.url}
            )
            assert wrong.status_code == 200 and "Incorrect console token" in wrong.text
        with signed_in(proxy, "a-long-console-token-for-tests") as client:
            assert "console-token (admin)" in client.get("/console").text


def test_store_raw_is_announced(tmp_path: Path, upstream: FakeUpstream) -> None:
    policy, keys = keyed_policy(tmp_path, upstream.base_url, store_raw=True)
    with ProxyServer(policy) as proxy, signed_in(proxy, keys.admin) as client:
        assert 'id="store-raw"' in client.get("/console").text


def test_shadow_report_on_the_models_page(console: tuple[ProxyServer, Keys, Path], reviewer: httpx.Client) -> None:
    proxy, keys, _ = console
    allowed = allowed_request(proxy, keys.client, "shadow report traffic")
    blocked_request(proxy, keys.client)
    wait_for_record(proxy, allowed, reviewer)
    page = reviewer.get("/console/models", params={"current": "input.0.injection", "candidate": "input.1.pii"})
    assert page.status_code == 200
    assert 'id="shadow"' in page.text
    assert "only the current fired" in page.text


def test_the_console_reads_a_postgresql_audit_store(tmp_path: Path, upstream: FakeUpstream, pg_url: str) -> None:
    policy, keys = keyed_policy(tmp_path, upstream.base_url)
    text = policy.read_text()
    policy.write_text(text.replace(f"  path: {tmp_path / 'audit.db'}\n", f"  url: {pg_url}\n"))
    with ProxyServer(policy) as proxy, signed_in(proxy, keys.reviewer) as reviewer:
        request_id = blocked_request(proxy, keys.client, INJECTION + " on postgres")
        wait_for_record(proxy, request_id, reviewer)
        listing = reviewer.get("/console/events", params={"detector": "injection", "q": "POSTGRES"})
        assert f'data-request-id="{request_id}"' in listing.text
        token = csrf_of(reviewer.get(f"/console/events/{request_id}").text)
        saved = reviewer.post(
            f"/console/events/{request_id}/label",
            data={"csrf": token, "label": "false_positive"},
            headers={"origin": proxy.url},
        )
        assert saved.status_code == 303
        overview = reviewer.get("/console", params={"range": "1h"}).text
        assert 'id="count-labelled">1<' in overview
        assert 'id="count-blocked">1<' in overview
        assert 'id="agreement"' not in overview  # one reviewer: nobody to agree with
        second = httpx.post(  # a second reviewer (an admin key) disagrees, through the API
            proxy.url + "/v1/feedback",
            json={"request_id": request_id, "label": "correct"},
            headers={"authorization": f"Bearer {keys.admin}"},
        )
        assert second.status_code == 201
        overview = reviewer.get("/console", params={"range": "1h"}).text
        assert "ops-admin · qa-reviewer" in overview and '<td class="kappa">' in overview
    assert not (tmp_path / "audit.db").exists()  # everything went to PostgreSQL


def test_the_red_team_page_shows_the_last_report(
    reviewer: httpx.Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from guardproxy.console.redteam_page import REPORT_ENV
    from guardproxy.redteam.judging import Outcome, ProbeResult
    from guardproxy.redteam.report import build_report, write_json
    from guardproxy.redteam.suites import load_suite

    report_path = tmp_path / "redteam.json"
    monkeypatch.setenv(REPORT_ENV, str(report_path))
    assert "No report yet" in reviewer.get("/console/redteam").text

    suite = load_suite("quick")
    results = [
        ProbeResult(p, Outcome.BLOCKED if i % 2 else Outcome.ANSWERED, succeeded=not i % 2, detail="<b>x</b>")
        for i, p in enumerate([*suite.attacks, *suite.benign])
    ]
    write_json(build_report(results, target="http://guard/v1", model="m", suite="quick", judge="answer"), report_path)
    page = reviewer.get("/console/redteam").text
    assert "http://guard/v1" in page and 'id="redteam-table"' in page
    assert "benign (over-refusal)" in page and "direct_injection" in page

    report_path.write_text("not json")
    assert "could not be read" in reviewer.get("/console/redteam").text
