"""Units of work against a database another process (or the routing leader) writes to at the same
time: a write behind a savepoint must wait its turn, never fail."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from frontdesk.db import Database
from frontdesk.models import Skill


async def test_a_savepoint_write_waits_for_a_writer_that_committed_after_its_read(db: Database) -> None:
    """The shape of the events batch (``begin_nested`` per item: read, then insert). On SQLite a
    savepoint opened a deferred transaction: its read pinned a snapshot, and once another
    connection had committed, the insert failed at once with "database is locked"."""
    read_done = asyncio.Event()

    async def other_writer() -> None:
        await read_done.wait()
        async with db.transaction() as session:
            session.add(Skill(name="retention"))

    async def batch() -> None:
        async with db.transaction() as session, session.begin_nested():
            await session.scalar(select(func.count()).select_from(Skill))
            read_done.set()
            # Let the other writer commit — or, where the savepoint holds the write lock,
            # find it waiting for that lock.
            await asyncio.wait({other}, timeout=0.5)
            session.add(Skill(name="billing"))
            await session.flush()

    other = asyncio.create_task(other_writer())
    await asyncio.wait_for(asyncio.gather(batch(), other), 30)
    async with db.transaction() as session:
        names = set((await session.scalars(select(Skill.name))).all())
    assert names == {"billing", "retention"}
