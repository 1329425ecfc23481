"""Hot reload: a valid policy change applies without dropping in-flight requests; an invalid one is ignored."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import openai
import pytest

from guardproxy.policies.loader import END_MARKER
from tests.fake_upstream import FakeUpstream, Reply, wait_until
from tests.policies import write_policy
from tests.proxy_harness import ProxyServer


def _blocks(client: openai.OpenAI, text: str) -> bool:
    try:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": text}])
    except openai.BadRequestError:
        return True
    return False


def test_valid_change_applies_and_invalid_change_keeps_last_good(upstream: FakeUpstream, tmp_path: Path) -> None:
    path = write_policy(tmp_path, upstream.base_url)
    with ProxyServer(path, watch=True, watch_interval_s=0.05) as proxy:
        client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="k", max_retries=0)
        assert not _blocks(client, "tell me about bananas")

        # An in-flight, slow request started under the old policy must complete.
        upstream.enqueue(Reply(content="slow answer", delay_s=1.0))
        result: dict[str, str | None] = {}

        def slow() -> None:
            c = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "slow"}])
            result["content"] = c.choices[0].message.content

        thread = threading.Thread(target=slow)
        thread.start()
        wait_until(lambda: len(upstream.requests) >= 2)
        text = path.read_text().replace(
            'banned: {type: blocklist, patterns: ["(?i)internal use only"]}',
            'banned: {type: blocklist, patterns: ["(?i)internal use only"]}\n  fruit: {type: blocklist, words: [bananas]}',
        )
        path.write_text(text.replace("input:\n", "input:\n  - {detector: fruit, action: block}\n", 1))
        assert wait_until(lambda: _blocks(client, "tell me about bananas"), timeout_s=5)
        thread.join(timeout=10)
        assert result["content"] == "slow answer"

        path.write_text(path.read_text().replace("action: block}", "action: blok}"))
        with pytest.raises(AssertionError):
            assert wait_until(lambda: not _blocks(client, "tell me about bananas"), timeout_s=0.5)
        assert proxy.get("/healthz").status_code == 200


# --- atomic reloads: a half-written policy is never served (issue 10) ---


def _answer_blocked(client: openai.OpenAI, upstream: FakeUpstream) -> bool:
    """Whether the output chain in force stops an answer with the blocklisted phrase."""
    upstream.enqueue(Reply(content="This is for internal use only."))
    answer = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    return answer.choices[0].finish_reason == "content_filter"


def _with_fruit_step(text: str) -> str:
    text = text.replace(
        'banned: {type: blocklist, patterns: ["(?i)internal use only"]}',
        'banned: {type: blocklist, patterns: ["(?i)internal use only"]}\n  fruit: {type: blocklist, words: [bananas]}',
    )
    return text.replace("input:\n", "input:\n  - {detector: fruit, action: block}\n", 1)


def test_a_policy_written_in_two_halves_is_never_served_half(upstream: FakeUpstream, tmp_path: Path) -> None:
    path = write_policy(tmp_path, upstream.base_url)
    path.write_text(path.read_text() + END_MARKER + "\n")
    new = _with_fruit_step(path.read_text())
    # The first half is valid YAML: every section up to `output:`, i.e. a chain without its output steps.
    half = new[: new.index("output:\n")]
    with ProxyServer(path, watch=True, watch_interval_s=0.05) as proxy:
        client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="k", max_retries=0)
        assert _answer_blocked(client, upstream)
        with path.open("w") as f:  # an in-place save by a slow writer
            f.write(half)
            f.flush()
            deadline = time.monotonic() + 1.0  # twenty polls, far longer than the settle interval
            while time.monotonic() < deadline:
                assert _answer_blocked(client, upstream), "the half-written policy was applied"
                assert not _blocks(client, "tell me about bananas")
            f.write(new[len(half) :])
        assert wait_until(lambda: _blocks(client, "tell me about bananas"), timeout_s=5)
        assert _answer_blocked(client, upstream)


def test_write_then_rename_is_applied(upstream: FakeUpstream, tmp_path: Path) -> None:
    path = write_policy(tmp_path, upstream.base_url)
    path.write_text(path.read_text() + END_MARKER + "\n")
    with ProxyServer(path, watch=True, watch_interval_s=0.05) as proxy:
        client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="k", max_retries=0)
        assert not _blocks(client, "tell me about bananas")
        staged = path.with_name(path.name + ".tmp")
        staged.write_text(_with_fruit_step(path.read_text()))
        os.replace(staged, path)
        assert wait_until(lambda: _blocks(client, "tell me about bananas"), timeout_s=5)
        assert _answer_blocked(client, upstream)
