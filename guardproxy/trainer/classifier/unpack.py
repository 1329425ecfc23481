"""Torch weights from a served int8 export: the warm start of a version that did not keep its `torch/` copy.

The shipped models carry only their int8 ONNX (the fp32 weights would be 4x the size in git). To fine-tune
"from the current version" anyway, the int8 weights are dequantized back into the Hugging Face model they were
exported from. The result is not the original fp32 model: each weight is off by at most half its quantisation
step, which is also all the served model knows of it, so training continues from what actually serves.

Only the graph `export_int8` writes is understood: onnxruntime's fused BERT (QEmbedLayerNormalization,
QAttention with packed QKV, MatMulInteger for the other dense layers), per-channel or per-tensor int8.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import torch
from onnx import numpy_helper

from guardproxy.trainer.classifier.config import ClassifierTrainConfig

FloatArray = npt.NDArray[np.float32]
UNPACKED_NOTE = "dequantized from the int8 export"


class UnpackError(ValueError):
    """The ONNX graph is not the fused int8 BERT that `export_int8` writes."""


def _dequantize(tensors: dict[str, npt.NDArray[np.generic]], name: str) -> FloatArray:
    """`<name>_quantized` with its scale and zero point (per tensor, or per output column) as float32."""
    quantized = tensors[f"{name}_quantized"].astype(np.float32)
    scale = tensors[f"{name}_scale"].astype(np.float32)
    zero = tensors[f"{name}_zero_point"].astype(np.float32)
    if scale.ndim == 1 and quantized.ndim == 2:  # per column of an [in, out] MatMul weight
        return (quantized - zero[None, :]) * scale[None, :]
    return (quantized - zero) * scale


def _consumers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    found: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            found.setdefault(name, []).append(node)
    return found


def _linear_name(node: onnx.NodeProto, consumers: dict[str, list[onnx.NodeProto]]) -> str:
    """The torch Linear a MatMulInteger computes: the dense bias its output meets downstream names it."""
    out = node.output[0]
    for _ in range(6):  # MatMulInteger -> Cast -> Mul (scales) -> Add | BiasGelu | SkipLayerNormalization
        following = consumers.get(out, [])
        if len(following) != 1:
            break
        biases = [i for i in following[0].input if i.endswith(".bias") and "LayerNorm" not in i]
        if biases:
            return str(biases[0]).removesuffix(".bias")
        out = following[0].output[0]
    raise UnpackError(f"MatMulInteger {node.name}: no dense bias downstream, cannot tell which layer it is")


def unpack_state_dict(onnx_file: Path) -> dict[str, torch.Tensor]:
    """The BertForSequenceClassification state dict held by a fused int8 export."""
    graph = onnx.load(str(onnx_file)).graph
    tensors = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    consumers = _consumers(graph)
    producers = {out: node for node in graph.node for out in node.output}
    state: dict[str, FloatArray] = {}

    def linear(torch_name: str, weight_in_out: FloatArray, bias: npt.NDArray[np.generic]) -> None:
        state[f"{torch_name}.weight"] = np.ascontiguousarray(weight_in_out.T)  # torch Linear is [out, in]
        state[f"{torch_name}.bias"] = bias.astype(np.float32)

    for part in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
        state[f"bert.embeddings.{part}.weight"] = _dequantize(tensors, f"bert.embeddings.{part}.weight")
    for part in ("weight", "bias"):
        state[f"bert.embeddings.LayerNorm.{part}"] = _dequantize(tensors, f"bert.embeddings.LayerNorm.{part}")
    for node in graph.node:
        if node.op_type != "MatMulInteger":
            continue
        name = _linear_name(node, consumers)
        linear(name, _dequantize(tensors, node.input[1].removesuffix("_quantized")), tensors[f"{name}.bias"])
        if name.endswith(".attention.output.dense"):
            # The attention that feeds this layer's output projection holds its query, key and value, packed
            # side by side as the columns of one [hidden, 3 * hidden] weight.
            attention = producers[producers[node.input[0]].input[0]]  # QAttention -> DynamicQuantizeLinear -> here
            if attention.op_type != "QAttention":
                raise UnpackError(f"{name}: fed by {attention.op_type}, expected the fused QAttention")
            qkv = _dequantize(tensors, attention.input[1].removesuffix("_quantized"))
            qkv_bias = tensors[attention.input[2]]
            hidden = qkv.shape[0]
            prefix = name.removesuffix(".output.dense")
            for j, part in enumerate(("query", "key", "value")):
                columns = slice(j * hidden, (j + 1) * hidden)
                linear(f"{prefix}.self.{part}", qkv[:, columns], qkv_bias[columns])
    for name, array in tensors.items():  # layer norms inside the encoder stay float
        if ".LayerNorm." in name and name.startswith("bert.encoder."):
            state[name] = array.astype(np.float32)
    return {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in state.items()}


def unpack_version(version_dir: Path, cfg: ClassifierTrainConfig, base_dir: Path, out_dir: Path) -> Path:
    """Write the Hugging Face model a version's int8 export holds to `out_dir` (for `init_from`)."""
    from guardproxy.trainer.classifier.train import build_model

    model: Any = build_model(dataclasses.replace(cfg, finetune="full", quantize_base="none"), base_dir)
    try:
        state = unpack_state_dict(version_dir / "model.onnx")
    except KeyError as exc:  # a tensor or node the fused export always has is not there
        raise UnpackError(f"{version_dir}: the export has no {exc}: not a fused int8 BERT export") from exc
    expected = {k for k in model.state_dict() if not k.endswith("position_ids")}
    if missing := expected - set(state):
        raise UnpackError(f"{version_dir}: the export holds no weights for {sorted(missing)[:4]}")
    if extra := set(state) - expected:
        raise UnpackError(f"{version_dir}: the export holds weights the model has no place for: {sorted(extra)[:4]}")
    model.load_state_dict(state, strict=False)  # strict apart from buffers the export never held
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir))
    (out_dir / "UNPACKED.json").write_text(
        json.dumps({"from": str(version_dir), "note": UNPACKED_NOTE}, indent=2) + "\n", encoding="utf-8"
    )
    return out_dir
