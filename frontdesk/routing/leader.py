"""The routing leader: the one process that decides, feeding the pure core and persisting its decisions.

Every ``frontdesk serve`` process (and ``frontdesk worker``) runs a :class:`RoutingLeader`; exactly
one of them leads, and only it decides who gets a conversation. Other processes write rows and
forward them to it (``inbox.py``); the offers' answers are conditional updates (``offers.py``).

The leader lives in rooms, one concern per module, read in this order:

==================== ===========================================================================
``leadership.py``    the lock (advisory lock on PostgreSQL, ``flock`` on SQLite), the epoch bumped
                     on taking over, and the fence every step's transaction ends with
``rebuild.py``       reading the whole routing state back from the database into a fresh core
``step.py``          one step: the inbox, timers, expiring offers, one decision cycle of the core
``reconcile.py``     bringing the core in line with a conversation's or an agent's rows
``queueing.py``      a conversation enters a queue, moves to another, or leaves routing
``leader_timers.py`` after-call work, bullseye rings, "about to breach", overflow, disconnects
``persistence.py``   the step's outcome, written in ONE transaction that ends with the fence;
                     pushes after the commit
``memory.py``        what the leader keeps in memory besides the core
==================== ===========================================================================

Each room is a mixin over the one before it (``LeaderState`` ← ``Persistence`` ←
``LeaderTimers`` ← ``Rebuild`` ← ``Queueing`` ← ``Reconcile`` ← ``Step``), so a room calls only
what the rooms below it offer (three calls up are declared in ``memory.LeaderState``);
:class:`RoutingLeader` adds ``Leadership`` and the life cycle: compete for the lock, take over,
step every ``tick`` seconds or on a wake-up, step down on any failure and compete again.

Any error in a step rolls it back and rebuilds the core from the database, so memory never drifts
from the truth. See docs/architecture/routing.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from frontdesk.db import Database
from frontdesk.routing import inbox
from frontdesk.routing.leadership import Leadership, LeadershipLost
from frontdesk.routing.step import Step
from frontdesk.settings import Settings
from frontdesk.timers import worker_name

log = logging.getLogger(__name__)

__all__ = ["LeadershipLost", "RoutingLeader", "standalone"]


class RoutingLeader(Leadership, Step):
    """Competes for leadership; while it leads, runs :meth:`step` every ``tick`` seconds (or on a wake-up)."""

    def __init__(self, db: Database, settings: Settings, *, name: str | None = None) -> None:
        self.db = db
        self.name = name or worker_name()
        self.tick = settings.routing_tick_seconds
        # Under load every ingest batch wakes the leader; steps closer than this are folded into
        # one (a step's fixed cost — a dozen statements — is then paid once per gap, not per batch).
        self.step_gap = settings.routing_step_gap_seconds
        self.lock_retry = settings.routing_lock_retry_seconds
        self.grace = settings.routing_disconnect_grace_seconds
        self.max_missed = settings.routing_max_missed_offers
        self.is_leader = False
        self.epoch = 0
        self.ready = asyncio.Event()
        self.router = None
        self._failures = 0
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._pg = None  # asyncpg connection holding the advisory lock
        self._lock_fd: int | None = None
        self._reset()

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self._stopping = False
        inbox.register_wakeup(self.wake, lambda: self.is_leader)
        self._task = asyncio.create_task(self._run(), name="routing-leader")

    async def stop(self, timeout: float = 10.0) -> None:
        self._stopping = True
        inbox.unregister_wakeup(self.wake)
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None
        await self._step_down()

    def wake(self) -> None:
        self._wake.set()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    async def _run(self) -> None:
        while not self._stopping:
            try:
                if not await self._acquire():
                    await self._sleep(self.lock_retry)
                    continue
                await self._take_over()
                checked = time.monotonic()
                while not self._stopping:
                    began = time.monotonic()
                    await self.step()
                    if time.monotonic() - checked > 2.0:
                        checked = time.monotonic()
                        await self._check_lock()
                    await self._sleep(self.tick)
                    rest = self.step_gap - (time.monotonic() - began)
                    if rest > 0 and not self._stopping:
                        await asyncio.sleep(rest)  # wake-ups meanwhile are handled by the next step
            except asyncio.CancelledError:
                raise
            except LeadershipLost as exc:
                log.warning("routing: leadership lost (%s)", exc)
            except Exception:
                log.exception("routing leader failed; stepping down")
            await self._step_down()
            if not self._stopping:
                await self._sleep(self.lock_retry)


@contextlib.asynccontextmanager
async def standalone(settings: Settings) -> AsyncIterator[RoutingLeader]:
    """A leader with a database pool and realtime hub of its own, for ``frontdesk worker``."""
    from frontdesk.realtime import make_hub

    db = Database(settings.effective_database_url)
    hub = make_hub(settings.redis_url, prefix=settings.redis_prefix)
    await hub.start()
    db.attach_hub(hub)
    leader = RoutingLeader(db, settings)
    await leader.start()
    try:
        yield leader
    finally:
        await leader.stop()
        await hub.close()
        await db.dispose()
