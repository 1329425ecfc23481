"""Detectors see what the reader will see: obfuscated PII and blocked phrases are caught on output and
scrubbed from the audit store, through the real proxy with the official SDK (issue 10, items 3 and 8).

The fake upstream plays an attacker who hides an e-mail address, a card number and a blocked phrase
behind JSON escapes (which the client's JSON parser decodes), fullwidth forms, look-alike letters,
invisible characters and dotted digit groups.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from guardproxy.audit.records import AuditRecord
from guardproxy.audit.sqlite import SQLiteAuditStore
from tests.fake_upstream import FakeUpstream, Reply
from tests.policies import write_policy
from tests.proxy_harness import ProxyServer

EMAIL = "jane.roe@example.org"
CARD = "4111111111111111"
PHRASE = "internal use only"
# As the upstream writes them. In a Python literal "\\u0040" is the six characters a JSON text holds.
EMAILS = (
    "jane.roe\\u0040example.org",  # JSON escape: decoded by the client's parser (JSON content, tool args)
    "jane.roe\uff20example.org",  # fullwidth commercial at
    "j\u0430ne.roe@example.org",  # Cyrillic a
    "jane.roe@exa\u200bmple.org",  # zero-width space
)
CARDS = (
    "4111.1111.1111.1111",
    "\uff14\uff11\uff11\uff11 \uff11\uff11\uff11\uff11 \uff11\uff11\uff11\uff11 \uff11\uff11\uff11\uff11",  # fullwidth
    "4111\\u002e1111\\u002e1111\\u002e1111",
)
PHRASES = ("internal\\u0020use only", "internal use \u043enly", "\uff49nternal use only")
_LOOKALIKES = str.maketrans({"\u0430": "a", "\u043e": "o", "\u200b": None})


def as_read(text: str) -> str:
    """What a person reads in `text`, worked out independently of guardproxy's normaliser."""
    return unicodedata.normalize("NFKC", text).translate(_LOOKALIKES).lower()


def assert_clean(text: str) -> None:
    read = as_read(text)
    assert EMAIL not in read, text
    assert CARD not in re.sub(r"[ .\-]", "", read), text
    assert PHRASE not in read, text


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


@pytest.fixture(scope="module")
def proxy(upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyServer]:
    path = write_policy(tmp_path_factory.mktemp("obfuscation"), upstream_server.base_url)
    with ProxyServer(path) as server:
        yield server


@pytest.fixture
def client(proxy: ProxyServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.url + "/v1", api_key="client-key", max_retries=0)


def stored(db: Path) -> list[AuditRecord]:
    store = SQLiteAuditStore(db)
    try:
        return list(store.query())
    finally:
        store.close()


def assert_store_clean(db: Path) -> list[AuditRecord]:
    records = stored(db)
    assert records
    for record in records:
        texts = [record.model, record.input_text, record.output_text, record.error or ""]
        texts += [step.error or "" for step in record.steps]
        for text in texts:
            assert_clean(text)
            assert_clean(json.loads(json.dumps(text).replace("\\\\u", "\\u")))  # its escapes decoded, as a reader would
    raw = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))
    for value in (EMAIL, *EMAILS, *CARDS, "4111 1111 1111 1111"):
        assert value.encode() not in raw, value
    return records


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
def test_obfuscated_pii_in_content_is_redacted(client: openai.OpenAI, upstream: FakeUpstream, stream: bool) -> None:
    content = "Contacts: " + "; ".join(EMAILS) + ". Cards: " + "; ".join(CARDS) + ". Done."
    upstream.enqueue(Reply(content=content))
    if stream:
        chunks = client.chat.completions.create(model="gpt-4o-mini", messages=user("who?"), stream=True)
        received = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        completion = client.chat.completions.create(model="gpt-4o-mini", messages=user("who?"))
        received = completion.choices[0].message.content or ""
    assert_clean(received)
    assert received.count("[EMAIL_ADDRESS]") == len(EMAILS), received
    assert received.count("[CREDIT_CARD]") == len(CARDS), received
    assert "\\u" not in received  # the whole escape sequence went with the value
    assert received.startswith("Contacts: ") and received.endswith(". Done.")


def test_obfuscated_pii_in_json_mode_content_is_redacted(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    document = '{"email": "jane.roe\\u0040example.org", "card": "4111\\u002e1111\\u002e1111\\u002e1111", "n": 1}'
    assert json.loads(document) == {"email": EMAIL, "card": "4111.1111.1111.1111", "n": 1}
    upstream.enqueue(Reply(content=document))
    completion = client.chat.completions.create(
        model="gpt-4o-mini", messages=user("as JSON"), response_format={"type": "json_object"}
    )
    parsed = json.loads(completion.choices[0].message.content or "")
    assert parsed == {"email": "[EMAIL_ADDRESS]", "card": "[CREDIT_CARD]", "n": 1}


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
def test_obfuscated_pii_in_tool_call_arguments_is_redacted(
    client: openai.OpenAI, upstream: FakeUpstream, stream: bool
) -> None:
    arguments = (
        '{"to": "jane.roe\\u0040example.org", "cc": "jane.roe\\uff20example.org", "card": "4111.1111.1111.1111"}'
    )
    upstream.enqueue(Reply(tool_calls=[{"name": "send", "arguments": arguments}]))
    if stream:
        chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=user("mail"), stream=True))
        received = "".join(
            call.function.arguments or ""
            for c in chunks
            if c.choices
            for call in c.choices[0].delta.tool_calls or ()
            if call.function is not None
        )
    else:
        completion = client.chat.completions.create(model="gpt-4o-mini", messages=user("mail"))
        [call] = completion.choices[0].message.tool_calls or []
        received = call.function.arguments  # type: ignore[union-attr]
    assert json.loads(received) == {"to": "[EMAIL_ADDRESS]", "cc": "[EMAIL_ADDRESS]", "card": "[CREDIT_CARD]"}


@pytest.mark.parametrize("phrase", PHRASES)
@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
def test_obfuscated_blocked_phrase_is_blocked(
    client: openai.OpenAI, upstream: FakeUpstream, stream: bool, phrase: str
) -> None:
    upstream.enqueue(Reply(content=f"The memo is {phrase}. It says more."))
    upstream.enqueue(Reply(tool_calls=[{"name": "post", "arguments": '{"note": "' + phrase + ' plan"}'}]))
    for _ in range(2):  # content, then tool-call arguments
        if stream:
            chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=user("memo"), stream=True))
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            assert not any(c.choices and c.choices[0].delta.tool_calls for c in chunks)
            assert chunks[-1].choices[0].finish_reason == "content_filter"
            assert_clean(text)
        else:
            choice = client.chat.completions.create(model="gpt-4o-mini", messages=user("memo")).choices[0]
            assert choice.finish_reason == "content_filter"
            assert choice.message.content is None and not choice.message.tool_calls


SCRUB_ONLY = """
backends:
  upstream: {{type: openai, base_url: {upstream}, max_retries: 0}}
models:
  - {{name: gpt-4o-mini, backend: upstream}}
detectors:
  banned: {{type: blocklist, patterns: ["(?i)internal use only"]}}
input: []
output:
  - {{detector: banned, action: block}}
audit:
  path: {audit}
"""


def test_audit_store_holds_no_obfuscated_value(upstream: FakeUpstream, tmp_path: Path) -> None:
    """No PII step in the chain: only the audit scrubber stands between the texts and the store."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(SCRUB_ONLY.format(upstream=upstream.base_url, audit=tmp_path / "audit.db"))
    with ProxyServer(policy) as proxy:
        client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="k", max_retries=0)
        question = "Write to " + " and ".join(EMAILS) + " about " + " and ".join(CARDS)
        upstream.enqueue(Reply(content="Sure: " + ", ".join(EMAILS) + "; " + ", ".join(CARDS)))
        client.chat.completions.create(model="gpt-4o-mini", messages=user(question))
        upstream.enqueue(Reply(content=question))
        for _ in client.chat.completions.create(model="gpt-4o-mini", messages=user(question), stream=True):
            pass
        upstream.enqueue(Reply(tool_calls=[{"name": "send", "arguments": '{"to": "jane.roe\\u0040example.org"}'}]))
        client.chat.completions.create(model="gpt-4o-mini", messages=user("send it"))
    records = assert_store_clean(tmp_path / "audit.db")
    assert len(records) == 3
    assert all("[EMAIL_ADDRESS]" in r.output_text for r in records), [r.output_text for r in records]
    assert "[CREDIT_CARD]" in records[0].input_text


def test_client_chosen_model_and_user_header_are_scrubbed_in_the_store(upstream: FakeUpstream, tmp_path: Path) -> None:
    policy = write_policy(tmp_path, upstream.base_url)
    with ProxyServer(policy) as proxy:
        client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="k", max_retries=0)
        ids: list[str] = []
        for model in (f"gpt-4o-mini for {EMAIL}", f"card {CARDS[0]}", f"to {EMAILS[0]}"):
            with pytest.raises(openai.APIStatusError) as failed:
                client.chat.completions.create(model=model, messages=user("hi"))
            ids.append(failed.value.response.headers["x-guardproxy-request-id"])
        feedback = [
            httpx.post(
                proxy.url + "/v1/feedback",
                json={"request_id": ids[0], "label": "correct", "note": f"from {EMAILS[1]}"},
                headers={"x-guardproxy-user": actor},
            )
            # Header values are ASCII on the wire: the escape form is the obfuscation that fits.
            for actor in (EMAIL, EMAILS[0], f"ops lead <{EMAIL}>")
        ]
    assert [r.status_code for r in feedback] == [201, 201, 201], [r.text for r in feedback]
    records = {r.request_id: r for r in assert_store_clean(tmp_path / "audit.db")}
    assert records[ids[0]].model == "gpt-4o-mini for [EMAIL_ADDRESS]"
    assert records[ids[1]].model == "card [CREDIT_CARD]"
    assert records[ids[2]].model == "to [EMAIL_ADDRESS]"
    store = SQLiteAuditStore(tmp_path / "audit.db")
    try:
        rows = list(store.feedback())
    finally:
        store.close()
    # The same header gives the same pseudonym, so one person's feedback still joins up.
    assert rows[0].actor == "user:" + hashlib.sha256(EMAIL.encode()).hexdigest()[:12]
    assert len({fb.actor for fb in rows}) == 3
    for fb in rows:
        assert_clean(fb.actor)
        assert_clean(fb.note)
        assert fb.actor.startswith("user:")
