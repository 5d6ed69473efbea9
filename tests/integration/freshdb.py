"""Empty databases for tests that need a schema-less start (migrations, the CLI's schema checks)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from frontdesk.dbadmin import scratch_database
from tests.conftest import POSTGRES_URL, _reachable, _unavailable


@contextmanager
def fresh_database(backend: str, tmp_path: Path) -> Iterator[str]:
    """Yield the URL of a new, empty database on ``backend``; a PostgreSQL one is dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / f'fresh-{uuid.uuid4().hex[:8]}.db'}"
        return
    if not _reachable(POSTGRES_URL, 5432):
        _unavailable("PostgreSQL", POSTGRES_URL)
    with scratch_database(POSTGRES_URL, "fd_fresh") as url:
        yield url
