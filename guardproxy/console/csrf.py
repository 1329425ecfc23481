"""Cross-site request forgery: every console form posts a token only the signed-in page knows, and its
`Origin` (or, without one, `Referer`) must be this host. Either check alone refuses a forged post."""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit


class CrossSiteRefused(Exception):
    """A form post that failed the token or origin check; the message says which."""


def same_origin(host: str | None, origin: str | None, referer: str | None) -> bool:
    """True when the post comes from a page of this host (`Host` header) by its Origin, or Referer without one.

    The scheme is not compared: behind a TLS-terminating proxy the browser says https and we see http.
    """
    if not host:
        return False
    source = origin if origin and origin != "null" else referer
    if not source:
        return False
    return urlsplit(source).netloc.lower() == host.lower()


def check_post(*, expected: str, sent: str | None, host: str | None, origin: str | None, referer: str | None) -> None:
    if not same_origin(host, origin, referer):
        raise CrossSiteRefused("This form was posted from another site (its Origin is not this console's).")
    if not sent or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise CrossSiteRefused("This form's CSRF token is missing or stale: reload the page and try again.")
