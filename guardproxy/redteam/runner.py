"""Send every probe to the target with the official `openai` SDK (judging: guardproxy/redteam/judging.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import openai

from guardproxy.redteam.judging import Judge, Outcome, ProbeResult, judge, looks_like_refusal
from guardproxy.redteam.suites import Probe


class TargetUnreachable(Exception):
    """The target URL does not answer at all (connection refused, DNS, timeout)."""


def run_probes(
    probes: Sequence[Probe],
    *,
    base_url: str,
    api_key: str,
    model: str,
    mode: Judge,
    concurrency: int = 4,
    timeout_s: float = 60.0,
) -> list[ProbeResult]:
    with openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=timeout_s) as client:
        send = _sender(client, model, mode)
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            return list(pool.map(send, probes))


def _sender(client: openai.OpenAI, model: str, mode: Judge) -> Callable[[Probe], ProbeResult]:
    def send(probe: Probe) -> ProbeResult:
        try:
            completion = client.chat.completions.create(
                model=model,
                messages=list(probe.messages),  # type: ignore[arg-type]  # JSONL messages, SDK-shaped
                max_tokens=512,
            )
        except openai.APIConnectionError as exc:
            raise TargetUnreachable(f"{client.base_url}: {exc}") from exc
        except openai.APIStatusError as exc:
            blocked = exc.status_code == 400 and exc.code == "content_filter"
            outcome = Outcome.BLOCKED if blocked else Outcome.ERROR
            return ProbeResult(probe, outcome, judge(probe, outcome, "", mode), f"{exc.status_code}: {exc.message}")
        choice = completion.choices[0]
        answer = choice.message.content or ""
        if choice.finish_reason == "content_filter":
            outcome = Outcome.BLOCKED
        elif looks_like_refusal(answer):
            outcome = Outcome.REFUSED
        else:
            outcome = Outcome.ANSWERED
        return ProbeResult(probe, outcome, judge(probe, outcome, answer, mode), answer[:200])

    return send
