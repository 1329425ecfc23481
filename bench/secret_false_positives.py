"""How often the `SECRET` entity of pii_regex fires on benign text (it blocks answers in the shipped policy).

    python bench/secret_false_positives.py [DATASETS_DIR]     # default /work/shared/datasets

Reads the benign rows of the shared data sets (prompts, StackOverflow code answers from BIPIA, ...) and
prints, per set, the texts it fired on and the first few matches in context.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from guardproxy.detectors.pii_regex import find_pii

SETS = ("bipia_indirect_injection", "benign_prompts", "cyberseceval_frr_benign", "wildguard_benign")


def main(root: Path) -> None:
    total_texts = total_chars = total_hits = 0
    for name in SETS:
        rows = [json.loads(line) for line in (root / name / "train.jsonl").open()]
        benign = [r["text"] for r in rows if r.get("label") == "benign"]
        hits = [(text, span) for text in benign for span in find_pii(text, ["SECRET"])]
        fired = len({text for text, _ in hits})
        chars = sum(len(text) for text in benign)
        total_texts, total_chars, total_hits = total_texts + len(benign), total_chars + chars, total_hits + fired
        print(f"{name}: {len(benign)} benign texts, {chars / 1e6:.2f} M chars, SECRET fired on {fired}")
        for text, span in hits[:5]:
            print("    ", repr(text[max(0, span.start - 40) : span.end + 20]))
    print(f"all: {total_texts} texts, {total_chars / 1e6:.2f} M chars, fired on {total_hits}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/work/shared/datasets"))
