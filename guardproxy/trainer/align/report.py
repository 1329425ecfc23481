"""report.json (everything) and report.md (what a reviewer reads first) of an SFT/DPO run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_report(out: Path, report: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    (out / "report.md").write_text(markdown(report), encoding="utf-8")


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# {report['method'].upper()} run",
        "",
        f"- Base model: `{report['base_model']}`",
        f"- Examples: {report['examples']}; steps: {report['global_step']} of {report['max_steps']}"
        + (f" (resumed from `{report['resumed_from']}`)" if report["resumed_from"] else ""),
        f"- Adapter: `{report['adapter_dir']}`"
        + (f"; merged model: `{report['merged_dir']}`" if report["merged_dir"] else ""),
    ]
    losses = report["losses"]
    if losses:
        lines.append(
            f"- Loss: {losses[0]['loss']:.4f} (step {losses[0]['step']}) -> {losses[-1]['loss']:.4f} (step {losses[-1]['step']})"
        )
    evaluation = report["evaluation"]
    if evaluation:
        base, tuned = evaluation["base"], evaluation["tuned"]
        lines += [
            "",
            "## Refusals (greedy decoding, keyword rule)",
            "",
            "| Model | Refused harmful (higher is safer) | Refused safe (over-refusal, lower is better) |",
            "|---|---|---|",
            f"| base | {base['refusal_rate']:.1%} of {base['harmful_prompts']} | {base['over_refusal_rate']:.1%} of {base['safe_prompts']} |",
            f"| tuned | {tuned['refusal_rate']:.1%} of {tuned['harmful_prompts']} | {tuned['over_refusal_rate']:.1%} of {tuned['safe_prompts']} |",
            "",
            f"A reply counts as a refusal when one of {len(evaluation['rule']['phrases'])} phrases (e.g. "
            f'"{evaluation["rule"]["phrases"][0]}") occurs in its first {evaluation["rule"]["window_chars"]} characters.',
        ]
    return "\n".join(lines) + "\n"
