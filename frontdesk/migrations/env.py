"""Alembic environment. Run through ``frontdesk migrate`` (see frontdesk/migrate.py)."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

import frontdesk.models  # noqa: F401  (registers every table)
from frontdesk.db import Base, make_engine
from frontdesk.search import ddl

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_object=ddl.include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            sqlite = connection.dialect.name == "sqlite"
            if sqlite:
                await connection.run_sync(_sqlite_foreign_keys_off)
            await connection.run_sync(_run)
            if sqlite:
                await connection.run_sync(_sqlite_check_foreign_keys)
            await connection.commit()
    finally:
        await engine.dispose()  # the connection, with its foreign keys off, goes too


def _sqlite_foreign_keys_off(connection: Connection) -> None:
    """SQLite rebuilds a table to change it (batch mode): with foreign keys on, dropping the old
    table would delete, by cascade, every row that refers to it. The pragma only takes effect
    outside a transaction, so it is the connection's first statement; the keys are checked
    before the commit instead (:func:`_sqlite_check_foreign_keys`)."""
    connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    if connection.exec_driver_sql("PRAGMA foreign_keys").scalar() != 0:
        raise RuntimeError("could not turn SQLite's foreign keys off for the migration")


def _sqlite_check_foreign_keys(connection: Connection) -> None:
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        raise RuntimeError(f"the migration left rows with broken foreign keys: {broken[:10]}")


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    asyncio.run(_run_async(config.get_main_option("sqlalchemy.url") or ""))


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
