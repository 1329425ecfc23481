"""`Access`: the one place the app asks "may this request go on, and who sent it?".

With `auth.mode: none` every request passes and the caller is None (the app behaves as before keys
existed). With `keys` it is the `KeyGuard`'s answer. The mode is read from the current policy on every
request, so a reload that turns keys on takes effect at once; the key store is the one opened at
start-up (changing `auth.keys_path` needs a restart).
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from guardproxy.auth.guard import Caller, KeyGuard
from guardproxy.auth.keys import Role, SQLiteKeyStore
from guardproxy.policies.schema import AuthConfig

log = structlog.get_logger(__name__)
# Addresses from which only this machine can connect; anything else exposes a `mode: none` proxy.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


class Access:
    def __init__(self, config: Callable[[], AuthConfig], guard: KeyGuard | None) -> None:
        self._config = config
        self._guard = guard

    @classmethod
    def open(cls, config: Callable[[], AuthConfig]) -> Access:
        """Opens the key store only when keys are on at start-up (a `none` proxy creates no file)."""
        current = config()
        if current.mode == "none":
            return cls(config, None)
        return cls(config, KeyGuard(SQLiteKeyStore(current.keys_path), cache_ttl_s=current.cache_ttl_s))

    @property
    def keys_on(self) -> bool:
        return self._config().mode == "keys"

    def check(self, authorization: str | None, needed: Role) -> Caller | None:
        """None when keys are off; else the caller, or InvalidApiKey / PermissionDenied."""
        if not self.keys_on:
            return None
        if self._guard is None:  # keys turned on by a reload: open the store now
            current = self._config()
            self._guard = KeyGuard(SQLiteKeyStore(current.keys_path), cache_ttl_s=current.cache_ttl_s)
        return self._guard.authenticate(authorization, needed)

    @staticmethod
    def check_model(caller: Caller | None, model: object) -> None:
        if caller is not None:
            KeyGuard.check_model(caller, model)

    def close(self) -> None:
        if self._guard is not None:
            self._guard.close()


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def warn_if_open(host: str, config: AuthConfig) -> bool:
    """Logs a warning (and returns True) when a proxy without keys listens beyond this machine."""
    if config.mode != "none" or is_loopback(host):
        return False
    log.warning(
        "auth_off_on_public_address",
        host=host,
        message="auth.mode is none and the proxy listens beyond loopback: anyone who reaches this port spends "
        "the upstream key, reads /metrics and posts feedback the trainer learns from. Set `auth: {mode: keys}` "
        "and create keys with `guardproxy keys create`.",
    )
    return True
