"""Preference triples from `revise` output steps: the prompt, the answer a step rejected, the rewrite it released.

They are DPO training pairs (`guardproxy trainer dpo`). Keyed by the request id of the audit record they
came from; every text is scrubbed of personal data by the store before it is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from guardproxy.core import JSON


@dataclass(frozen=True, slots=True)
class ChatTurn:
    role: str
    content: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Preference:
    request_id: str
    ts: float  # unix seconds
    model: str  # the model name the client asked for
    step: str  # the output step that fired on the rejected answer
    prompt: Sequence[ChatTurn]  # the conversation the backend answered, as it saw it (after input edits)
    rejected: str
    chosen: str
    critique: str = ""

    def to_dict(self) -> JSON:
        """TRL's conversational preference format, plus where the pair came from."""
        return {
            "request_id": self.request_id,
            "ts": self.ts,
            "model": self.model,
            "step": self.step,
            "prompt": [{"role": t.role, "content": t.content} for t in self.prompt],
            "chosen": self.chosen,
            "rejected": self.rejected,
            "critique": self.critique,
        }
