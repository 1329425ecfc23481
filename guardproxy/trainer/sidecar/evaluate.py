"""Score the current and the candidate version on the same labelled texts, through the serving code path.

Each model is loaded with `OnnxTextClassifier` (the int8 export the proxy serves) and decides at its own model
card operating point, exactly as a policy step with the default threshold would. The metrics are those of the
classifier trainer (`binary_metrics`), about one model-card group (or one label).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from guardproxy.detectors.model_card import ModelCard
from guardproxy.detectors.onnx_classifier import OnnxTextClassifier
from guardproxy.trainer.classifier.config import CATEGORIES, ClassifierTrainConfig
from guardproxy.trainer.classifier.evaluate import binary_metrics
from guardproxy.trainer.dataset.config import DatasetBuildConfig
from guardproxy.trainer.dataset.snapshot import read_jsonl

REPORTED = ("precision", "recall", "f1", "fpr", "pr_auc", "roc_auc")


@dataclass(frozen=True, slots=True)
class LabelledText:
    text: str
    positive: bool


@dataclass(frozen=True, slots=True)
class LabelRules:
    """How a dataset label becomes positive/negative for the gated group."""

    members: frozenset[str]  # model labels of the gated group
    negative_class: str | None  # softmax: labels[0]
    label_map: dict[str, str | list[str]]
    overrides: dict[str, str]
    snapshot_positive: str
    snapshot_negative: str

    def positive(self, row: dict[str, Any]) -> bool | None:
        label = row.get("label")
        if not isinstance(label, str):
            return None
        if label in self.overrides:
            return self.overrides[label] == "positive"
        if label in self.label_map:
            target = self.label_map[label]
            names = target if isinstance(target, list) else [target]
            if CATEGORIES in names:
                names = [str(c) for c in row.get("categories") or []]
            return bool(self.members & set(names))
        if label in (self.snapshot_positive, "unsafe"):
            return True
        if label in (self.snapshot_negative, "safe"):
            return False
        return None


def group_members(card: ModelCard, group: str | None) -> tuple[str, list[str]]:
    """(group name, its model labels): a card group, a single label, or the card's first group."""
    groups = card.groups
    if group is None:
        if not groups:
            raise ValueError("the model card names no groups: set metric_group")
        group = next(iter(groups))
    if group in groups:
        return group, list(groups[group])
    if group in card.labels:
        return group, [group]
    raise ValueError(f"metric_group {group!r}: not a group {sorted(groups)} or label {list(card.labels)} of the model")


def label_rules(
    classifier: ClassifierTrainConfig, dataset: DatasetBuildConfig, members: Sequence[str], overrides: dict[str, str]
) -> LabelRules:
    return LabelRules(
        members=frozenset(members),
        negative_class=classifier.labels[0] if classifier.head == "softmax" else None,
        label_map=dict(classifier.label_map),
        overrides=dict(overrides),
        snapshot_positive=dataset.pos_label,
        snapshot_negative=dataset.negative_label,
    )


def labelled(
    rows: Iterable[dict[str, Any]], rules: LabelRules, skipped: Counter[str], where: str
) -> list[LabelledText]:
    out: list[LabelledText] = []
    for row in rows:
        text = row.get("text")
        positive = rules.positive(row)
        if not isinstance(text, str) or not text.strip() or positive is None:
            skipped[f"{where}:{row.get('label')}"] += 1
            continue
        out.append(LabelledText(text, positive))
    return out


def load_eval_sets(paths: Sequence[str], rules: LabelRules, skipped: Counter[str]) -> list[LabelledText]:
    texts: list[LabelledText] = []
    for path in paths:
        texts.extend(labelled(read_jsonl(Path(path)), rules, skipped, Path(path).name))
    return texts


class GroupScorer:
    """One model's decision score for a group, and the threshold at which it fires."""

    def __init__(self, model_dir: Path, group: str | None, threads: int) -> None:
        self.classifier = OnnxTextClassifier(model_dir, threads=threads)
        card = self.classifier.card
        self.group, members = group_members(card, group)
        self.columns = [card.labels.index(m) for m in members]
        if self.classifier.head == "sigmoid":
            self.scale = np.asarray([card.thresholds[m] for m in members], dtype=np.float64)
            self.threshold = 1.0  # score = max over labels of p / threshold: fires at 1
        else:
            if card.threshold is None:
                raise ValueError(f"{model_dir}: a softmax model card without a 'threshold'")
            self.scale = np.ones(len(members), dtype=np.float64)
            self.threshold = float(card.threshold)

    def score(self, text: str) -> float:
        probs = self.classifier.score(text).probs.astype(np.float64)  # [windows, classes]
        if self.classifier.head == "sigmoid":
            return float((probs[:, self.columns] / self.scale).max())
        return float(probs[:, self.columns].sum(axis=1).max())  # P(any class of the group), worst window

    def scores(self, texts: Sequence[LabelledText]) -> npt.NDArray[np.float64]:
        return np.asarray([self.score(t.text) for t in texts], dtype=np.float64)


def model_metrics(scorer: GroupScorer, texts: Sequence[LabelledText]) -> dict[str, Any]:
    """Metrics at the model's own operating point, plus its decision per text (for the report's flips)."""
    if not texts:
        return {"n": 0}
    scores = scorer.scores(texts)
    positive = np.asarray([t.positive for t in texts], dtype=bool)
    metrics = binary_metrics(scores, positive, scorer.threshold)
    metrics["threshold"] = scorer.threshold
    metrics["fired"] = (scores >= scorer.threshold).tolist()
    return metrics
