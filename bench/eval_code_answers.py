"""How often the `presidio` detector finds "names" and "places" in real code answers
(tests/data/code_answers.jsonl), with the `code_aware` rule off and on.

    python bench/eval_code_answers.py      # prints the findings; writes bench/results/code_answers.json

Every finding here is a false positive: the answers hold no personal data. The shipped policy's output
`pii` step redacts them, so each one mangles an answer (`def [LOCATION], process_type=None):`).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from guardproxy.core import Context
from guardproxy.detectors.base import DetectorDeps
from guardproxy.detectors.presidio import PresidioConfig, PresidioDetector

ROOT = Path(__file__).resolve().parents[1]
ANSWERS = ROOT / "tests/data/code_answers.jsonl"
RESULTS = ROOT / "bench/results/code_answers.json"
SHIPPED = ["PERSON", "ADDRESS", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IBAN_CODE", "IP_ADDRESS"]


async def findings(answers: list[str], code_aware: bool, entities: list[str]) -> list[list[str]]:
    detector = PresidioDetector(
        "pii", PresidioConfig(type="presidio", code_aware=code_aware, entities=entities), DetectorDeps()
    )
    try:
        ctx = Context(request_id="bench", stage="output")
        out = []
        for answer in answers:
            detection = await detector.detect(answer, ctx)
            out.append([f"{s.label}: {answer[s.start : s.end]!r}" for s in detection.spans])
        return out
    finally:
        await detector.aclose()


async def main() -> None:
    answers = [json.loads(line)["answer"] for line in ANSWERS.read_text().splitlines()]
    report: dict[str, object] = {"answers": len(answers), "command": "python bench/eval_code_answers.py"}
    for entities_name, entities in (("shipped_entities", SHIPPED), ("with_location", [*SHIPPED, "LOCATION"])):
        for code_aware in (False, True):
            found = await findings(answers, code_aware, entities)
            key = f"{entities_name}/code_aware={code_aware}"
            hit = [f for f in found if f]
            report[key] = {"answers_with_findings": len(hit), "findings": [x for f in hit for x in f]}
            print(f"{key}: {len(hit)} of {len(answers)} answers with a finding: {[x for f in hit for x in f]}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
