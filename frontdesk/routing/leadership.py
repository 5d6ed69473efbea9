"""Leadership and fencing: exactly one process decides.

Every ``frontdesk serve`` process runs a leader; exactly one of them leads:

* PostgreSQL: ``pg_try_advisory_lock`` on a dedicated connection held for the leader's life (the
  lock dies with the connection, so a killed leader frees it at once); the others retry every
  ``lock_retry`` seconds. The leader also ``LISTEN``s on that connection for ``frontdesk_routing``.
* SQLite (embedded): an exclusive ``flock`` on ``<database file>.routing-lock``.

On taking over, the leader bumps ``routing_leadership.epoch`` (a fencing token) and rebuilds the
core from the database (``rebuild.py``). Every step's transaction ends with :func:`fence`
(``SELECT epoch … FOR SHARE``): a leader that was replaced (its epoch is no longer the newest)
cannot commit, and steps down.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk import clock
from frontdesk.models.routing import RoutingLeadership
from frontdesk.routing import inbox
from frontdesk.routing.memory import LeaderState

log = logging.getLogger(__name__)

LOCK_KEY = 0x46445F524F555445  # "FD_ROUTE": the advisory lock every process competes for


class LeadershipLost(RuntimeError):
    """Another process leads now (its epoch is newer), or our lock connection died."""


async def fence(session: AsyncSession, epoch: int) -> None:
    """The last statement of a step's transaction: fail it unless ``epoch`` is still the newest."""
    newest = await session.scalar(
        select(RoutingLeadership.epoch).where(RoutingLeadership.id == 1).with_for_update(read=True)
    )
    if newest != epoch:
        raise LeadershipLost(f"epoch {newest} is not ours ({epoch})")


class Leadership(LeaderState):
    """Taking, checking and giving up the lock; taking over with a new epoch."""

    # -- the lock -------------------------------------------------------------------------

    async def _acquire(self) -> bool:
        url = make_url(self.db.url)
        if url.get_backend_name() == "postgresql":
            import asyncpg

            if self._pg is None:
                self._pg = await asyncpg.connect(
                    host=url.host or "127.0.0.1",
                    port=url.port or 5432,
                    user=url.username or "postgres",
                    password=url.password,
                    database=url.database or "postgres",
                    server_settings={"application_name": f"frontdesk-routing {self.name}"[:63]},
                )
            got = bool(await self._pg.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY))
            if got:
                await self._pg.add_listener(inbox.NOTIFY_CHANNEL, self._notified)
            return got
        path = url.database
        if not path or path == ":memory:":
            return True
        fd = os.open(f"{path}.routing-lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    def _notified(self, *_args: Any) -> None:
        self._wake.set()

    async def _check_lock(self) -> None:
        if self._pg is None:
            return
        try:
            await asyncio.wait_for(self._pg.fetchval("SELECT 1"), 5.0)
        except Exception as exc:
            raise LeadershipLost(f"lock connection failed: {exc!r}") from exc

    async def _step_down(self) -> None:
        was = self.is_leader
        self.is_leader = False
        self.ready.clear()
        self.router = None
        if self._pg is not None:
            conn, self._pg = self._pg, None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 5.0)
            if not conn.is_closed():
                conn.terminate()
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                os.close(self._lock_fd)
            self._lock_fd = None
        if was:
            log.info("routing: %s stepped down", self.name)

    async def _take_over(self) -> None:
        now = clock.now()
        async with self.db.transaction() as session:
            row = await session.get(RoutingLeadership, 1, with_for_update=True)
            if row is None:
                row = RoutingLeadership(id=1, epoch=1, holder=self.name, acquired_at=now, heartbeat_at=now)
                session.add(row)
            else:
                row.epoch += 1
                row.holder = self.name
                row.acquired_at = now
                row.heartbeat_at = now
            await session.flush()
            self.epoch = row.epoch
        async with self._lock:
            await self._rebuild()
            self.is_leader = True
        self.ready.set()
        log.info("routing: %s leads (epoch %d, %d items)", self.name, self.epoch, len(self.meta))
