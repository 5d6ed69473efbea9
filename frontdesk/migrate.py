"""Schema migrations (Alembic) and the check ``serve`` makes before it starts."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

from frontdesk.db import make_engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("")).get_current_head()


def known_revisions() -> set[str]:
    return {rev.revision for rev in ScriptDirectory.from_config(alembic_config("")).walk_revisions()}


def _ensure_sqlite_dir(url: str) -> None:
    if url.startswith("sqlite") and ":///" in url:
        path = url.split(":///", 1)[1].split("?", 1)[0]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate up (blocking; call from a thread inside an event loop)."""
    _ensure_sqlite_dir(url)
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())


@dataclass
class SchemaState:
    current: str | None
    head: str | None

    @property
    def ok(self) -> bool:
        return self.current == self.head

    def problem(self) -> str | None:
        if self.ok:
            return None
        if self.current is None:
            return "The database has not been migrated. Run `frontdesk migrate` first."
        if self.current not in known_revisions():
            return (
                f"The database schema ({self.current}) is newer than this Frontdesk knows (head {self.head}). "
                "Upgrade Frontdesk, or point it at another database."
            )
        return f"The database schema ({self.current}) is behind this Frontdesk ({self.head}). Run `frontdesk migrate`."


async def schema_state(url: str) -> SchemaState:
    _ensure_sqlite_dir(url)
    engine = make_engine(url)
    try:
        return SchemaState(current=await current_revision(engine), head=head_revision())
    finally:
        await engine.dispose()


async def upgrade_async(url: str, revision: str = "head") -> None:
    await asyncio.to_thread(upgrade, url, revision)
