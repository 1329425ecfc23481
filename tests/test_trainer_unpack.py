"""Torch weights back out of an int8 export (`unpack`): the warm start of versions that ship only their ONNX."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from tests.test_trainer_classifier import ATTACKS, BENIGN, FILLER, _config_file, _tiny_base_model


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny version that kept its torch weights (the reference), and its training config."""
    from guardproxy.trainer.classifier import load_config, main

    root = tmp_path_factory.mktemp("unpack")
    _tiny_base_model(root / "base")
    config = _config_file(root, max_steps=8)
    return main(load_config(config)), config


def test_unpacked_weights_are_the_trained_ones_within_one_quantisation_step(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    import torch
    from safetensors.torch import load_file

    from guardproxy.trainer.classifier import load_config
    from guardproxy.trainer.classifier.unpack import unpack_version

    version, config = trained
    out = unpack_version(version, load_config(config), config.parent / "base", tmp_path / "unpacked")
    reference = load_file(str(version / "torch" / "model.safetensors"))
    unpacked = load_file(str(out / "model.safetensors"))
    assert set(unpacked) == set(reference)
    quantized = 0
    for name, ref in reference.items():
        diff = float((unpacked[name] - ref).abs().max())
        if (name.endswith(".bias") and "embeddings" not in name) or (".encoder." in name and "LayerNorm" in name):
            assert diff == 0.0, name  # kept as float in the export
        else:
            quantized += 1
            assert diff <= float(ref.abs().max()) / 127 + 1e-7, (name, diff)  # int8: one step is max|w| / 127
        assert unpacked[name].dtype == torch.float32
    # Per layer q, k, v, attention out, intermediate, output; three embeddings and their layer norm; two heads.
    assert quantized == 2 * 6 + 3 + 2 + 2
    assert json.loads((out / "UNPACKED.json").read_text())["from"] == str(version)


def test_exporting_the_unpacked_model_again_serves_the_same_scores(trained: tuple[Path, Path], tmp_path: Path) -> None:
    from guardproxy.detectors.onnx_classifier import OnnxTextClassifier
    from guardproxy.trainer.classifier import load_config
    from guardproxy.trainer.classifier.export import export_int8
    from guardproxy.trainer.classifier.unpack import unpack_version

    version, config = trained
    out = unpack_version(version, load_config(config), config.parent / "base", tmp_path / "unpacked")
    again = tmp_path / "again"
    export_int8(out, version / "tokenizer.json", again, per_channel=True)
    (again / "model_card.json").write_text((version / "model_card.json").read_text())
    texts = [*ATTACKS, *BENIGN, FILLER * 10 + ATTACKS[0]]
    served, round_trip = OnnxTextClassifier(version, threads=1), OnnxTextClassifier(again, threads=1)
    diffs = [float(np.abs(served.score(t).probs - round_trip.score(t).probs).max()) for t in texts]
    assert max(diffs) < 0.02, diffs


def test_an_export_of_another_graph_is_refused_with_a_clear_error(trained: tuple[Path, Path], tmp_path: Path) -> None:
    import onnx

    from guardproxy.trainer.classifier import load_config
    from guardproxy.trainer.classifier.unpack import UnpackError, unpack_version

    version, config = trained
    broken = tmp_path / "v9"
    broken.mkdir()
    model = onnx.load(str(version / "model.onnx"))
    for node in model.graph.node:  # the dense biases name the layers: without them nothing can be placed
        node.input[:] = [i.replace(".dense.bias", ".dense.b") for i in node.input]
    onnx.save(model, str(broken / "model.onnx"))
    with pytest.raises(UnpackError, match="no dense bias downstream"):
        unpack_version(broken, load_config(config), config.parent / "base", tmp_path / "out")
