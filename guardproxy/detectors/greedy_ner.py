"""spaCy's greedy NER decoding, vectorised: the same entities as spaCy's own decoder, several times faster.

Used by the `presidio` detector for a pipeline that is only `ner` (see `GreedyNer`).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from spacy.language import Language
from spacy.pipeline import EntityRecognizer as SpacyNer
from spacy.tokens import Doc
from spacy.tokens import Span as SpacySpan
from thinc.api import Model, NumpyOps
from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]


class GreedyNer:
    """spaCy's greedy NER decoding over the same weights, for a pipeline that is only `ner`.

    spaCy's decoder spends about 40 µs a token in C that tests all 78 actions one at a time and
    takes the GIL back at every step: half of the analysis. Yet NER's transition system depends
    only on whether an entity is open. While none is, a token's features are the token alone, so
    the scores of every such token come from one matrix product; only tokens inside an entity are
    scored one at a time. Features, validity rules and tie-breaking (the first best valid action)
    are spaCy's; tests check the entities are spaCy's on real texts.

    The token vectors' matrix products use numpy's BLAS on one thread: the `blis` build spaCy uses
    falls back to its generic kernels on CPUs it does not know (Zen 4: 3x slower), and OpenBLAS's
    own threads stall for milliseconds when the cores are busy with other requests. The pipeline's
    layers are switched to numpy's BLAS for good: once built, the pipeline is only run through here.
    """

    def __init__(self, ner: SpacyNer, kinds: list[str], labels: list[str]) -> None:
        model = ner.model
        self._tok2vec: Model[list[Doc], Any] = model.get_ref("tok2vec")
        self._lower: Model[Any, Any] = model.get_ref("lower")
        upper = model.get_ref("upper")
        self._upper_w = np.ascontiguousarray(upper.get_param("W"))
        self._upper_b = upper.get_param("b")
        self._hidden, self._pieces = self._lower.get_dim("nO"), self._lower.get_dim("nP")
        self._lower_b = self._lower.get_param("b").reshape(self._hidden * self._pieces)
        self._unseen = np.array(sorted(model.attrs.get("unseen_classes", ())), dtype=np.intp)
        self._blis = NumpyOps()  # the upper layer stays on spaCy's own gemm: same rounding, tiny products
        numpy_blas = NumpyOps(use_blis=False)
        for node in (*self._tok2vec.walk(), *self._lower.walk()):
            node.ops = numpy_blas
        self._blas = ThreadpoolController().select(user_api="blas")
        kind = np.array(kinds)
        labelled = np.array([bool(label) for label in labels])
        self._labels = labels
        self._out = kind == "O"
        self._begin = (kind == "B") & labelled
        self._unit = (kind == "U") & labelled
        self._in = {label: i for i, (k, label) in enumerate(zip(kinds, labels, strict=True)) if k == "I" and label}
        self._last = {label: i for i, (k, label) in enumerate(zip(kinds, labels, strict=True)) if k == "L" and label}

    @classmethod
    def for_pipeline(cls, nlp: Language) -> GreedyNer | None:
        """The decoder, or None when the pipeline is not one it reproduces exactly (then spaCy decodes)."""
        if nlp.pipe_names != ["ner"]:
            return None  # other components may set sentence starts or preset entities
        ner = nlp.get_pipe("ner")
        if not isinstance(ner, SpacyNer) or ner.cfg.get("beam_width", 1) != 1:
            return None
        model = ner.model
        if not model.attrs.get("has_upper") or not all(model.has_ref(r) for r in ("tok2vec", "lower", "upper")):
            return None
        if model.get_ref("lower").get_dim("nF") != 3:  # spaCy's NER features: B(0), entity start, B(0) - 1
            return None
        names = [ner.moves.get_class_name(i) for i in range(ner.moves.n_moves)]
        kinds = [name.split("-", 1)[0] for name in names]
        if not set(kinds) <= {"B", "I", "L", "U", "O"}:
            return None
        return cls(ner, kinds, [name.split("-", 1)[1] if "-" in name else "" for name in names])

    def _scores(self, unmaxed: np.ndarray) -> np.ndarray:
        pieces = (unmaxed + self._lower_b).reshape(len(unmaxed), self._hidden, self._pieces)
        # maxout; np.maximum is several times faster than .max(axis=2) over 2 pieces, and as exact
        hidden = functools.reduce(np.maximum, (pieces[:, :, p] for p in range(self._pieces)))
        scores: np.ndarray = self._blis.gemm(hidden, self._upper_w, trans2=True) + self._upper_b
        if self._unseen.size:
            scores[:, self._unseen] = scores.min(axis=1, keepdims=True)
        return scores

    def __call__(self, doc: Doc) -> list[SpacySpan]:
        return [span for span, _ in self.entities(doc)]

    def entities(self, doc: Doc) -> list[tuple[SpacySpan, float]]:
        """The entities, each with the model's confidence in opening it: the softmax probability of
        the action that began it, among the actions valid at its first token (spaCy keeps none)."""
        n = len(doc)
        if n == 0:
            return []
        # The limit is process-wide while it lasts; other BLAS users meanwhile run on one thread too.
        with self._blas.limit(limits=1):
            # (n + 1, features, hidden * pieces); row 0 stands for "no token"
            features = self._lower.predict(self._tok2vec.predict([doc])).reshape(n + 1, 3, -1)
        flags = doc.to_array(["SENT_START", "IS_SPACE"])
        space = flags[:, 1].astype(bool)
        next_starts_sentence = np.zeros(n, dtype=bool)
        next_starts_sentence[:-1] = flags[1:, 0] == 1
        can_begin = ~space & ~next_starts_sentence
        can_begin[-1] = False
        valid = self._out | (self._begin & can_begin[:, None]) | (self._unit & ~space[:, None])
        # No entity open: features (token, none, none), summed in spaCy's order.
        closed = np.where(valid, self._scores(features[1:, 0] + features[0, 1] + features[0, 2]), -np.inf)
        choices: list[int] = closed.argmax(axis=1).tolist()
        confidence: list[float] = (1.0 / np.exp(closed - closed.max(axis=1, keepdims=True)).sum(axis=1)).tolist()
        found: list[tuple[SpacySpan, float]] = []
        i = 0
        while i < n:
            choice = choices[i]
            i += 1
            if self._out[choice]:
                continue
            label, start = self._labels[choice], i - 1
            if not self._unit[choice]:  # Begin: In or Last (same label) until Last
                in_, last = self._in[label], self._last[label]
                while True:
                    best = last
                    if i < n - 1 and not next_starts_sentence[i]:
                        unmaxed = features[i + 1, 0] + features[start + 1, 1] + features[i, 2]
                        scores = self._scores(unmaxed[None, :])[0]
                        first, second = sorted((in_, last))
                        best = second if scores[second] > scores[first] else first
                    i += 1
                    if best == last:
                        break
            found.append((SpacySpan(doc, start, i, label=label), confidence[start]))
        return found
