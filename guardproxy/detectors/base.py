"""The detector seam: a detector reports (score, spans, labels, explanation); the policy acts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, Protocol, runtime_checkable

from guardproxy.backends.base import Backend
from guardproxy.core import Context, Detection
from guardproxy.errors import PolicyInvalid


@runtime_checkable
class Detector(Protocol):
    name: str
    # "text": called once per text of the request/response. "request": once per request,
    # with `ctx.request` holding the whole body (e.g. template validation); `text` is "".
    scope: Literal["text", "request"]
    # Optional class attribute `inline = True`: detect() never awaits (cheap pure-CPU work), so the
    # chain runs it in the caller's task, without a task or timeout of its own (it could not be
    # interrupted anyway). Detectors that do I/O or heavy work leave it unset.

    async def detect(self, text: str, ctx: Context) -> Detection: ...

    async def aclose(self) -> None: ...


def policy_backend(detector: str, backend: str, backends: Mapping[str, Backend]) -> Backend:
    """The policy backend an LLM-based detector calls (shared with the routes, never owned)."""
    found = backends.get(backend)
    if found is None:
        raise PolicyInvalid(f"detectors.{detector}.backend: unknown backend {backend!r}; defined: {sorted(backends)}")
    return found
