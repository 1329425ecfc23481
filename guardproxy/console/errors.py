"""The console's own failures, and how any failure is shown: status, title and message of the error page."""

from __future__ import annotations

from guardproxy.console.csrf import CrossSiteRefused
from guardproxy.console.events import FilterInvalid
from guardproxy.console.models import MoveInvalid
from guardproxy.errors import GuardproxyError


class NotSignedIn(Exception):
    """No live session: pages send the browser to sign in."""


class ConsoleDisabled(Exception):
    """`auth.mode: none` and no console token: there is no console."""


class RecordNotFound(GuardproxyError):
    status = 404
    type = "invalid_request_error"
    code = "request_not_found"


def describe(exc: Exception) -> tuple[int, str, str]:
    if isinstance(exc, CrossSiteRefused):
        return 403, "Refused", str(exc)
    if isinstance(exc, FilterInvalid):
        return 400, "Bad filter", str(exc)
    if isinstance(exc, MoveInvalid):
        return 400, "Cannot do that", str(exc)
    if isinstance(exc, GuardproxyError):
        return exc.status, "Refused" if exc.status in (401, 403) else "Error", exc.message
    return 500, "Error", "The console failed to show this page; the server log has the details."
