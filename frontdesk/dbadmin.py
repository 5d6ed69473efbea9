"""Throw-away PostgreSQL databases, for the test suite and the benchmarks.

One place knows how to create a uniquely named database next to a given one and drop it
again (``WITH (FORCE)``, so lingering connections do not keep it alive).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit


async def run_admin_sql(admin_url: str, sql: str) -> None:
    """Run one statement outside a transaction (CREATE/DROP DATABASE) on ``admin_url``'s server."""
    import asyncpg

    parts = urlsplit(admin_url.replace("+asyncpg", ""))
    conn = await asyncpg.connect(
        host=parts.hostname,
        port=parts.port or 5432,
        user=parts.username or "postgres",
        password=parts.password,
        database=parts.path.lstrip("/") or "postgres",
    )
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextmanager
def scratch_database(admin_url: str, prefix: str) -> Iterator[str]:
    """Create an empty database ``<prefix>_<random>`` beside ``admin_url``; yield its URL; drop it."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    asyncio.run(run_admin_sql(admin_url, f'CREATE DATABASE "{name}"'))
    try:
        yield urlsplit(admin_url)._replace(path=f"/{name}").geturl()
    finally:
        asyncio.run(run_admin_sql(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
