"""The request-path check of API keys: `Authorization: Bearer gp-...` -> the caller, or a 401/403.

Verified keys (and unknown ones, so a flood of wrong keys does not reach the store each time) are cached
in memory for `cache_ttl_s`; a `keys revoke` therefore takes effect within that many seconds. Expiry is
checked on every request, cached or not.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from guardproxy.auth.keys import ApiKey, KeyStore, Role, hash_key
from guardproxy.errors import InvalidApiKey, ModelNotAllowed, PermissionDenied

# Bounds the cache's memory when clients send many different (mostly wrong) keys; past it the cache starts over.
MAX_CACHED_KEYS = 10_000
_BEARER = "bearer "


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a request when keys are on."""

    key: ApiKey

    @property
    def label(self) -> str:
        return self.key.label


class KeyGuard:
    """Authenticates bearer keys against a `KeyStore`, with a short in-memory cache."""

    def __init__(self, store: KeyStore, *, cache_ttl_s: float, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._ttl_s = cache_ttl_s
        self._clock = clock
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}

    def authenticate(self, authorization: str | None, needed: Role) -> Caller:
        """The caller of a valid key whose role allows `needed`; InvalidApiKey (401) or PermissionDenied (403)."""
        secret = _bearer_token(authorization)
        if secret is None:
            raise InvalidApiKey(
                "You didn't provide an API key. Send it as 'Authorization: Bearer gp-...' "
                "(ask the proxy's operator for one: `guardproxy keys create`)."
            )
        now = self._clock()
        key = self._lookup(hash_key(secret), now)
        if key is None or not key.usable_at(now):
            # One message for unknown, revoked and expired: a caller learns nothing about which keys exist.
            raise InvalidApiKey("Incorrect, revoked or expired API key provided.")
        if not key.role.allows(needed):
            raise PermissionDenied(
                f"The key '{key.name}' has the role '{key.role}'; this route needs '{needed}' or higher."
            )
        return Caller(key)

    @staticmethod
    def check_model(caller: Caller, model: object) -> None:
        """ModelNotAllowed (403) when the key has a model list and `model` is not on it."""
        if isinstance(model, str) and not caller.key.allows_model(model):
            allowed = ", ".join(caller.key.models or ())
            raise ModelNotAllowed(
                f"The key '{caller.key.name}' may not use the model '{model}'; it may use: {allowed}.", param="model"
            )

    def close(self) -> None:
        self._store.close()

    def _lookup(self, key_hash: str, now: float) -> ApiKey | None:
        cached = self._cache.get(key_hash)
        if cached is not None and now < cached[0]:
            return cached[1]
        key = self._store.lookup_by_hash(key_hash)
        if len(self._cache) >= MAX_CACHED_KEYS:
            self._cache.clear()
        self._cache[key_hash] = (now + self._ttl_s, key)
        return key


def _bearer_token(authorization: str | None) -> str | None:
    if not authorization or authorization[: len(_BEARER)].lower() != _BEARER:
        return None
    token = authorization[len(_BEARER) :].strip()
    return token or None
