"""What reading text as a reader sees it adds per text: `Normalizer.readable` alone, and pii_regex and
blocklist before and after it ("before": the same regexes on the text as given, no view), and scrub_pii
(the audit scrubber, which builds a fresh normaliser per call).

Texts: ordinary answers (ASCII prose, prose with accents and a euro sign, a JSON tool call with an
escape, a long ASCII answer) and the obfuscated ones of issue 10. Each is timed `--iterations`
times after a warm-up; medians (p50) in microseconds.

    python bench/normalize_latency.py --iterations 2000
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from collections.abc import Callable
from functools import partial

from guardproxy.core import Context, Span
from guardproxy.detectors.base import DetectorDeps
from guardproxy.detectors.blocklist import BlocklistDetector
from guardproxy.detectors.configs import BlocklistConfig
from guardproxy.detectors.normalize import Normalizer
from guardproxy.detectors.pii_regex import _FINDERS, _PRIORITY, _Scope, _without_overlaps, find_pii, scrub_pii

SENTENCE = "The quarterly report is ready; revenue grew 4% and the team shipped two releases on time. "
TEXTS: dict[str, str] = {
    "ascii_100": SENTENCE,
    "ascii_2k": SENTENCE * 22,
    "accents_500": ("Le café de la gare ouvre à 8 h, prix 3,50 €, réservé aux clients. " * 7),
    "json_tool_args": '{"to": "jane.roe\\u0040example.org", "subject": "Q3 report", "body": "' + SENTENCE + '"}',
    "obfuscated": "Mail jane.roe\uff20example.org, card 4111.1111.1111.1111, memo internal use \u043enly.",
}


def _plain_find(text: str) -> list[Span]:
    """find_pii as it was: the regexes on the text as given."""
    scope = _Scope.of(text)
    return _without_overlaps([Span(s, e, entity, 1.0) for entity in _PRIORITY for s, e in _FINDERS[entity](scope)])


def _p50_us(fn: Callable[[], object], iterations: int) -> float:
    for _ in range(min(200, iterations)):
        fn()
    samples = []
    for _ in range(iterations):
        started = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - started)
    return statistics.median(samples) / 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=2000)
    args = parser.parse_args()
    normalizer = Normalizer()
    blocklist = BlocklistDetector(
        "banned",
        BlocklistConfig.model_validate({"type": "blocklist", "patterns": ["(?i)internal use only"]}),
        DetectorDeps(),
    )
    ctx = Context(request_id="bench", stage="output")

    def detect(text: str) -> object:
        coroutine = blocklist.detect(text, ctx)
        try:
            coroutine.send(None)  # never awaits: runs to completion on the first step
        except StopIteration as done:
            return done.value
        raise RuntimeError("blocklist awaited")

    banned = re.compile("(?i)internal use only")
    print(
        f"{'text':<16}{'chars':>6}{'view':>7}{'pii before':>12}{'pii after':>11}"
        f"{'block before':>14}{'block after':>13}{'scrub':>7}   (p50 µs)"
    )
    for name, text in TEXTS.items():
        row = [
            _p50_us(partial(normalizer.readable, text), args.iterations),
            _p50_us(partial(_plain_find, text), args.iterations),
            _p50_us(partial(find_pii, text, normalizer=normalizer), args.iterations),
            _p50_us(partial(banned.findall, text), args.iterations),
            _p50_us(partial(detect, text), args.iterations),
            _p50_us(partial(scrub_pii, text), args.iterations),
        ]
        widths = (7, 12, 11, 14, 13, 7)
        print(
            f"{name:<16}{len(text):>6}"
            + "".join(f"{value:>{width}.1f}" for value, width in zip(row, widths, strict=True))
        )


if __name__ == "__main__":
    main()
