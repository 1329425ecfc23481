"""What a request does when the shared state store does not answer: the one rule, `state.on_error`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import structlog

from guardproxy.errors import StateUnavailable

log = structlog.get_logger(__name__)

OnErrorMode = Literal["fail_closed", "fail_open"]


class StateStoreError(Exception):
    """A state store call failed (connection refused, timeout, a script error). Raised by the Redis
    implementations with the cause chained; the caller decides through `StateFailures`."""


@dataclass(frozen=True, slots=True)
class StateFailures:
    mode: OnErrorMode

    def handle(self, what: str, exc: StateStoreError) -> None:
        """`fail_closed`: raise StateUnavailable (503). `fail_open`: log and return; the caller degrades."""
        log.warning("state_unavailable", what=what, mode=self.mode, error=str(exc.__cause__ or exc))
        if self.mode == "fail_closed":
            raise StateUnavailable(
                f"The proxy's shared state store did not answer ({what}); the request was not served, because "
                "the policy fails closed (`state.on_error: fail_closed`). Try again shortly."
            ) from exc

    def note(self, what: str, exc: StateStoreError) -> None:
        """For work after the answer was delivered (nothing left to refuse): log, whatever the mode."""
        log.warning("state_unavailable", what=what, mode=self.mode, error=str(exc.__cause__ or exc))
