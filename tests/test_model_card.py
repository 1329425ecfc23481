"""`ModelCard`: the one typed card the trainer writes and the runtime, sidecar and registry read."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from guardproxy.detectors.base import DetectorDeps
from guardproxy.detectors.configs import InjectionClassifierConfig
from guardproxy.detectors.model_card import ModelCard, ModelCardInvalid, ServingSpec
from guardproxy.detectors.model_files import CARD_FILE, default_models_root
from guardproxy.detectors.onnx_classifier import InjectionClassifierDetector
from guardproxy.errors import DetectorFailed
from guardproxy.trainer.registry import list_versions
from guardproxy.trainer.sidecar.evaluate import group_members

SHIPPED = sorted(default_models_root().glob(f"*/v*/{CARD_FILE}"))


def test_models_ship_cards() -> None:
    assert {p.parent.parent.name for p in SHIPPED} >= {"guard-classifier", "pii-ner"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: f"{p.parent.parent.name}/{p.parent.name}")
def test_shipped_cards_load_and_dump_unchanged(path: Path, tmp_path: Path) -> None:
    card = ModelCard.load(path.parent)
    assert card.dump(tmp_path).read_bytes() == path.read_bytes()  # same JSON, same key order, same numbers
    assert card.to_dict() == json.loads(path.read_text())
    assert ModelCard.load(tmp_path) == card


def test_the_shipped_classifier_card_reads_as_typed_values() -> None:
    raw = json.loads((default_models_root() / "guard-classifier" / "v3" / CARD_FILE).read_text())
    card = ModelCard.load(default_models_root() / "guard-classifier" / "v3")
    assert card.head == "sigmoid" and isinstance(card.serving, ServingSpec)
    assert card.labels == tuple(raw["labels"])
    assert card.groups == {group: tuple(members) for group, members in raw["groups"].items()}
    assert card.thresholds == raw["thresholds"]
    assert card.serving.onnx_file == raw["serving"]["onnx_file"]
    assert card.serving.extra == {"quantization": raw["serving"]["quantization"]}
    assert card.extra["description"] == raw["description"]  # fields nobody reads are kept as written
    assert group_members(card, None) == ("injection", ["injection"])


def test_a_changed_card_keeps_the_files_key_order(tmp_path: Path) -> None:
    source = default_models_root() / "guard-classifier" / "v3"
    card = ModelCard.load(source)
    changed = replace(card, thresholds={**card.thresholds, "injection": 0.5}, extra={**card.extra, "note": "x"})
    written = json.loads(changed.dump(tmp_path).read_text())
    assert list(written)[:-1] == list(json.loads((source / CARD_FILE).read_text()))
    assert list(written)[-1] == "note" and written["thresholds"]["injection"] == 0.5


@pytest.mark.parametrize(
    ("card", "message"),
    [
        ([], "must be a JSON object"),
        ({"labels": "injection"}, "'labels' must be a list of strings"),
        ({"labels": ["a"], "serving": {"head": "relu"}}, "serving.head must be one of softmax, sigmoid"),
        (
            {"labels": ["a"], "serving": {"head": "sigmoid", "max_length": "512"}},
            "'serving.max_length' must be an integer",
        ),
        ({"labels": ["a"], "thresholds": {"a": "high"}}, "'thresholds' must be an object of numbers"),
        ({"labels": ["a"], "groups": {"g": "a"}}, "'groups.g' must be a list of strings"),
    ],
)
def test_a_malformed_card_names_the_field(tmp_path: Path, card: object, message: str) -> None:
    (tmp_path / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(ModelCardInvalid, match=message):
        ModelCard.load(tmp_path)


def test_the_classifier_refuses_a_card_of_another_kind_of_model(tmp_path: Path) -> None:
    # The spaCy NER card has no `serving` section: before, this surfaced as "KeyError: 'serving'".
    shutil.copy(default_models_root() / "pii-ner" / "v1" / CARD_FILE, tmp_path / CARD_FILE)
    config = InjectionClassifierConfig(type="injection_classifier", model_path=str(tmp_path))
    with pytest.raises(DetectorFailed, match="the model card has no 'serving' section"):
        InjectionClassifierDetector("x", config, DetectorDeps())


def test_the_registry_lists_cards_of_every_kind(tmp_path: Path) -> None:
    registry = tmp_path / "pii-ner"
    shutil.copytree(default_models_root() / "pii-ner" / "v1", registry / "v1", ignore=lambda *_: ["vocab", "ner"])
    (registry / "v2").mkdir()
    (registry / "v2" / CARD_FILE).write_text('{"labels": "not a list"}')  # listed, with the directory's time
    [v1, v2] = list_versions(registry)
    assert v1.created == json.loads((registry / "v1" / CARD_FILE).read_text())["created"]
    assert v2.version == "v2" and v2.created


def test_reevaluating_rewrites_the_operating_point_and_logs_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from guardproxy.trainer.classifier import reevaluate as module

    shutil.copy(default_models_root() / "guard-classifier" / "v3" / CARD_FILE, tmp_path / CARD_FILE)
    before = ModelCard.load(tmp_path)
    new_thresholds = dict.fromkeys(before.labels, 0.25)
    evaluation = {**before.evaluation, "thresholds": new_thresholds}
    cfg = SimpleNamespace(labels=list(before.labels), head="sigmoid")
    monkeypatch.setattr(module, "load_config", lambda path, overrides: cfg)
    monkeypatch.setattr(module, "load_examples", lambda cfg: ([], None))
    monkeypatch.setattr(module, "evaluate_held_out", lambda cfg, model_dir, examples: evaluation)

    module.reevaluate("train.yaml", tmp_path, {"target_fpr": 0.02})

    after = json.loads((tmp_path / CARD_FILE).read_text())
    assert after["thresholds"] == new_thresholds
    [log] = after["reevaluations"]
    assert log["overrides"] == {"target_fpr": 0.02} and log["config"] == "train.yaml"
    assert log["operating_point_before"] == {"threshold": None, "thresholds": dict(before.thresholds)}
    assert after["config"]["target_fpr"] == 0.02
    assert list(after)[: len(before.key_order)] == list(before.key_order)
    assert (tmp_path / "README.md").read_text().startswith("# guard-classifier v3")
