"""`/v1/moderations` answered by the policy's input detectors, in OpenAI's response shape.

Labels that are OpenAI category names (as the moderation classifier reports them) fill those
categories; every detector also gets a `guardproxy/<detector>` category of its own.
"""

from __future__ import annotations

from collections.abc import Sequence

from guardproxy.core import JSON
from guardproxy.policies.chain import Verdict

OPENAI_CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)


def moderation_result(verdict: Verdict) -> JSON:
    categories: dict[str, bool] = dict.fromkeys(OPENAI_CATEGORIES, False)
    scores: dict[str, float] = dict.fromkeys(OPENAI_CATEGORIES, 0.0)
    for r in verdict.results:
        key = f"guardproxy/{r.step.detector_name}"
        score = r.score or 0.0
        categories[key] = categories.get(key, False) or r.fired
        scores[key] = max(scores.get(key, 0.0), score)
        for label, label_score in r.label_scores.items():  # a moderation model scores every category
            if label in scores:
                scores[label] = max(scores[label], label_score)
        for label in r.labels:
            if label in scores:
                categories[label] = categories[label] or r.fired
                scores[label] = max(scores[label], r.label_scores.get(label, score))
    return {
        # Flagged = the policy would refuse this input. A step that only anonymizes or redacts (a name, an
        # email) has fired, and says so in its own category, but that is not harmful content.
        "flagged": any(r.blocks for r in verdict.results),
        "categories": categories,
        "category_scores": scores,
        "category_applied_input_types": {c: ["text"] for c in categories if categories[c]},
    }


def moderation_response(request_id: str, model: str, verdicts: Sequence[Verdict]) -> JSON:
    return {"id": "modr-" + request_id, "model": model, "results": [moderation_result(v) for v in verdicts]}
