"""API keys: random secrets shown once, stored only as a hash, looked up by that hash.

A key is `gp-` + 32 random bytes (urlsafe base64, 43 characters) from `secrets`. The store keeps its
SHA-256 and a short prefix (for `keys list` and `keys revoke`), never the key. A plain fast hash is
enough here because the secret has 256 bits of entropy: slow password hashes (bcrypt, argon2) exist to
make guessing low-entropy passwords expensive, and nobody can enumerate 2^256 keys; a fast hash also
keeps a cache miss on the request path at a few microseconds.

`KeyStore` is the seam for a networked store (PostgreSQL for replicas); `SQLiteKeyStore` is the
embedded default. `profile` picks the policy profile (`Runtime.chains`); `rpm`, `tpm` and `budget_tokens`
(per `budget_period`: `auth/periods.py`) are enforced by `auth/limits.py`.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from guardproxy.auth.periods import BudgetPeriod

KEY_PREFIX = "gp-"
KEY_BYTES = 32
# Shown by `keys list` and accepted by `keys revoke`: "gp-" + 8 characters, 48 bits; enough to tell keys apart,
# far too little to guess the rest.
LISTED_PREFIX_CHARS = len(KEY_PREFIX) + 8


class Role(StrEnum):
    """Each role may do what the roles before it may."""

    CLIENT = "client"  # the OpenAI routes
    REVIEWER = "reviewer"  # + POST /v1/feedback
    ADMIN = "admin"  # + GET /metrics

    def allows(self, needed: Role) -> bool:
        order = list(Role)
        return order.index(self) >= order.index(needed)


@dataclass(frozen=True, slots=True)
class ApiKey:
    """What the store knows about a key (never the key itself)."""

    key_hash: str
    prefix: str
    name: str
    role: Role
    models: tuple[str, ...] | None  # None: every model of the policy
    profile: str | None
    rpm: int | None
    tpm: int | None
    budget_tokens: int | None
    created: float
    expires: float | None
    revoked: float | None
    budget_period: BudgetPeriod = BudgetPeriod.TOTAL  # the span `budget_tokens` covers before it starts over

    def usable_at(self, now: float) -> bool:
        return self.revoked is None and (self.expires is None or now < self.expires)

    def allows_model(self, model: str) -> bool:
        return self.models is None or model in self.models

    @property
    def label(self) -> str:
        """How audit records and feedback name the caller."""
        return f"{self.name} ({self.prefix})"


@dataclass(frozen=True, slots=True)
class NewKey:
    """The fields a caller chooses when creating a key."""

    name: str
    role: Role = Role.CLIENT
    models: tuple[str, ...] | None = None
    profile: str | None = None
    rpm: int | None = None
    tpm: int | None = None
    budget_tokens: int | None = None
    expires: float | None = None
    budget_period: BudgetPeriod = BudgetPeriod.TOTAL


class KeyNotFound(LookupError):
    pass


class KeyStore(Protocol):
    def create(self, new: NewKey, *, now: float) -> tuple[str, ApiKey]:
        """A new key: the secret (to show once) and what is stored."""
        ...

    def lookup_by_hash(self, key_hash: str) -> ApiKey | None: ...

    def list(self) -> Sequence[ApiKey]: ...

    def revoke(self, prefix_or_name: str, *, now: float) -> ApiKey:
        """Revoke the one key with this prefix or name; KeyNotFound (none) or ValueError (several)."""
        ...

    def close(self) -> None: ...


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(KEY_BYTES)


_DURATION = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_UNIT_S = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration_s(text: str) -> float:
    """`30d`, `12h`, `15m`, `2w` as seconds; ValueError otherwise."""
    match = _DURATION.match(text)
    if match is None or int(match.group(1)) == 0:
        raise ValueError(f"expected a positive duration like 30d, 12h, 15m or 2w, got {text!r}")
    return int(match.group(1)) * _UNIT_S[match.group(2)]


_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    key_hash TEXT PRIMARY KEY,
    prefix TEXT NOT NULL,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    models TEXT,
    profile TEXT,
    rpm INTEGER,
    tpm INTEGER,
    budget_tokens INTEGER,
    created REAL NOT NULL,
    expires REAL,
    revoked REAL,
    budget_period TEXT NOT NULL DEFAULT 'total'
);
CREATE INDEX IF NOT EXISTS api_keys_prefix ON api_keys(prefix);
"""
_COLUMNS = (
    "key_hash, prefix, name, role, models, profile, rpm, tpm, budget_tokens, created, expires, revoked, budget_period"
)
# Columns added after the first release, with the definition `ALTER TABLE` gives them in an older key store.
_ADDED_COLUMNS = {"budget_period": "TEXT NOT NULL DEFAULT 'total'"}
# Model names never contain a newline (they are YAML scalars of `models:`); one per line keeps the column readable.
_MODEL_SEPARATOR = "\n"


class SQLiteKeyStore:
    """One SQLite file. One connection shared by the threads that use it, behind a lock: a check that reaches
    the store costs p50 12 us (bench/bench_key_check.py, 1,000 keys), cheap enough to run on the event loop
    and far cheaper than opening a connection per call; the proxy caches hits for `auth.cache_ttl_s` anyway."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(_SCHEMA)
        self._migrate()

    def create(self, new: NewKey, *, now: float) -> tuple[str, ApiKey]:
        if not new.name.strip():
            raise ValueError("a key needs a name")
        secret = new_secret()
        key = ApiKey(
            key_hash=hash_key(secret),
            prefix=secret[:LISTED_PREFIX_CHARS],
            name=new.name.strip(),
            role=new.role,
            models=new.models,
            profile=new.profile,
            rpm=new.rpm,
            tpm=new.tpm,
            budget_tokens=new.budget_tokens,
            created=now,
            expires=new.expires,
            revoked=None,
            budget_period=new.budget_period,
        )
        with self._lock:
            if self._conn.execute("SELECT 1 FROM api_keys WHERE name = ?", (key.name,)).fetchone():
                raise ValueError(f"a key named {key.name!r} exists already; names must be unique")
            self._conn.execute(
                f"INSERT INTO api_keys ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key.key_hash,
                    key.prefix,
                    key.name,
                    key.role.value,
                    None if key.models is None else _MODEL_SEPARATOR.join(key.models),
                    key.profile,
                    key.rpm,
                    key.tpm,
                    key.budget_tokens,
                    key.created,
                    key.expires,
                    None,
                    key.budget_period.value,
                ),
            )
        return secret, key

    def lookup_by_hash(self, key_hash: str) -> ApiKey | None:
        with self._lock:
            row = self._conn.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE key_hash = ?", (key_hash,)).fetchone()
        return None if row is None else _key_of(row)

    def list(self) -> list[ApiKey]:
        with self._lock:
            rows = self._conn.execute(f"SELECT {_COLUMNS} FROM api_keys ORDER BY created, name").fetchall()
        return [_key_of(row) for row in rows]

    def revoke(self, prefix_or_name: str, *, now: float) -> ApiKey:
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_COLUMNS} FROM api_keys WHERE prefix = ? OR name = ?", (prefix_or_name, prefix_or_name)
            ).fetchall()
            if not rows:
                raise KeyNotFound(f"no key has the prefix or name {prefix_or_name!r}")
            if len(rows) > 1:
                names = ", ".join(f"{r[2]} ({r[1]})" for r in rows)
                raise ValueError(f"{prefix_or_name!r} matches several keys: {names}; give the prefix of one")
            key = _key_of(rows[0])
            if key.revoked is None:
                self._conn.execute("UPDATE api_keys SET revoked = ? WHERE key_hash = ?", (now, key.key_hash))
        return self.lookup_by_hash(key.key_hash) or key

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _migrate(self) -> None:
        """Adds the columns a key store made by an older guardproxy lacks; its keys get the columns' defaults."""
        with self._lock:
            present = {str(row[1]) for row in self._conn.execute("PRAGMA table_info(api_keys)")}
            for column, definition in _ADDED_COLUMNS.items():
                if column not in present:
                    self._conn.execute(f"ALTER TABLE api_keys ADD COLUMN {column} {definition}")


def _key_of(row: tuple[object, ...]) -> ApiKey:
    key_hash, prefix, name, role, models, profile, rpm, tpm, budget, created, expires, revoked, period = row
    return ApiKey(
        key_hash=str(key_hash),
        prefix=str(prefix),
        name=str(name),
        role=Role(str(role)),
        models=None if models is None else tuple(str(models).split(_MODEL_SEPARATOR)),
        profile=None if profile is None else str(profile),
        rpm=_int_or_none(rpm),
        tpm=_int_or_none(tpm),
        budget_tokens=_int_or_none(budget),
        created=float(str(created)),
        expires=None if expires is None else float(str(expires)),
        revoked=None if revoked is None else float(str(revoked)),
        budget_period=BudgetPeriod(str(period)),
    )


def _int_or_none(value: object) -> int | None:
    return None if value is None else int(str(value))
