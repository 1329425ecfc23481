"""Exact and near-duplicate removal.

Exact: the same normalised text (NFKC, lower case, collapsed spaces). Near: Jaccard similarity of word-shingle
sets at or above a threshold. MinHash signatures with LSH banding find the candidate pairs in about linear time;
each candidate is then checked against its exact shingle Jaccard, so the threshold is exact, not approximate.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from guardproxy.trainer.classifier.data import normalise, stable_fraction
from guardproxy.trainer.dataset.signals import Example

_WORD = re.compile(r"\w+")
_PRIME = np.uint64(4_294_967_311)  # the first prime above 2**32: MinHash's universal hash modulus
_PERMUTATIONS = 128
_BANDS = 32  # 4 rows a band: a pair with Jaccard 0.5 shares a band with probability ~0.88, at 0.7 ~0.9996
_SEED = 20_240_917  # fixed: the same texts always give the same signatures


def text_key(text: str) -> str:
    """The identity of a text across snapshots: sha256 of its normalised form."""
    return hashlib.sha256(normalise(text).encode()).hexdigest()


def shingles(text: str, words: int) -> frozenset[int]:
    """Hashed word n-grams; a text shorter than n words is one shingle."""
    tokens = _WORD.findall(normalise(text))
    if not tokens:
        return frozenset()
    grams = [" ".join(tokens[i : i + words]) for i in range(max(1, len(tokens) - words + 1))]
    return frozenset(int.from_bytes(hashlib.blake2b(g.encode(), digest_size=4).digest(), "big") for g in grams)


def jaccard(a: frozenset[int], b: frozenset[int]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


@dataclass
class MinHashIndex:
    """Kept texts' shingle sets, findable by LSH band; `add` only what you keep."""

    threshold: float
    _rng: np.random.Generator = field(init=False)
    _a: npt.NDArray[np.uint64] = field(init=False)
    _b: npt.NDArray[np.uint64] = field(init=False)
    _buckets: dict[tuple[int, bytes], list[int]] = field(default_factory=dict, init=False)
    _sets: list[frozenset[int]] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(_SEED)
        # a < 2**31 and x < 2**32 keep a*x + b inside uint64.
        self._a = self._rng.integers(1, 2**31, size=_PERMUTATIONS, dtype=np.uint64)
        self._b = self._rng.integers(0, 2**31, size=_PERMUTATIONS, dtype=np.uint64)

    def _bands(self, items: frozenset[int]) -> list[tuple[int, bytes]]:
        x = np.fromiter(items, dtype=np.uint64, count=len(items))
        signature = ((np.outer(x, self._a) + self._b) % _PRIME).min(axis=0)
        rows = _PERMUTATIONS // _BANDS
        return [(band, signature[band * rows : (band + 1) * rows].tobytes()) for band in range(_BANDS)]

    def find(self, items: frozenset[int]) -> tuple[int, float] | None:
        """A kept text at least `threshold` similar to `items`: (its index, similarity), or None."""
        if not items:
            return None
        checked: set[int] = set()
        for key in self._bands(items):
            for index in self._buckets.get(key, ()):
                if index in checked:
                    continue
                checked.add(index)
                similarity = jaccard(items, self._sets[index])
                if similarity >= self.threshold:
                    return index, similarity
        return None

    def add(self, items: frozenset[int]) -> int:
        index = len(self._sets)
        self._sets.append(items)
        if items:
            for key in self._bands(items):
                self._buckets.setdefault(key, []).append(index)
        return index


def deduplicate(
    examples: Sequence[Example], *, threshold: float | None, words: int, salt: str, dropped: Counter[str]
) -> list[Example]:
    """Examples without exact or near duplicates, most trusted copy kept (see `signals.RANK`).

    Copies of one text with different labels at the same rank contradict each other and are all dropped.
    """
    keys = [text_key(e.text) for e in examples]
    order = sorted(range(len(examples)), key=lambda i: (-examples[i].rank, stable_fraction(keys[i], salt)))
    groups: dict[str, list[int]] = {}
    for i in order:
        groups.setdefault(keys[i], []).append(i)
    survivors: list[int] = []
    for members in groups.values():
        best = examples[members[0]].rank
        top_labels = {examples[i].label for i in members if examples[i].rank == best}
        if len(top_labels) > 1:
            dropped["conflicting_duplicate"] += len(members)
            continue
        survivors.append(members[0])
        for i in members[1:]:
            same = examples[i].label == examples[members[0]].label
            dropped["duplicate" if same else "duplicate_overridden"] += 1
    survivors.sort(key=lambda i: (-examples[i].rank, stable_fraction(keys[i], salt)))
    if threshold is None:
        return [examples[i] for i in survivors]
    index = MinHashIndex(threshold=threshold)
    kept: list[Example] = []
    for i in survivors:
        items = shingles(examples[i].text, words)
        found = index.find(items)
        if found is not None:
            same = kept[found[0]].label == examples[i].label
            dropped["near_duplicate" if same else "near_duplicate_overridden"] += 1
            continue
        index.add(items)
        kept.append(examples[i])
    return kept
