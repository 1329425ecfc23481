"""The detector seam: a detector reports (score, spans, labels, explanation); the policy acts.

Every detector class is built the same way, `Class(name, config, deps)`: `config` is its validated
`detectors.<name>` entry and `deps` what the runtime shares with it (`DetectorDeps`). Beyond the four
members of `Detector`, a detector may declare optional capabilities, each a small protocol below. They
are read once, when the runtime is built (the chain's inline steps, the runtime's request instrumenters,
the watcher's model directories), never per request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, runtime_checkable

from guardproxy.backends.base import Backend
from guardproxy.core import JSON, Context, Detection
from guardproxy.detectors.shared import SharedResources
from guardproxy.errors import PolicyInvalid

if TYPE_CHECKING:  # model_files reads ServesModelFiles from here
    from guardproxy.detectors.model_files import ModelDir


@runtime_checkable
class Detector(Protocol):
    name: str
    # "text": called once per text of the request/response. "request": once per request,
    # with `ctx.request` holding the whole body (e.g. template validation); `text` is "".
    scope: Literal["text", "request"]

    async def detect(self, text: str, ctx: Context) -> Detection: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class DetectorDeps:
    """What a runtime hands every detector it builds; shared with the detector, never owned by it.

    `backends`: the policy's backends, for LLM-based checks (llama_guard, llm_judge, openai_moderation).
    `shared`: heavy objects several detectors share (one loaded model serving two classifier detectors);
    one per runtime, so a policy reload loads fresh models and the old ones close with the old runtime.
    """

    backends: Mapping[str, Backend] = field(default_factory=dict)
    shared: SharedResources = field(default_factory=SharedResources)

    def backend(self, detector: str, backend: str) -> Backend:
        """The policy backend `detectors.<detector>.backend` names."""
        found = self.backends.get(backend)
        if found is None:
            raise PolicyInvalid(
                f"detectors.{detector}.backend: unknown backend {backend!r}; defined: {sorted(self.backends)}"
            )
        return found


class DetectorClass(Protocol):
    """The one constructor shape: `Class(name, config, deps)`; what the registry calls."""

    def __call__(self, name: str, config: Any, deps: DetectorDeps) -> object: ...


# --- Optional capabilities -----------------------------------------------------------------------------


@runtime_checkable
class InlineDetector(Protocol):
    """`inline: ClassVar[bool] = True`: detect() never awaits (cheap pure-CPU work), so the chain runs it in
    the caller's task, without a task or timeout of its own (it could not be interrupted anyway).
    Detectors that do I/O or heavy work do not declare it."""

    inline: ClassVar[bool]


def is_inline(detector: Detector) -> bool:
    return isinstance(detector, InlineDetector) and detector.inline


@runtime_checkable
class StreamHoldback(Protocol):
    """A detector whose matches can be judged only whole (a link: its host and data come at the end).

    `unfinished_from(text)` is where a match that may still be growing begins at the end of `text`, or None;
    the stream guard releases nothing from there on until more text (or the end of the answer) arrives."""

    def unfinished_from(self, text: str) -> int | None: ...


@runtime_checkable
class RequestInstrumenter(Protocol):
    """Marks a chat request before anything reads it (the canary's sentence in the system prompt).

    Called once per chat request, in place on the body, for the detectors of output steps; it must be
    idempotent (a retried or failed-over request is not marked twice)."""

    def instrument(self, body: JSON, request_id: str) -> None: ...


@runtime_checkable
class ServesModelFiles(Protocol):
    """A detector that loaded model files from a directory the model registry may change (a new `vN`, a
    `CURRENT` pointer): the policy watcher rebuilds the runtime when a source resolves elsewhere."""

    def model_dirs(self) -> tuple[ModelDir, ...]:
        """What this detector loaded, and from which configured source."""
        ...


@runtime_checkable
class ModelSourcesOf(Protocol):
    """A detector *class* that can name the model directories a configuration reads (a classmethod
    `model_sources(config)`), before any detector exists: the watcher resolves them to tell whether a
    registry change concerns the policy. Custom classes need not: their running instances tell."""

    def model_sources(self, config: Any) -> tuple[Path, ...]: ...
