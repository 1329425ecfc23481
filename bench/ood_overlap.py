"""Check that the out-of-family evaluation sets share no text with any training config.

    python bench/ood_overlap.py                                    # guard.yaml and guard_v4.yaml
    python bench/ood_overlap.py --config configs/train/guard.yaml
    python bench/ood_overlap.py --no-guard-sft                     # leave configs/train/data/guard_sft/ out

The training side is every text of the configs plus, unless --no-guard-sft, the `user` and `answer` texts of
configs/train/data/guard_sft/*.jsonl (the Llama Guard style SFT data, train and held-out: both must stay apart
from these sets). For every record of bench/data/ood/*.jsonl, bench/data/first_run/*.jsonl,
bench/data/ood_jailbreaks.jsonl and tests/data/code_answers.jsonl (its `text`, and its `answer` where it has one,
as the first-run suite does):
an *exact* overlap is the same normalised text (NFKC, lower case, collapsed spaces) in the training data, a
*near* one a training text whose word set has Jaccard similarity >= 0.6 with it. Exits 1 when any is found,
listing them, so a data change that leaks an evaluation text into training is caught.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from guardproxy.trainer.classifier.config import load_config  # noqa: E402
from guardproxy.trainer.classifier.data import load_examples, normalise, word_set  # noqa: E402

NEAR = 0.6
COMMON = 2000  # words in more training texts than this do not make candidates (they cannot decide a 0.6 overlap alone)
EVAL_FILES = [
    *sorted((ROOT / "bench" / "data" / "ood").glob("*.jsonl")),
    *sorted((ROOT / "bench" / "data" / "first_run").glob("*.jsonl")),
    ROOT / "bench" / "data" / "ood_jailbreaks.jsonl",
    ROOT / "tests" / "data" / "code_answers.jsonl",  # real code answers: the output steps' test and probe
]
GUARD_SFT = ROOT / "configs" / "train" / "data" / "guard_sft"


def guard_sft_texts(folder: Path) -> list[str]:
    """The user turns and answers of the guard SFT files (records `{"user", "answer", ...}`)."""
    texts: list[str] = []
    for path in sorted(folder.glob("*.jsonl")):
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    record = json.loads(line)
                    texts += [t for t in (record["user"], record["answer"]) if t]
    return texts


def eval_texts(record: dict[str, object]) -> list[str]:
    return [t for t in (record.get("text"), record.get("answer")) if isinstance(t, str)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, action="append")
    parser.add_argument("--no-guard-sft", action="store_true", help="do not check configs/train/data/guard_sft/")
    args = parser.parse_args(argv)
    configs = args.config or [ROOT / "configs/train/guard.yaml", ROOT / "configs/train/guard_v4.yaml"]
    train: dict[str, str] = {}
    for config in configs:
        examples, _ = load_examples(load_config(str(config)))
        train |= {normalise(e.text): e.text for e in examples}
    if not args.no_guard_sft:
        train |= {normalise(t): t for t in guard_sft_texts(GUARD_SFT)}
    texts = list(train.values())
    sets = [word_set(t) for t in texts]
    index: defaultdict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(sets):
        for w in s:
            index[w].append(i)
    found = 0
    for path in EVAL_FILES:
        with path.open(encoding="utf-8") as fh:
            records = [json.loads(line) for line in fh if line.strip()]
        exact = near = 0
        for text in (t for r in records for t in eval_texts(r)):
            if normalise(text) in train:
                exact += 1
                print(f"EXACT {path.name}: {text[:100]!r}")
                continue
            mine = word_set(text)
            # Candidates share a rarer word; their Jaccard is then computed on the whole word sets (counting
            # only the rarer shared words, as before, underestimated it: short questions were missed).
            candidates = {i for w in mine if len(index[w]) <= COMMON for i in index[w]}
            best = max(((len(mine & sets[i]) / len(mine | sets[i]), i) for i in candidates), default=(0.0, -1))
            if best[0] >= NEAR:
                near += 1
                print(f"NEAR {best[0]:.2f} {path.name}: {text[:80]!r} ~ {texts[best[1]][:80]!r}")
        found += exact + near
        print(f"{path.relative_to(ROOT)}: {len(records)} records, {exact} exact, {near} near duplicates of training")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
