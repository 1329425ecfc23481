"""The shipped sidecar configs fit what ships beside them: the policy's detectors, the model registry, its card."""

from __future__ import annotations

from pathlib import Path

import pytest

from guardproxy.detectors.model_card import ModelCard
from guardproxy.detectors.model_files import resolve_model_dir
from guardproxy.policies.loader import load_policy
from guardproxy.trainer.sidecar import load_config
from guardproxy.trainer.sidecar.evaluate import group_members
from guardproxy.trainer.sidecar.run import classifier_config, dataset_config, registry_dir, snapshot_spec

ROOT = Path(__file__).resolve().parents[1]


def test_the_guard_sidecar_trains_the_model_policy_yaml_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    cfg = load_config(ROOT / "configs" / "sidecar" / "guard.yaml")
    dataset, classifier = dataset_config(cfg), classifier_config(cfg)
    policy = load_policy(ROOT / "policy.yaml")

    assert Path(str(dataset.policy)).resolve() == ROOT / "policy.yaml"
    assert list(dataset.signals) == list(policy.learning.signals)  # the policy decides what traffic may teach
    step_detectors = {step.detector for step in policy.input}
    assert set(dataset.detectors) <= step_detectors and set(dataset.detectors) <= set(policy.detectors)
    served = policy.detectors[dataset.detectors[0]]
    assert served.type == "injection_classifier"

    registry = registry_dir(classifier).resolve()
    assert registry == ROOT / "models" / "guard-classifier"
    current = resolve_model_dir(registry)
    card = ModelCard.load(current)
    # Same outputs and head: the run starts from the current version (dequantized), not from the base model.
    assert list(card.labels) == classifier.labels and card.head == classifier.head
    assert group_members(card, cfg.metric_group) == ("injection", ["injection"])
    spec = snapshot_spec(cfg, classifier, dataset)
    assert spec["label_map"] == {"injection": ["injection"], "benign": []}
    assert set(spec["unknown_labels"]) == set(classifier.labels) - {"injection"}


def test_an_inline_dataset_naming_a_policy_follows_its_learning_section(tmp_path: Path) -> None:
    # Added before the shipped file's last line, `# end of policy`, which must stay last.
    policy = (
        (ROOT / "policy.yaml")
        .read_text()
        .replace("# end of policy", "learning:\n  signals: [feedback]\n# end of policy")
    )
    (tmp_path / "policy.yaml").write_text(policy.replace("path: ./guardproxy-audit.db", "path: ./traffic.db"))
    (tmp_path / "sidecar.yaml").write_text(
        "name: s\n"
        "dataset: {name: d, policy: policy.yaml, target: injection, detectors: [injection_model]}\n"
        f"classifier: {ROOT / 'configs' / 'train' / 'guard.yaml'}\n"
        "eval_sets: [eval.jsonl]\n"
    )
    dataset = dataset_config(load_config(tmp_path / "sidecar.yaml"))
    assert dataset.signals == ["feedback"]
    assert Path(dataset.audit_store).resolve() == (tmp_path / "traffic.db").resolve()
