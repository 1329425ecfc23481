"""Export: torch -> ONNX (eager attention, so onnxruntime can fuse it) -> fused BERT graph -> int8 per channel."""

from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification

ONNX_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"


def export_int8(model_dir: Path, tokenizer_file: Path, out_dir: Path, *, per_channel: bool) -> dict[str, Any]:
    """Write `model.onnx` (int8) and `tokenizer.json` into out_dir; return facts for the model card."""
    from onnxruntime.quantization import QuantType, quantize_dynamic  # type: ignore[import-untyped]
    from onnxruntime.transformers.optimizer import optimize_model  # type: ignore[import-untyped]

    config = AutoConfig.from_pretrained(str(model_dir))
    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir), attn_implementation="eager")
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        fused = Path(tmp) / "fused.onnx"
        dummy = torch.ones((1, 16), dtype=torch.long)
        axes = {0: "batch", 1: "sequence"}
        with warnings.catch_warnings():
            # The TorchScript exporter is deprecated (it and its internals warn so), but its BERT graph is what
            # onnxruntime's optimizer fuses. Tracer warnings flag Python branches on shapes; `parity()` checks
            # the export on real windows instead.
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # type: ignore[attr-defined]
            # transformers builds the attention mask with non-negative advanced indexing, which exports correctly.
            warnings.filterwarnings("ignore", message="Exporting aten::index operator", category=UserWarning)
            torch.onnx.export(
                model,
                (dummy, torch.ones_like(dummy), torch.zeros_like(dummy)),
                str(fp32),
                input_names=["input_ids", "attention_mask", "token_type_ids"],
                output_names=["logits"],
                dynamic_axes={
                    "input_ids": axes,
                    "attention_mask": axes,
                    "token_type_ids": axes,
                    "logits": {0: "batch"},
                },
                opset_version=17,
                dynamo=False,
            )
        optimized = optimize_model(
            str(fp32),
            model_type="bert",
            num_heads=int(config.num_attention_heads),
            hidden_size=int(config.hidden_size),
        )
        optimized.save_model_to_file(str(fused))
        fused_ops = optimized.get_fused_operator_statistics()
        quantize_dynamic(
            str(fused),
            str(out_dir / ONNX_FILE),
            per_channel=per_channel,
            weight_type=QuantType.QInt8,
            # Shape inference cannot type the outputs of fused com.microsoft ops; they are all float.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    shutil.copyfile(tokenizer_file, out_dir / TOKENIZER_FILE)
    return {
        "onnx_file": ONNX_FILE,
        "tokenizer_file": TOKENIZER_FILE,
        "opset": 17,
        "quantization": {"type": "dynamic int8", "per_channel": per_channel},
        "fused_operators": {k: int(v) for k, v in fused_ops.items() if v},
    }


def parity(model_dir: Path, onnx_dir: Path, windows: list[list[int]]) -> dict[str, float]:
    """Probability agreement of the int8 export with the torch model on real windows."""
    from guardproxy.detectors.onnx_classifier import OnnxTextClassifier

    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir), attn_implementation="eager")
    model.eval()
    served = OnnxTextClassifier(onnx_dir)
    diffs: list[float] = []
    agree = 0
    for ids in windows:
        batch = np.asarray([ids], dtype=np.int64)
        with torch.no_grad():
            logits = model(input_ids=torch.from_numpy(batch)).logits
            # The same head as the served model: comparing softmax with sigmoid outputs measures nothing.
            ref = (torch.sigmoid(logits) if served.head == "sigmoid" else torch.softmax(logits, dim=-1)).numpy()[0]
        got = served._run(batch)[0]
        diffs.append(float(np.abs(ref - got).max()))
        agree += int(ref.argmax() == got.argmax())
    return {
        "windows": float(len(windows)),
        "max_abs_prob_diff": max(diffs),
        "mean_abs_prob_diff": float(np.mean(diffs)),
        "argmax_agreement": agree / len(windows),
    }
