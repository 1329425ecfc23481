"""Property tests of `StreamGuard`'s release rule (guardproxy/proxy/streaming.py), whatever the chunking.

- Every released character was inside a text that every output step saw before it was released.
- Spans a step redacts never reach the client, and the output is the whole text with them redacted.
- A block stops the stream before any of the blocked text went out.
- Anonymize placeholders split across chunks are restored whole.

The steps' detectors record what they were shown, with the number of characters fed so far, so a seen text can
be placed in the stream: it must be exactly `text[end - len(seen) : end]`, where `end` is `fed` less the word
still being written (no whitespace in `text[end:fed]`), which the guard does not show yet.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field

from hypothesis import example, given, settings
from hypothesis import strategies as st

from guardproxy.core import Context, Detection, Span
from guardproxy.detectors.base import Detector
from guardproxy.policies.chain import Chain, compile_steps
from guardproxy.policies.operators import MemoryScope, restore
from guardproxy.policies.schema import BlockStep, FlagStep, RedactStep, Step
from guardproxy.proxy.streaming import OutputBlocked, StreamGuard

PROPERTIES = settings(max_examples=200, deadline=None, database=None)
CTX = Context("r-prop", "output", "assistant")
# Brackets and the letters of the markers, so markers and placeholders also form by chance. Sentence boundaries
# come rarer (the `texts` strategy), or long runs without a boundary, where the hold-back matters, never show up.
ALPHABET = "ab .[]_1SECRTBOM"
SECRET = "SECRET"
BOMB = "BOMB"


@dataclass
class Fed:
    chars: int = 0


@dataclass
class Recorder:
    """Allows everything; logs (characters fed so far, text shown)."""

    name: str
    fed: Fed
    seen: list[tuple[int, str]] = field(default_factory=list)
    scope: str = "text"

    async def detect(self, text: str, ctx: Context) -> Detection:
        self.seen.append((self.fed.chars, text))
        return Detection(score=0.0)

    async def aclose(self) -> None:
        return None


@dataclass
class Marker:
    """Reports every occurrence of `marker` as a span."""

    name: str
    marker: str
    scope: str = "text"

    async def detect(self, text: str, ctx: Context) -> Detection:
        spans = tuple(Span(m.start(), m.end(), "MARK") for m in re.finditer(re.escape(self.marker), text))
        return Detection(score=1.0 if spans else 0.0, labels=("MARK",) if spans else (), spans=spans)

    async def aclose(self) -> None:
        return None


def chain_of(detectors: dict[str, Detector], steps: list[Step]) -> Chain:
    return Chain.build("output", compile_steps("output", steps, detectors))


def split(text: str, sizes: list[int]) -> list[str]:
    chunks, pos = [], 0
    for size in sizes:
        if pos >= len(text):
            break
        chunks.append(text[pos : pos + size])
        pos += size
    if pos < len(text):
        chunks.append(text[pos:])
    return chunks


@dataclass
class Release:
    start: int  # [start, end) of the output
    end: int
    seen_counts: tuple[int, ...]  # how many texts each recorder had been shown by then


@dataclass
class Run:
    releases: list[Release]
    output: str
    blocked: bool


async def stream(guard: StreamGuard, chunks: list[str], fed: Fed, recorders: tuple[Recorder, ...] = ()) -> Run:
    releases: list[Release] = []
    output = ""

    def take(part: str) -> None:
        nonlocal output
        if part:
            releases.append(Release(len(output), len(output) + len(part), tuple(len(r.seen) for r in recorders)))
            output += part

    try:
        for chunk in chunks:
            fed.chars += len(chunk)
            take(await guard.feed(chunk))
        take(await guard.finish())
    except OutputBlocked:
        return Run(releases, output, blocked=True)
    return Run(releases, output, blocked=False)


words = st.text(ALPHABET, max_size=12)
texts = st.lists(st.one_of(words, words, words, st.sampled_from([SECRET, BOMB, ". ", "! ", "\n"])), max_size=30)
chunk_sizes = st.lists(st.integers(1, 15), max_size=40)
holdbacks = st.integers(len(SECRET), 40)  # a hold-back shorter than a span could release its prefix
contexts = st.integers(0, 64)
min_windows = st.integers(0, 40)


@PROPERTIES
@given(parts=texts, sizes=chunk_sizes, holdback=holdbacks, context_chars=contexts, min_window=min_windows)
def test_every_released_character_was_seen_by_every_step_before_release(
    parts: list[str], sizes: list[int], holdback: int, context_chars: int, min_window: int
) -> None:
    text = "".join(parts)
    fed = Fed()
    recorders = [Recorder("first", fed), Recorder("second", fed)]
    steps: list[Step] = [FlagStep(detector=r.name, action="flag") for r in recorders]
    guard = StreamGuard(
        chain_of({r.name: r for r in recorders}, steps), CTX, None, holdback, context_chars, min_window=min_window
    )
    result = asyncio.run(stream(guard, split(text, sizes), fed, tuple(recorders)))
    assert result.output == text
    for recorder in recorders:
        for at, seen in recorder.seen:
            assert shown_end(text, at, seen) is not None, (at, seen)  # in order, nothing skipped or invented
    for release in result.releases:
        for recorder, count in zip(recorders, release.seen_counts, strict=True):
            before = [(shown_end(text, at, seen) or 0, seen) for at, seen in recorder.seen[:count]]
            assert any(end - len(seen) <= release.start and release.end <= end for end, seen in before), (
                release,
                before,
            )


def shown_end(text: str, fed: int, seen: str) -> int | None:
    """Where `seen` ends in `text`: at `fed`, or before a word still being written there; None if nowhere."""
    end = fed
    while True:
        if text[end - len(seen) : end] == seen and end >= len(seen):
            return end
        if end == 0 or text[end - 1].isspace():
            return None
        end -= 1


@PROPERTIES
@given(parts=texts, sizes=chunk_sizes, holdback=holdbacks, context_chars=contexts, min_window=min_windows)
@example(parts=["aaaaaaaSEC", "RET"], sizes=[10], holdback=6, context_chars=0, min_window=0)  # cut by the hold-back
def test_redacted_spans_never_reach_the_client(
    parts: list[str], sizes: list[int], holdback: int, context_chars: int, min_window: int
) -> None:
    text = "".join(parts)
    detectors: dict[str, Detector] = {"secret": Marker("secret", SECRET)}
    chain = chain_of(detectors, [RedactStep(detector="secret", action="redact")])
    guard = StreamGuard(chain, CTX, None, holdback, context_chars, min_window=min_window)
    result = asyncio.run(stream(guard, split(text, sizes), Fed()))
    assert SECRET not in result.output
    assert result.output == text.replace(SECRET, "[MARK]")


@PROPERTIES
@given(parts=texts, sizes=chunk_sizes, holdback=holdbacks, context_chars=contexts, min_window=min_windows)
@example(parts=["aaaaaaaBO", "MB"], sizes=[9], holdback=6, context_chars=0, min_window=0)
def test_a_block_stops_the_stream_before_the_blocked_text(
    parts: list[str], sizes: list[int], holdback: int, context_chars: int, min_window: int
) -> None:
    text = "".join(parts)
    detectors: dict[str, Detector] = {"bomb": Marker("bomb", BOMB)}
    chain = chain_of(detectors, [BlockStep(detector="bomb", action="block")])
    guard = StreamGuard(chain, CTX, None, holdback, context_chars, min_window=min_window)
    result = asyncio.run(stream(guard, split(text, sizes), Fed()))
    assert result.blocked == (BOMB in text)
    assert text.startswith(result.output)
    if result.blocked:  # not even a prefix of the first blocked span went out
        assert len(result.output) <= text.index(BOMB)


@PROPERTIES
@given(
    parts=st.lists(st.one_of(st.text(ALPHABET, max_size=8), st.sampled_from(["<a>", "<b>", "<c>"])), max_size=20),
    sizes=chunk_sizes,
    holdback=holdbacks,
    context_chars=contexts,
)
def test_placeholders_split_across_chunks_are_restored_whole(
    parts: list[str], sizes: list[int], holdback: int, context_chars: int
) -> None:
    scope = MemoryScope()
    placeholders = {
        "<a>": scope.placeholder_for("EMAIL_ADDRESS", "jane@example.com"),
        "<b>": scope.placeholder_for("PHONE_NUMBER", "+1 555 0100"),
        "<c>": scope.placeholder_for("EMAIL_ADDRESS", "joe@example.org"),
    }
    text = "".join(placeholders.get(p, p) for p in parts)
    fed = Fed()
    recorder = Recorder("seen", fed)
    chain = chain_of({"seen": recorder}, [FlagStep(detector="seen", action="flag")])
    guard = StreamGuard(chain, CTX, scope, holdback, context_chars)
    result = asyncio.run(stream(guard, split(text, sizes), fed))
    assert result.output == restore(text, scope)


def test_a_word_still_being_written_is_shown_only_once_whole() -> None:
    """Upstream tokens start with their whitespace, so the delta that ends a line often brings the start of the
    next word; the steps are not shown that fragment (a classifier scores "retu" as if someone would read it)."""
    fed = Fed()
    recorder = Recorder("seen", fed)
    guard = StreamGuard(chain_of({"seen": recorder}, [FlagStep(detector="seen", action="flag")]), CTX, None, 256, 200)
    run = asyncio.run(stream(guard, ["import os\n    retu", "rn os.getpid()\n"], fed, (recorder,)))
    assert run.output == "import os\n    return os.getpid()\n"
    assert [seen for _, seen in recorder.seen] == ["import os\n    ", "import os\n    return os.getpid()\n"]


def test_nothing_is_released_before_the_first_window_is_long_enough() -> None:
    """A first line ("Slice it:") is judged with what follows it, not alone."""
    fed = Fed()
    recorder = Recorder("seen", fed)
    chain = chain_of({"seen": recorder}, [FlagStep(detector="seen", action="flag")])
    guard = StreamGuard(chain, CTX, None, 256, 200, min_window=30)
    run = asyncio.run(stream(guard, ["Slice it:\n", "\n", "```python\nxs = xs[::-1]\n", "```\n"], fed, (recorder,)))
    assert run.output == "Slice it:\n\n```python\nxs = xs[::-1]\n```\n"
    assert recorder.seen[0][1] == "Slice it:\n\n```python\nxs = xs[::-1]\n"
    assert run.releases[0].start == 0 and run.releases[0].end == len("Slice it:\n\n```python\nxs = xs[::-1]\n")
