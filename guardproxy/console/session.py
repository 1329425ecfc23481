"""Who may use the console, and their sessions.

With `auth.mode: keys`, a reviewer or admin API key signs in (a client key is refused). The key is checked again
on every page through the proxy's own `Access` (cached for `auth.cache_ttl_s`), so revoking or expiring it ends
its console sessions too. With `auth.mode: none`, the operator's `GUARDPROXY_CONSOLE_TOKEN` signs in as admin,
and without that token there is no console at all.

Sessions live in the proxy's memory (a restart signs everyone out), keyed by a random cookie value that is
`HttpOnly` and `SameSite=Strict`; each carries its own CSRF token for the forms.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from guardproxy.auth.access import Access
from guardproxy.auth.keys import Role
from guardproxy.errors import InvalidApiKey, PermissionDenied

TOKEN_ENV = "GUARDPROXY_CONSOLE_TOKEN"
COOKIE = "gp_console"
LOGIN_COOKIE = "gp_console_login"  # the sign-in form's CSRF value (double submit: there is no session yet)
SESSION_IDLE_S = 8 * 3600
MAX_SESSIONS = 10_000
TOKEN_ACTOR = "console-token"
# The token is compared on each sign-in with no lockout: it must be too long to guess (`openssl rand -base64 32`).
MIN_TOKEN_CHARS = 24
log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Session:
    actor: str  # the key's name (what feedback records as its actor), or TOKEN_ACTOR
    role: Role
    csrf: str
    authorization: str | None  # "Bearer <key>" to re-check on each page; None with the console token
    store_raw: bool = False

    @property
    def admin(self) -> bool:
        return self.role.allows(Role.ADMIN)


class SignInRefused(Exception):
    """The message is shown on the sign-in page."""


class ConsoleAuth:
    """Signs reviewers in and finds their session from the cookie. One per app (no module-level state)."""

    def __init__(self, access: Access, token: str | None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._access = access
        if token and len(token) < MIN_TOKEN_CHARS:
            log.warning(
                "console_token_too_short",
                message=f"{TOKEN_ENV} has fewer than {MIN_TOKEN_CHARS} characters: the console stays off without keys.",
            )
            token = None
        self._token = token or None
        self._clock = clock
        self._sessions: OrderedDict[str, tuple[float, Session]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        """Keys on, or a console token set: otherwise nobody could sign in safely, and /console does not exist."""
        return self._access.keys_on or self._token is not None

    def sign_in(self, secret: str) -> tuple[str, Session]:
        """A new session (its cookie value and the session) for a reviewer/admin key or the console token."""
        secret = secret.strip()
        if not secret:
            raise SignInRefused("Enter a reviewer or admin API key.")
        if self._access.keys_on:
            authorization = f"Bearer {secret}"
            try:
                caller = self._access.check(authorization, Role.REVIEWER)
            except InvalidApiKey:
                raise SignInRefused("Incorrect, revoked or expired API key.") from None
            except PermissionDenied:
                raise SignInRefused(
                    "This key's role may not use the console: it needs a reviewer or admin key."
                ) from None
            assert caller is not None
            session = Session(caller.key.name, caller.key.role, secrets.token_urlsafe(32), authorization)
        elif self._token is not None and hmac.compare_digest(secret.encode(), self._token.encode()):
            session = Session(TOKEN_ACTOR, Role.ADMIN, secrets.token_urlsafe(32), None)
        else:
            raise SignInRefused("Incorrect console token.")
        cookie = secrets.token_urlsafe(32)
        self._prune()
        self._sessions[cookie] = (self._clock(), session)
        return cookie, session

    def session(self, cookie: str | None) -> Session | None:
        """The live session of this cookie, or None (unknown, idle too long, or its key no longer valid)."""
        if not cookie or not self.enabled:
            return None
        found = self._sessions.get(cookie)
        if found is None:
            return None
        seen, session = found
        now = self._clock()
        if now - seen > SESSION_IDLE_S or not self._still_valid(session):
            self._sessions.pop(cookie, None)
            return None
        self._sessions[cookie] = (now, session)
        self._sessions.move_to_end(cookie)
        return session

    def sign_out(self, cookie: str | None) -> None:
        if cookie:
            self._sessions.pop(cookie, None)

    def _still_valid(self, session: Session) -> bool:
        if session.authorization is None:
            return self._token is not None and not self._access.keys_on
        try:
            self._access.check(session.authorization, Role.REVIEWER)
        except (InvalidApiKey, PermissionDenied):
            return False
        return self._access.keys_on

    def _prune(self) -> None:
        while len(self._sessions) >= MAX_SESSIONS:
            self._sessions.popitem(last=False)
