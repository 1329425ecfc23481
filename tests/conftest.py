"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

# --- fake OpenAI-compatible upstream (owner: backend helper) -------------------------------------------
from tests.fake_upstream import FakeUpstream
from tests.pg_server import PgServer
from tests.redis_server import RedisServer


@pytest.fixture(scope="session")
def upstream_server() -> Iterator[FakeUpstream]:
    """One real server for the whole session. Session-scoped fixtures (a proxy) point at its base_url."""
    with FakeUpstream() as server:
        yield server


@pytest.fixture
def upstream(upstream_server: FakeUpstream) -> FakeUpstream:
    """The session's fake upstream with an empty reply queue and no recorded requests."""
    upstream_server.reset()
    return upstream_server


# --- end of fake upstream section ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One real PostgreSQL server for the session (tests/pg_server.py); each test takes a fresh database."""
    server = PgServer()
    try:
        server.start()
        yield server
        server.stop()
    finally:
        server.remove()


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """The URL of a fresh, empty database on the session's PostgreSQL server."""
    return pg_server.create_database()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Keeps each phase's report on the test item (`item.rep_call`), so fixtures can act on a failure
    (the console's browser tests save a screenshot)."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real Redis server for the session (tests/redis_server.py); `redis_url` empties it per test."""
    server = RedisServer()
    try:
        server.start()
        yield server
    finally:
        server.remove()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The URL of the session's Redis server, emptied for this test."""
    redis_server.flush()
    return redis_server.url
