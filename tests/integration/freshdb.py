"""Empty databases for tests that need a schema-less start (migrations, the CLI's schema checks)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from tests.conftest import POSTGRES_URL, _pg_admin, _reachable, _unavailable


@contextmanager
def fresh_database(backend: str, tmp_path: Path) -> Iterator[str]:
    """Yield the URL of a new, empty database on ``backend``; a PostgreSQL one is dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / f'fresh-{uuid.uuid4().hex[:8]}.db'}"
        return
    if not _reachable(POSTGRES_URL, 5432):
        _unavailable("PostgreSQL", POSTGRES_URL)
    name = f"fd_fresh_{uuid.uuid4().hex[:10]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield urlsplit(POSTGRES_URL)._replace(path=f"/{name}").geturl()
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
