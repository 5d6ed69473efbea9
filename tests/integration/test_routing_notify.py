"""The ``NOTIFY`` that wakes a routing leader in another process (PostgreSQL).

A write that forwards something to routing notifies the other processes, unless this process
leads: its leader is woken directly, and the round trip is saved on the hot path."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from frontdesk.db import Database
from frontdesk.routing import inbox


async def _notified_by_a_write(url: str) -> bool:
    received: list[str] = []
    listener = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    db = Database(url)
    try:
        await listener.add_listener(inbox.NOTIFY_CHANNEL, lambda *args: received.append(args[2]))
        async with db.engine.begin() as conn:
            await inbox.notify_leader(conn)
        for _ in range(20):  # delivered at commit; give the listener a moment
            if received:
                break
            await asyncio.sleep(0.05)
        return bool(received)
    finally:
        await listener.close()
        await db.dispose()


@pytest.fixture
def local_leader():
    state = {"leads": False}

    def wake() -> None:
        pass

    inbox.register_wakeup(wake, lambda: state["leads"])
    yield state
    inbox.unregister_wakeup(wake)


async def test_a_standby_process_notifies_the_leader_elsewhere(postgres_url, local_leader):
    local_leader["leads"] = False  # this process's leader is a standby
    assert await _notified_by_a_write(postgres_url)


async def test_no_notify_when_this_process_leads(postgres_url, local_leader):
    local_leader["leads"] = True
    assert not await _notified_by_a_write(postgres_url)


async def test_no_notify_on_sqlite(tmp_path):
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    try:
        async with db.engine.begin() as conn:
            await inbox.notify_leader(conn)  # nothing to notify, and no error
    finally:
        await db.dispose()
