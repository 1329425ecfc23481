"""Model registry: promotion and rollback move the `CURRENT` pointer (with history), and a running proxy
serves the promoted version without failing a request; a version that does not load keeps the old one."""

from __future__ import annotations

import io
import json
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import pytest

from guardproxy.detectors.base import DetectorDeps
from guardproxy.detectors.model_files import ModelDir, detector_model_dirs, resolve_model_dir
from guardproxy.errors import DetectorFailed
from guardproxy.trainer.registry import (
    HISTORY_FILE,
    RegistryError,
    current_version,
    history,
    list_versions,
    promote,
    rollback,
)
from guardproxy.trainer.registry_cli import cli_main
from tests.fake_upstream import FakeUpstream, Reply, wait_until
from tests.proxy_harness import ProxyServer

WORDS = ["hello", "tell", "me", "about", "a", "slow", "please", "pineapple", "mango", "weather"]


def write_tiny_guard_model(target: Path, *, fires_on: str) -> Path:
    """A real ONNX classifier (embedding lookup + max over tokens, sigmoid head) whose `injection` output
    fires on one word, with its own word-level tokenizer: built in milliseconds, needs no shipped model."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    target.mkdir(parents=True, exist_ok=True)
    vocab = {token: i for i, token in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *WORDS])}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.save(str(target / "tokenizer.json"))
    labels = ["injection", "insult"]
    emb = np.full((len(vocab), len(labels)), -6.0, dtype=np.float32)
    emb[vocab[fires_on], 0] = 6.0
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["emb", "input_ids"], ["tokens"]),
            helper.make_node("ReduceMax", ["tokens"], ["logits"], axes=[1], keepdims=0),
        ],
        "tiny",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "s"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["b", "s"]),
        ],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["b", len(labels)])],
        [numpy_helper.from_array(emb, "emb")],
    )
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), target / "model.onnx"
    )
    card = {
        "name": "tiny-guard",
        "version": target.name,
        "labels": labels,
        "positive_labels": labels,
        "groups": {"injection": ["injection"], "moderation": ["insult"]},
        "thresholds": {"injection": 0.5, "insult": 0.5},
        "evaluation": {"groups": {"injection": {"overall": {"precision": 0.9, "recall": 0.8, "f1": 0.85}}}},
        "serving": {
            "head": "sigmoid",
            "max_length": 32,
            "stride": 8,
            "cls_token_id": vocab["[CLS]"],
            "sep_token_id": vocab["[SEP]"],
            "onnx_file": "model.onnx",
            "tokenizer_file": "tokenizer.json",
        },
    }
    (target / "model_card.json").write_text(json.dumps(card))
    return target


def _card_only(registry: Path, version: str, **extra: object) -> None:
    (registry / version).mkdir(parents=True)
    (registry / version / "model_card.json").write_text(json.dumps({"version": version, **extra}))


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    reg = tmp_path / "guard"
    for version in ("v1", "v2", "v3"):
        _card_only(reg, version)
    (reg / "v4.partial").mkdir()  # not a version: the trainer's work in progress
    return reg


def test_without_a_pointer_the_newest_version_serves_and_with_one_the_promoted(registry: Path) -> None:
    assert resolve_model_dir(registry) == registry / "v3"
    entry = promote(registry, "v1", reason="v3 over-blocks", actor="alice")
    assert (registry / "CURRENT").read_text() == "v1\n"
    assert resolve_model_dir(registry) == registry / "v1"
    assert (entry.from_version, entry.to_version, entry.action, entry.actor) == ("v3", "v1", "promote", "alice")
    # A newer version appearing does not move a pointer: promotion is explicit.
    _card_only(registry, "v5")
    assert resolve_model_dir(registry) == registry / "v1"
    assert [p.name for p in registry.iterdir() if p.name.endswith(".tmp")] == []


def test_rollback_walks_back_through_promotions_and_history_records_every_move(registry: Path) -> None:
    promote(registry, "v1", actor="a")  # from the implicit v3
    promote(registry, "v2", actor="a")
    assert rollback(registry, actor="b").to_version == "v1"
    assert rollback(registry, actor="b").to_version == "v3"  # the version served before the first promotion
    with pytest.raises(RegistryError, match="no earlier promoted version"):
        rollback(registry)
    assert rollback(registry, "v2", reason="named", actor="c").to_version == "v2"
    moves = [(e.action, e.from_version, e.to_version) for e in history(registry)]
    assert moves == [
        ("promote", "v3", "v1"),
        ("promote", "v1", "v2"),
        ("rollback", "v2", "v1"),
        ("rollback", "v1", "v3"),
        ("rollback", "v3", "v2"),
    ]
    lines = (registry / HISTORY_FILE).read_text().splitlines()
    assert json.loads(lines[-1]) | {"ts": 0} == {
        "ts": 0,
        "action": "rollback",
        "from": "v3",
        "to": "v2",
        "reason": "named",
        "actor": "c",
    }


def test_refused_moves_leave_the_pointer_alone(registry: Path) -> None:
    promote(registry, "v2")
    for version, message in (("v9", "no version v9"), ("latest", "not a version name"), ("v2", "already the current")):
        with pytest.raises(RegistryError, match=message):
            promote(registry, version)
    with pytest.raises(RegistryError, match="no such registry"):
        promote(registry / "missing", "v1")
    assert current_version(registry) == "v2"
    assert len(history(registry)) == 1


def test_a_pointer_to_a_missing_version_is_an_error_not_a_silent_fallback(registry: Path) -> None:
    (registry / "CURRENT").write_text("v7\n")
    with pytest.raises(DetectorFailed, match="names 'v7'"):
        resolve_model_dir(registry)
    assert current_version(registry) is None


def test_list_versions_summarises_cards(tmp_path: Path) -> None:
    reg = tmp_path / "r"
    _card_only(reg, "v1", created="2026-11-01T00:00:00+00:00", evaluation={"overall": {"f1": 0.5, "fpr": 0.1}})
    write_tiny_guard_model(reg / "v2", fires_on="mango")
    promote(reg, "v1")
    versions = list_versions(reg)
    assert [(v.version, v.current) for v in versions] == [("v1", True), ("v2", False)]
    assert versions[0].created == "2026-11-01T00:00:00+00:00"
    assert versions[0].metrics == {"overall": {"f1": 0.5, "fpr": 0.1}}
    assert versions[1].metrics == {"injection": {"precision": 0.9, "recall": 0.8, "f1": 0.85}}


def test_cli_versions_promote_rollback(registry: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert cli_main(["promote", str(registry), "v2", "--reason", "better f1", "--actor", "ci"], out=out, err=err) == 0
    assert json.loads(out.getvalue()) | {"ts": 0} == {
        "ts": 0,
        "action": "promote",
        "from": "v3",
        "to": "v2",
        "reason": "better f1",
        "actor": "ci",
    }
    out = io.StringIO()
    assert cli_main(["versions", str(registry)], out=out, err=err) == 0
    assert [line.split()[0] for line in out.getvalue().splitlines()] == ["v1", "*", "v3"]
    assert cli_main(["rollback", str(registry)], out=io.StringIO(), err=err) == 0
    assert current_version(registry) == "v3"
    assert cli_main(["promote", str(registry), "v8"], out=io.StringIO(), err=err) == 1
    assert "no version v8" in err.getvalue()
    out = io.StringIO()
    assert cli_main(["versions", str(registry), "--json"], out=out, err=err) == 0
    assert [json.loads(line)["current"] for line in out.getvalue().splitlines()] == [False, False, True]


def test_the_classifier_detector_reports_where_its_model_came_from(tmp_path: Path) -> None:
    from guardproxy.detectors.configs import InjectionClassifierConfig
    from guardproxy.detectors.onnx_classifier import InjectionClassifierDetector

    reg = tmp_path / "r"
    write_tiny_guard_model(reg / "v1", fires_on="pineapple")
    write_tiny_guard_model(reg / "v2", fires_on="mango")
    promote(reg, "v1")
    config = InjectionClassifierConfig(type="injection_classifier", model_path=str(reg))
    det = InjectionClassifierDetector("guard", config, DetectorDeps())
    try:
        assert det.detect_sync("tell me about pineapple").labels == ("injection",)
        assert det.detect_sync("tell me about mango").labels == ()
        assert detector_model_dirs([det, object()]) == (ModelDir(reg, reg / "v1"),)
    finally:
        det.close()


# --- a running proxy -------------------------------------------------------------------------------------

POLICY = """
backends:
  upstream: {{type: openai, base_url: {upstream}, api_key: k, timeout_s: 10, max_retries: 0}}
models:
  - {{name: gpt-4o-mini, backend: upstream}}
detectors:
  guard: {{type: injection_classifier, model_path: {registry}, threads: 1}}
input:
  - {{detector: guard, action: block}}
audit:
  path: {audit}
"""


def _chat(client: httpx.Client, text: str) -> httpx.Response:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}
    return client.post("/v1/chat/completions", json=body)


def _blocked(client: httpx.Client, text: str) -> bool:
    response = _chat(client, text)
    assert response.status_code in (200, 400), response.text
    return response.status_code == 400


class Traffic:
    """Clients sending requests back to back until stopped; every response's status is counted."""

    def __init__(self, url: str, text: str, clients: int = 3) -> None:
        self.statuses: Counter[int] = Counter()
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(url, text)) for _ in range(clients)]

    def _run(self, url: str, text: str) -> None:
        with httpx.Client(base_url=url, timeout=15) as client:
            while not self._stop.is_set():
                try:
                    status = _chat(client, text).status_code
                except httpx.HTTPError as exc:
                    with self._lock:
                        self.failures.append(repr(exc))
                    continue
                with self._lock:
                    self.statuses[status] += 1

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=20)


def test_a_running_proxy_serves_the_promoted_version_without_failing_a_request(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    reg = tmp_path / "guard-classifier"
    write_tiny_guard_model(reg / "v1", fires_on="pineapple")
    write_tiny_guard_model(reg / "v2", fires_on="mango")
    promote(reg, "v1")
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.format(upstream=upstream.base_url, registry=reg, audit=tmp_path / "audit.db"))

    with ProxyServer(policy, watch=True, watch_interval_s=0.05) as proxy, httpx.Client(base_url=proxy.url) as client:
        assert _blocked(client, "tell me about pineapple")
        assert not _blocked(client, "tell me about mango")

        # A slow request admitted under v1 finishes under v1's runtime, after the swap.
        upstream.enqueue(Reply(content="slow answer", delay_s=1.0))
        slow: dict[str, httpx.Response] = {}

        def send_slow() -> None:
            with httpx.Client(base_url=proxy.url, timeout=15) as own:
                slow["r"] = _chat(own, "slow please")

        slow_thread = threading.Thread(target=send_slow)
        slow_thread.start()
        assert wait_until(lambda: any("slow please" in json.dumps(r.body) for r in upstream.requests))

        with Traffic(proxy.url, "tell me about pineapple") as traffic:
            assert wait_until(lambda: traffic.statuses[400] >= 3)
            promote(reg, "v2", reason="v1 blocks fruit")
            assert wait_until(lambda: not _blocked(client, "tell me about pineapple"), timeout_s=10)
            assert wait_until(lambda: traffic.statuses[200] >= 3)
        slow_thread.join(timeout=15)
        assert traffic.failures == []
        assert set(traffic.statuses) == {200, 400}, traffic.statuses  # decisions changed, nothing failed
        assert slow["r"].status_code == 200 and slow["r"].json()["choices"][0]["message"]["content"] == "slow answer"
        assert _blocked(client, "tell me about mango")

        rollback(reg, reason="back")
        assert wait_until(lambda: _blocked(client, "tell me about pineapple"), timeout_s=10)
        assert not _blocked(client, "tell me about mango")

        # A promoted version that does not load: the failure is counted and v1 keeps serving.
        write_tiny_guard_model(reg / "v3", fires_on="mango")
        (reg / "v3" / "model.onnx").write_bytes(b"not an onnx file")
        promote(reg, "v3", reason="corrupt on purpose")
        assert wait_until(lambda: 'result="failed"} 1.0' in proxy.get("/metrics").text, timeout_s=10)
        assert _blocked(client, "tell me about pineapple")
        assert not _blocked(client, "tell me about mango")
        assert proxy.get("/healthz").status_code == 200
        time.sleep(0.3)  # six polls: a version that failed is not rebuilt on every poll
        assert 'result="failed"} 1.0' in proxy.get("/metrics").text

        # Repairing the version in place is noticed and loads.
        write_tiny_guard_model(reg / "v3", fires_on="mango")
        assert wait_until(lambda: _blocked(client, "tell me about mango"), timeout_s=10)
        assert not _blocked(client, "tell me about pineapple")


def test_presidio_and_the_policy_name_the_registries_they_serve_from(tmp_path: Path) -> None:
    pytest.importorskip("presidio_analyzer")
    from guardproxy.detectors.model_files import default_models_root
    from guardproxy.detectors.presidio import PresidioDetector
    from guardproxy.detectors.presidio_config import SHIPPED_MODEL, PresidioConfig
    from guardproxy.policies.loader import parse_policy
    from guardproxy.policies.watcher import policy_model_dirs

    shipped = default_models_root() / SHIPPED_MODEL
    det = PresidioDetector("pii", PresidioConfig(type="presidio"), DetectorDeps())
    assert det.model_dirs() == (ModelDir(shipped, resolve_model_dir(shipped)),)

    reg = tmp_path / "r"
    write_tiny_guard_model(reg / "v1", fires_on="mango")
    text = POLICY.format(upstream="http://127.0.0.1:9/v1", registry=reg, audit=tmp_path / "a.db")
    text = text.replace(
        "input:",
        "  pii: {type: presidio}\n  fixed: {type: moderation_classifier, model_path: %s}\ninput:" % (reg / "v1"),
    )
    dirs = policy_model_dirs(parse_policy(text, source="test"))
    assert set(dirs) == {
        ModelDir(reg, reg / "v1"),
        ModelDir(reg / "v1", reg / "v1"),
        ModelDir(shipped, resolve_model_dir(shipped)),
    }
