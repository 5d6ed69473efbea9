"""Shared fixtures.

Database tests run on **both** SQLite and PostgreSQL (``backend`` fixture); hub tests on both
the in-memory hub and Redis. Where PostgreSQL or Redis cannot be reached, those variants skip
with a one-line reason — unless ``FRONTDESK_TEST_REQUIRE_SERVICES=1`` (CI sets it), where they fail.

Each PostgreSQL test run gets a fresh database, migrated once, truncated after each test; each
SQLite test gets a copy of a migrated template file. Both schemas come from the real migrations.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import text

from frontdesk import clock, migrate
from frontdesk.db import Base, Database
from frontdesk.dbadmin import scratch_database
from frontdesk.settings import Settings
from frontdesk.wiring import register_subscribers
from tests import peers

register_subscribers()  # as create_app and the worker do: tests that build a Database alone get them too

POSTGRES_URL = os.environ.get("FRONTDESK_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("FRONTDESK_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url.replace("+asyncpg", ""))
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=1):
            return True
    except OSError:
        return False


def _unavailable(peer: peers.Peer, url: str) -> None:
    peers.require(peer, False, f"{peer.name} not reachable at {url}")


async def create_schema(url: str) -> None:
    """Create every table from the models and stamp the migration head.

    Tests build the schema from the models so a model change is testable at once;
    ``tests/integration/test_migrations.py`` proves the migrations produce the same schema.
    """
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    import frontdesk.models  # noqa: F401

    database = Database(url)
    try:
        async with database.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
            script = ScriptDirectory.from_config(migrate.alembic_config(url))
            await conn.run_sync(lambda c: MigrationContext.configure(c).stamp(script, "head"))
    finally:
        await database.dispose()


# -- PostgreSQL: one fresh database per test run ---------------------------------------------


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    if not _reachable(POSTGRES_URL, 5432):
        _unavailable(peers.POSTGRESQL, POSTGRES_URL)
    with scratch_database(POSTGRES_URL, "fd_test") as url:
        asyncio.run(create_schema(url))
        yield url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    asyncio.run(create_schema(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if backend == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    template: Path = request.getfixturevalue("sqlite_template")
    target = tmp_path / "frontdesk.db"
    shutil.copy(template, target)
    return f"sqlite+aiosqlite:///{target}"


async def truncate_all(db: Database) -> None:
    if db.dialect != "postgresql":
        return
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    async with db.engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {names} CASCADE"))


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    try:
        yield database
    finally:
        await truncate_all(database)
        await database.dispose()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        data_dir=tmp_path / "var",
        secret_key="test-secret-key-0123456789",
        auto_migrate=False,
        timers_poll_seconds=0.05,
        tune_gc=False,  # the suite builds hundreds of apps in one process
        # Apps of parallel tests (pytest-xdist workers) sharing the Redis test database stay apart.
        redis_prefix=f"fdt{uuid.uuid4().hex[:10]}",
    )


@pytest.fixture
async def app(settings: Settings, database_url: str) -> AsyncIterator[object]:
    from asgi_lifespan import LifespanManager

    from frontdesk.app import create_app

    application = create_app(settings)
    try:
        async with LifespanManager(application, startup_timeout=60, shutdown_timeout=60):
            yield application
    finally:
        # After shutdown: the app's background work (routing leader, timers) has stopped and
        # cannot hold row locks the TRUNCATE waits for.
        db = Database(database_url)
        try:
            await truncate_all(db)
        finally:
            await db.dispose()


@pytest.fixture
async def client(app: object) -> AsyncIterator[object]:
    import httpx

    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


# -- Redis / hubs ------------------------------------------------------------------------------


@pytest.fixture
def redis_url() -> str:
    if not _reachable(REDIS_URL, 6379):
        _unavailable(peers.REDIS, REDIS_URL)
    return REDIS_URL


@pytest.fixture(params=["memory", "redis"])
def hub_backend(request: pytest.FixtureRequest) -> str | None:
    """``None`` for the in-process hub, else a Redis URL."""
    if request.param == "redis":
        return str(request.getfixturevalue("redis_url"))
    return None


# -- time --------------------------------------------------------------------------------------


class MovableClock:
    def __init__(self) -> None:
        from datetime import UTC, datetime

        self.current = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

    def __call__(self):  # type: ignore[no-untyped-def]
        return self.current

    def advance(self, **kwargs: float) -> None:
        from datetime import timedelta

        self.current += timedelta(**kwargs)


@pytest.fixture
def frozen_clock() -> Iterator[MovableClock]:
    c = MovableClock()
    clock.set_clock(c)
    yield c
    clock.set_clock(None)


# -- the end of the run ------------------------------------------------------------------------


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and isinstance(report.longrepr, tuple):
        peers.note_skip(str(report.longrepr[2]))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say which real peers were missing and how to install them (skips are easy to overlook)."""
    lines = peers.summary_lines()
    if lines:
        terminalreporter.section("missing real peers", yellow=True, bold=True)
        for line in lines:
            terminalreporter.write_line(line)
