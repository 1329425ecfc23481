"""Text classifiers served from an int8 ONNX export with onnxruntime + tokenizers (no torch).

A model directory holds `model.onnx`, `tokenizer.json` and `model_card.json` (written by
`guardproxy.trainer.classifier`). Texts longer than one window are scored over overlapping windows and the
highest-scoring window wins, so an instruction planted at the end of a long document is not truncated away.
Texts of several sentences are also scored sentence by sentence (short windows, in the same batched forward pass):
a harmful sentence between harmless ones is diluted in the whole-text score, never in its own window.

The detector's score is calibrated (`calibration.calibrate`) so that 0.5 is the operating point chosen on
validation (the model card's threshold, e.g. the one giving 1% false positives): a policy step with the default
`threshold: 0.5` gets the validated trade-off, and a step may move along the curve (0.7 = stricter) without
knowing raw probabilities.
"""

from __future__ import annotations

import asyncio
import bisect
import re
from collections import OrderedDict, deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt

from guardproxy.core import Context, Detection
from guardproxy.detectors.base import DetectorDeps
from guardproxy.detectors.calibration import calibrate
from guardproxy.detectors.configs import InjectionClassifierConfig, ModerationClassifierConfig
from guardproxy.detectors.model_card import Head, ModelCard
from guardproxy.detectors.model_files import ModelDir, default_models_root, resolve_model_dir
from guardproxy.errors import DetectorFailed

FloatArray = npt.NDArray[np.float32]


def window_starts(n_tokens: int, window: int, stride: int) -> list[int]:
    """Start offsets of windows of `window` tokens overlapping by `stride`; the last one ends at the text's end."""
    if n_tokens <= window:
        return [0]
    step = window - stride
    starts = list(range(0, n_tokens - window, step))
    starts.append(n_tokens - window)
    return starts


# A sentence ends at . ! ? (and CJK forms, with closing quotes/brackets) before whitespace, or at a line break.
_SENTENCE_END = re.compile(r"[.!?\u3002\uff01\uff1f]+[\"')\]\u201d\u2019]*(?=\s)|[\u3002\uff01\uff1f]|\n")


def sentence_char_spans(text: str) -> list[tuple[int, int]]:
    """Character ranges of the sentences of `text` (whitespace-only pieces dropped)."""
    spans: list[tuple[int, int]] = []
    start = 0
    for m in _SENTENCE_END.finditer(text):
        spans.append((start, m.end()))
        start = m.end()
    spans.append((start, len(text)))
    return [(a, b) for a, b in spans if text[a:b].strip()]


def short_window_ranges(
    text: str, token_starts: list[int], *, max_tokens: int, max_windows: int, longest: int
) -> list[tuple[int, int]]:
    """Token ranges [a, b) of the short windows of a text whose tokens start at `token_starts` (char offsets).

    One window per sentence; a sentence longer than `max_tokens` is cut into `max_tokens` pieces overlapping by
    half. Beyond `max_windows` pieces, neighbours are grouped (2, 3, ... pieces per window) so the count stays
    bounded; a group longer than `longest` tokens is left out, since the whole-text windows already see it at that
    size. A text of one piece gets none: its whole-text window is that piece.
    """
    n = len(token_starts)
    pieces: list[tuple[int, int]] = []
    for start, end in sentence_char_spans(text):
        a, b = bisect.bisect_left(token_starts, start), bisect.bisect_left(token_starts, end)
        if b <= a:
            continue
        pieces += [(a + s, min(a + s + max_tokens, b)) for s in window_starts(b - a, max_tokens, max_tokens // 2)]
    if len(pieces) <= 1 or max_windows <= 0:
        return []
    per_window = -(-len(pieces) // max_windows)  # ceil
    groups = [
        (pieces[i][0], pieces[min(i + per_window, len(pieces)) - 1][1]) for i in range(0, len(pieces), per_window)
    ]
    return [(a, b) for a, b in groups if b - a <= longest and (a, b) != (0, n)]


def length_batches(sorted_lengths: list[int], batch_size: int, max_growth: float = 1.5) -> list[list[int]]:
    """Indexes of rows (sorted by length) grouped into onnxruntime calls of at most `batch_size` rows, a new call
    starting when a row is over `max_growth` times the call's shortest: every row is padded to the call's longest,
    and sentence windows of ~20 tokens padded to a 512-token whole-text window cost 25 times their work (measured:
    128-token texts of 8 windows took 79 ms p50 in one padded call, 21 ms split like this; 9 ms without sentence
    windows; bench/bench_windowing.py)."""
    batches: list[list[int]] = []
    for i, n in enumerate(sorted_lengths):
        if batches and len(batches[-1]) < batch_size and n <= max_growth * sorted_lengths[batches[-1][0]]:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


@dataclass(frozen=True, slots=True)
class WindowScores:
    """Per-window class probabilities of one text and the character range each window covers.

    The first `whole_windows` rows are the whole-text windows (one, or overlapping 512-token windows of a long
    text); the rest are sentence windows.
    """

    probs: FloatArray  # shape [windows, classes]
    char_spans: tuple[tuple[int, int], ...]
    whole_windows: int


class OnnxTextClassifier:
    """The synchronous core: tokenise, window, run onnxruntime. Shared by the detector, trainer and bench."""

    def __init__(
        self,
        model_dir: str | Path,
        *,
        max_length: int | None = None,
        stride: int | None = None,
        threads: int = 2,
        batch_size: int = 8,
        sentence_windows: int = 0,
        sentence_window_tokens: int = 64,
    ) -> None:
        self.model_dir = resolve_model_dir(model_dir)
        self.sentence_windows = sentence_windows
        self.sentence_window_tokens = sentence_window_tokens
        try:
            self._load(threads=threads, max_length=max_length, stride=stride)
        except DetectorFailed:
            raise
        except Exception as exc:  # a broken card, tokenizer or ONNX file: onnxruntime errors are untyped
            raise DetectorFailed(f"cannot load the model in {self.model_dir}: {type(exc).__name__}: {exc}") from exc
        self.batch_size = batch_size

    def _load(self, *, threads: int, max_length: int | None, stride: int | None) -> None:
        import onnxruntime as ort  # type: ignore[import-untyped]
        from tokenizers import Tokenizer

        self.card = ModelCard.load(self.model_dir)
        serving = self.card.serving
        if serving is None:
            raise DetectorFailed(f"{self.model_dir}: the model card has no 'serving' section (not an ONNX classifier)")
        self.labels: list[str] = list(self.card.labels)
        self.head: Head = serving.head
        self.max_length = int(max_length or serving.max_length)
        self.stride = int(serving.stride if stride is None else stride)
        if not 0 <= self.stride < self.max_length - 2:
            raise DetectorFailed(f"stride {self.stride} must be below max_length - 2 ({self.max_length - 2})")

        self.tokenizer = Tokenizer.from_file(str(self.model_dir / serving.tokenizer_file))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self.cls_id = serving.cls_token_id
        self.sep_id = serving.sep_token_id

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Spinning idle threads steal the cores Presidio and the event loop need between calls: measured worse
        # for the whole input chain (bench/bench_input_chain.py), even if a lone call gets a little slower.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # On x86 CPUs without VNNI (AVX2-only, e.g. AMD EPYC 7xx3) ORT's default int8 U8S8 kernels saturate
        # 16-bit intermediates, so the same model scored the same text differently by machine ("tell me a
        # story": illicit 0.511 on an AVX2 EPYC, under 0.5 where the model was trained). The exact U8U8 path
        # makes every CPU agree with the one the thresholds were chosen on.
        opts.add_session_config_entry("session.x64quantprecision", "1")
        self.session = ort.InferenceSession(
            str(self.model_dir / serving.onnx_file), opts, providers=["CPUExecutionProvider"]
        )
        self.input_names = {i.name for i in self.session.get_inputs()}

    def _run(self, ids: npt.NDArray[np.int64], mask: npt.NDArray[np.int64] | None = None) -> FloatArray:
        feeds: dict[str, npt.NDArray[np.int64]] = {"input_ids": ids}
        if "attention_mask" in self.input_names:
            feeds["attention_mask"] = np.ones_like(ids) if mask is None else mask
        if "token_type_ids" in self.input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        logits: FloatArray = np.asarray(self.session.run(["logits"], feeds)[0], dtype=np.float32)
        probs: npt.NDArray[np.floating[Any]]
        if self.head == "sigmoid":
            probs = 1.0 / (1.0 + np.exp(-logits))
        else:
            shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
            probs = shifted / shifted.sum(axis=1, keepdims=True)
        return probs.astype(np.float32)

    def _windows(self, text: str) -> tuple[list[npt.NDArray[np.int64]], tuple[tuple[int, int], ...], int]:
        enc = self.tokenizer.encode(text, add_special_tokens=False)
        ids = np.asarray(enc.ids, dtype=np.int64)
        offsets = enc.offsets
        window = self.max_length - 2
        ranges = [(s, min(s + window, len(ids))) for s in window_starts(len(ids), window, self.stride)]
        whole = len(ranges)
        if self.sentence_windows and len(ids):
            ranges += short_window_ranges(
                text,
                [start for start, _ in offsets],
                max_tokens=min(self.sentence_window_tokens, window),
                max_windows=self.sentence_windows,
                longest=window,
            )
        rows = [np.concatenate(([self.cls_id], ids[a:b], [self.sep_id])) for a, b in ranges]
        spans = tuple((offsets[a][0], offsets[b - 1][1]) if len(ids) else (0, 0) for a, b in ranges)
        return rows, spans, whole

    def score(self, text: str) -> WindowScores:
        return self.score_many([text])[0]

    def run_rows(self, rows: list[npt.NDArray[np.int64]]) -> list[FloatArray]:
        """Class probabilities of token rows, in their order: rows of similar length padded together, with a mask."""
        order = sorted(range(len(rows)), key=lambda r: len(rows[r]))
        probs: list[FloatArray] = [np.empty(0, np.float32)] * len(rows)
        for positions in length_batches([len(rows[r]) for r in order], self.batch_size):
            chunk = [order[i] for i in positions]
            width = max(len(rows[r]) for r in chunk)
            ids = np.zeros((len(chunk), width), dtype=np.int64)
            mask = np.zeros((len(chunk), width), dtype=np.int64)
            for j, r in enumerate(chunk):
                ids[j, : len(rows[r])] = rows[r]
                mask[j, : len(rows[r])] = 1
            for r, p in zip(chunk, self._run(ids, mask), strict=True):
                probs[r] = p
        return probs

    def score_many(self, texts: list[str]) -> list[WindowScores]:
        """Several texts in as few onnxruntime calls as possible: windows of similar length are batched
        together, padded, with an attention mask (one call for 8 short prompts costs far less than 8 calls)."""
        rows: list[npt.NDArray[np.int64]] = []
        owners: list[int] = []
        spans: list[tuple[tuple[int, int], ...]] = []
        wholes: list[int] = []
        for i, text in enumerate(texts):
            text_rows, text_spans, whole = self._windows(text)
            rows += text_rows
            owners += [i] * len(text_rows)
            spans.append(text_spans)
            wholes.append(whole)
        probs = self.run_rows(rows)
        per_text: list[list[FloatArray]] = [[] for _ in texts]
        for r, owner in enumerate(owners):
            per_text[owner].append(probs[r])
        return [WindowScores(np.stack(p), sp, w) for p, sp, w in zip(per_text, spans, wholes, strict=True)]


@dataclass(eq=False, slots=True)
class _Job:
    """One text waiting to be scored, the callers waiting for it, and the windows computed so far."""

    text: str
    client: str
    future: asyncio.Future[WindowScores]
    waiters: int = 1
    rows: list[npt.NDArray[np.int64]] | None = None  # the text's windows, once tokenised
    spans: tuple[tuple[int, int], ...] = ()
    whole: int = 0  # how many of `rows` are whole-text windows (the rest are sentence windows)
    probs: list[FloatArray] = field(default_factory=list)  # one per computed window, in order


class ClassifierService:
    """One loaded model serving every detector that uses it.

    Calls are queued to one worker thread (onnxruntime already uses `threads` cores per call, and queued calls
    beat oversubscription). The unit of work is a window, not a text: each onnxruntime call takes at most
    `max_batch_windows` windows, one at a time from each client in turn, so a client with a long text (or many
    texts) gets its share of the worker while everyone else's short prompts keep going through (one 1 MB prompt
    used to hold the worker ~57 s, failing other clients' steps on their timeouts). Windows that arrive while a
    call runs go into the next call (dynamic batching: under concurrency, one call serves many requests).
    A text nobody waits for any more (its step timed out, its request was cancelled) is dropped from the queue,
    even half-computed. A small cache of recent texts lets detectors that read different outputs of one model
    (injection, moderation) share one forward pass. Everything but tokenising and the onnxruntime call runs on
    the event loop thread, so none of it needs a lock.
    """

    def __init__(self, classifier: OnnxTextClassifier, cache_size: int = 256, max_batch_windows: int = 16) -> None:
        self.classifier = classifier
        self._cache: OrderedDict[str, WindowScores] = OrderedDict()
        self._cache_size = cache_size
        self._max_batch = max_batch_windows
        self._jobs: dict[str, _Job] = {}  # by text: callers asking for the same text share one job
        self._queues: OrderedDict[str, deque[_Job]] = OrderedDict()  # per client, in turn order
        self._draining = False
        self._drainer: asyncio.Task[None] | None = None  # referenced, or the loop may drop it mid-run
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="onnx-classifier")
        self.windows_computed = 0  # work actually done, for tests and benches: windows scored
        self.batches_run = 0  # ... and onnxruntime batches (calls to `_run_windows`)

    def _remember(self, text: str, scores: WindowScores) -> None:
        self._cache[text] = scores
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def score_sync(self, text: str) -> WindowScores:
        """Blocking, unbatched (CLI, evaluation, tests). Not to be mixed with `score` on another thread."""
        hit = self._cache.get(text)
        if hit is None:
            hit = self.classifier.score(text)
            self._remember(text, hit)
        return hit

    async def score(self, text: str, client: str = "") -> WindowScores:
        """`client` names who asked (the proxy's client label): the worker takes turns between clients."""
        hit = self._cache.get(text)
        if hit is not None:
            self._cache.move_to_end(text)
            return hit
        job = self._jobs.get(text)
        if job is None:
            job = self._jobs[text] = _Job(text, client, asyncio.get_running_loop().create_future())
            self._queues.setdefault(client, deque()).append(job)
            if not self._draining:
                self._draining = True
                self._drainer = asyncio.get_running_loop().create_task(self._drain())
        else:
            job.waiters += 1
        try:
            return await asyncio.shield(job.future)  # one caller's cancellation must not cancel the others' result
        except asyncio.CancelledError:
            job.waiters -= 1
            if job.waiters == 0:
                self._drop(job)
            raise

    def _drop(self, job: _Job) -> None:
        """Nobody waits for this text any more: its remaining windows are never computed."""
        if not job.future.done():
            job.future.cancel()
        if self._jobs.get(job.text) is job:
            del self._jobs[job.text]
        queue = self._queues.get(job.client)
        if queue is not None and job in queue:
            queue.remove(job)
            if not queue:
                del self._queues[job.client]

    def _next_batch(self) -> list[tuple[_Job, int]]:
        """Up to `max_batch_windows` (job, window index) pairs, one per client in turn, starting with the client
        after the one that started the previous batch."""
        cursors = {client: self._pending_windows(queue) for client, queue in self._queues.items()}
        batch: list[tuple[_Job, int]] = []
        while cursors and len(batch) < self._max_batch:
            for client in list(cursors):
                item = next(cursors[client], None)
                if item is None:
                    del cursors[client]
                    continue
                batch.append(item)
                if len(batch) == self._max_batch:
                    break
        if self._queues:
            self._queues.move_to_end(next(iter(self._queues)))
        return batch

    @staticmethod
    def _pending_windows(queue: deque[_Job]) -> Iterator[tuple[_Job, int]]:
        for job in queue:
            if job.rows is None:  # arrived during the last call: tokenised before the next batch
                return
            for index in range(len(job.probs), len(job.rows)):
                yield job, index

    def _tokenise(self, texts: list[str]) -> list[tuple[list[npt.NDArray[np.int64]], tuple[tuple[int, int], ...], int]]:
        return [self.classifier._windows(text) for text in texts]

    def _run_windows(self, rows: list[npt.NDArray[np.int64]]) -> list[FloatArray]:
        return self.classifier.run_rows(rows)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queues:
                fresh = [job for queue in self._queues.values() for job in queue if job.rows is None]
                try:
                    if fresh:
                        windows = await loop.run_in_executor(self._executor, self._tokenise, [j.text for j in fresh])
                        for job, (job_rows, spans, whole) in zip(fresh, windows, strict=True):
                            if not job_rows:
                                raise DetectorFailed("the tokenizer gave no window for a text")
                            job.rows, job.spans, job.whole = job_rows, spans, whole
                    batch = self._next_batch()
                    rows = [job.rows[index] for job, index in batch if job.rows is not None]
                    results = await loop.run_in_executor(self._executor, self._run_windows, rows)
                except Exception as exc:  # noqa: BLE001 - delivered to every waiting detector, which maps it
                    for job in [job for queue in self._queues.values() for job in queue]:
                        if not job.future.done():
                            job.future.set_exception(exc)
                        self._drop(job)
                    continue
                self.windows_computed += len(rows)
                self.batches_run += 1
                for (job, _), probs in zip(batch, results, strict=True):
                    if not job.future.done():  # else dropped while the call ran: its result goes nowhere
                        job.probs.append(probs)
                for job in {id(job): job for job, _ in batch}.values():
                    if not job.future.done() and job.rows is not None and len(job.probs) == len(job.rows):
                        result = WindowScores(np.stack(job.probs), job.spans, job.whole)
                        self._remember(job.text, result)
                        job.future.set_result(result)
                        self._drop(job)
        finally:
            self._draining = False

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


ClassifierConfig = InjectionClassifierConfig | ModerationClassifierConfig


class OnnxClassifierDetector:
    """A `Detector` over one group of a model's outputs, with the model card's calibrated operating points.

    softmax model: the score is P(any positive class) in the worst window, one threshold.
    sigmoid model: each label of the detector's group has its own threshold; the score is the highest
    calibrated label score, and the labels above their operating point are reported.
    Subclasses name the shipped model and the group they serve.
    """

    scope: Literal["text", "request"] = "text"
    default_model: ClassVar[str] = ""  # a directory name under default_models_root()
    group: ClassVar[str] = ""  # the model card group this detector serves

    def __init__(self, name: str, config: ClassifierConfig, deps: DetectorDeps) -> None:
        self.name = name
        self._closed = False
        (self._source,) = self.model_sources(config)
        model_dir = resolve_model_dir(self._source)
        self._shared = deps.shared
        self._key = (
            "onnx_classifier",
            str(model_dir.resolve()),
            config.max_length,
            config.stride,
            config.threads,
            config.sentence_windows,
            config.sentence_window_tokens,
        )
        self.service: ClassifierService = self._shared.acquire(
            self._key,
            lambda: ClassifierService(
                OnnxTextClassifier(
                    model_dir,
                    max_length=config.max_length,
                    stride=config.stride,
                    threads=config.threads,
                    batch_size=config.batch_size,
                    sentence_windows=config.sentence_windows,
                    sentence_window_tokens=config.sentence_window_tokens,
                )
            ),
        )
        try:
            self.columns, self.thresholds = self._operating_points(config)
        except DetectorFailed:
            self.close()
            raise
        # Sentence windows are short texts, several per text: at the whole-text operating points they raise the
        # false-positive rate many-fold (moderation on benign_prompts 0.13% -> 4.0%, injection 0.04% -> 2.7%,
        # bench/results/windowing.json), so they count at stricter raw thresholds, or not at all (None).
        margin = config.sentence_window_margin
        self.sentence_thresholds: FloatArray | None = (
            None if margin is None else (self.thresholds + margin * (1.0 - self.thresholds)).astype(np.float32)
        )

    @classmethod
    def model_sources(cls, config: ClassifierConfig) -> tuple[Path, ...]:
        """The directory the configuration names (a registry or one version), before resolution."""
        return (Path(config.model_path) if config.model_path else default_models_root() / cls.default_model,)

    def model_dirs(self) -> tuple[ModelDir, ...]:
        """The model this detector serves and where it came from: the policy watcher reloads when they differ."""
        return (ModelDir(self._source, self.service.classifier.model_dir),)

    def _operating_points(self, config: ClassifierConfig) -> tuple[list[int], FloatArray]:
        clf = self.service.classifier
        card = clf.card
        if clf.head == "softmax":
            columns = [i for i, label in enumerate(clf.labels) if label in card.positive_labels]
            threshold = getattr(config, "threshold", None) or card.threshold
            if threshold is None:
                raise DetectorFailed(f"{self.name}: {clf.model_dir} has a softmax head and no 'threshold' in its card")
            return columns, np.asarray([threshold], np.float32)
        groups = card.groups
        found = groups.get(self.group)
        members = None if found is None else list(found)
        if members is None:
            raise DetectorFailed(f"{self.name}: {clf.model_dir} has no {self.group!r} outputs (groups: {list(groups)})")
        wanted = getattr(config, "categories", None)
        if wanted is not None:
            unknown = sorted(set(wanted) - set(members))
            if unknown:
                raise DetectorFailed(f"{self.name}: unknown categories {unknown}; the model has {members}")
            members = [m for m in members if m in wanted]
        overrides: dict[str, float] = dict(getattr(config, "thresholds", {}))
        single = getattr(config, "threshold", None)  # injection_classifier: one threshold for its group
        if single is not None:
            overrides = dict.fromkeys(members, single)
        unknown = sorted(set(overrides) - set(members))
        if unknown:
            raise DetectorFailed(f"{self.name}: thresholds for unknown categories {unknown}; the model has {members}")
        columns = [clf.labels.index(m) for m in members]
        thresholds = [overrides.get(m, card.thresholds[m]) for m in members]
        return columns, np.asarray(thresholds, np.float32)

    def _calibrated(self, per_label: FloatArray, whole_windows: int) -> FloatArray:
        """[windows, labels] scores with 0.5 at each label's operating point: the whole-text windows at the
        model card's (or the step's) thresholds, the sentence windows at the stricter sentence thresholds."""
        sentence = self.sentence_thresholds
        if sentence is None:
            per_label = per_label[:whole_windows]
        return np.stack(
            [
                np.concatenate(
                    (
                        calibrate(per_label[:whole_windows, j], float(t)),
                        calibrate(per_label[whole_windows:, j], float(sentence[j])) if sentence is not None else [],
                    )
                ).astype(np.float32)
                for j, t in enumerate(self.thresholds)
            ],
            1,
        )

    def label_scores(self, scores: WindowScores) -> dict[str, float]:
        """Calibrated score (0.5 = operating point) of each label of this detector's group, max over windows."""
        clf = self.service.classifier
        if clf.head == "softmax":
            return {}
        best = self._calibrated(scores.probs[:, self.columns], scores.whole_windows).max(axis=0)
        return {clf.labels[c]: float(v) for c, v in zip(self.columns, best, strict=True)}

    def decide(self, scores: WindowScores) -> Detection:
        clf = self.service.classifier
        labels = clf.labels
        picked = scores.probs[:, self.columns]  # [windows, labels of this group]
        # softmax: one operating point on P(any positive class), labelled with the likeliest positive class.
        per_label = picked.sum(axis=1, keepdims=True) if clf.head == "softmax" else picked
        calibrated = self._calibrated(per_label, scores.whole_windows)
        window, column = np.unravel_index(int(np.argmax(calibrated)), calibrated.shape)
        score = float(calibrated[window, column])
        if clf.head == "softmax":
            top = labels[self.columns[int(np.argmax(picked[window]))]]
            fired: tuple[str, ...] = (top,) if score >= 0.5 else ()
        else:
            best = calibrated.max(axis=0)
            fired = tuple(labels[c] for j, c in enumerate(self.columns) if best[j] >= 0.5)
        start, end = scores.char_spans[window]
        explanation = (
            f"{labels[self.columns[int(column)]] if clf.head == 'sigmoid' else 'p'}="
            f"{float(per_label[window, column]):.3f} in {'sentence ' if window >= scores.whole_windows else ''}"
            f"window {int(window) + 1}/{len(calibrated)} (chars {start}-{end})"
        )
        # No spans: a classifier judges a whole window, not a piece of personal data. A span would make the
        # audit log replace the whole attack with `[INJECTION]`, and the trainer could not learn from it; the
        # window's character range is in the explanation.
        label_scores = self.label_scores(scores) if clf.head == "sigmoid" else {}
        return Detection(score=score, labels=fired, explanation=explanation, label_scores=label_scores)

    def detect_sync(self, text: str) -> Detection:
        if not text.strip():
            return Detection(score=0.0)
        return self.decide(self.service.score_sync(text))

    async def detect(self, text: str, ctx: Context) -> Detection:
        if not text.strip():
            return Detection(score=0.0)
        try:
            return self.decide(await self.service.score(text, client=ctx.client or ctx.request_id))
        except DetectorFailed:
            raise
        except Exception as exc:  # onnxruntime raises its own, untyped errors: map them at the boundary
            raise DetectorFailed(f"{self.name}: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        if not self._closed:  # releasing twice would close the model under another detector
            self._closed = True
            self._shared.release(self._key, lambda service: service.close())

    async def aclose(self) -> None:
        self.close()


class InjectionClassifierDetector(OnnxClassifierDetector):
    """`type: injection_classifier`: prompt injection and jailbreak, served from models/injection-classifier."""

    default_model = "guard-classifier"
    group = "injection"


class ModerationClassifierDetector(OnnxClassifierDetector):
    """`type: moderation_classifier`: OpenAI moderation categories, served from models/guard-classifier."""

    default_model = "guard-classifier"
    group = "moderation"
