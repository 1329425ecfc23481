"""`guardproxy audit kappa`: how far two reviewers agree, beyond chance (Cohen's kappa), on the requests both
labelled. Each reviewer's latest label per request counts."""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TextIO

from guardproxy.audit.feedback import FEEDBACK_LABELS, Feedback
from guardproxy.core import JSON


@dataclass(frozen=True, slots=True)
class Agreement:
    a: str
    b: str
    pairs: tuple[tuple[str, str], ...]  # (a's label, b's label) per request both labelled

    @property
    def n(self) -> int:
        return len(self.pairs)

    @property
    def observed(self) -> float | None:
        return sum(x == y for x, y in self.pairs) / self.n if self.n else None

    @property
    def expected(self) -> float | None:
        if not self.n:
            return None
        first, second = Counter(x for x, _ in self.pairs), Counter(y for _, y in self.pairs)
        return sum(first[label] * second[label] for label in FEEDBACK_LABELS) / self.n**2

    @property
    def kappa(self) -> float | None:
        """(observed - expected) / (1 - expected); None without pairs, or when chance agreement is already 1."""
        observed, expected = self.observed, self.expected
        if observed is None or expected is None or expected == 1.0:
            return None
        return (observed - expected) / (1.0 - expected)

    def to_dict(self) -> JSON:
        confusion = Counter(self.pairs)
        return {
            "a": self.a,
            "b": self.b,
            "both_labelled": self.n,
            "observed_agreement": self.observed,
            "chance_agreement": self.expected,
            "kappa": self.kappa,
            "confusion": {f"{x}|{y}": count for (x, y), count in sorted(confusion.items())},
        }


def agreement(feedback: Iterable[Feedback], a: str, b: str) -> Agreement:
    """`feedback` oldest first (as stores return it): each reviewer's latest label per request counts."""
    latest: dict[str, dict[str, str]] = {a: {}, b: {}}
    for fb in feedback:
        if fb.actor in latest:
            latest[fb.actor][fb.request_id] = fb.label
    both = sorted(set(latest[a]) & set(latest[b]))
    return Agreement(a, b, tuple((latest[a][rid], latest[b][rid]) for rid in both))


def kappa_cmd(db: str, *, a: str, b: str, out: TextIO | None = None, err: TextIO | None = None) -> int:
    from guardproxy.audit.export import EXIT_OK, EXIT_USAGE, open_existing

    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    prog = "guardproxy audit kappa"
    if a == b:
        print(f"{prog}: name two different reviewers", file=err)
        return EXIT_USAGE
    store = open_existing(db, prog, err)
    if store is None:
        return EXIT_USAGE
    try:
        result = agreement(store.feedback(), a, b)
    finally:
        store.close()
    if not result.n:
        print(f"{prog}: {a!r} and {b!r} have labelled no request in common", file=err)
        return EXIT_USAGE
    out.write(json.dumps(result.to_dict()) + "\n")
    return EXIT_OK
