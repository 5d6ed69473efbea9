"""Due work: timers, and the one claim/retry machinery the outbox dispatcher shares.

A timer is a row in ``timers`` (``models.work.Timer``): a ``kind`` (``domain.verb``), a due time,
a JSON payload and an optional ``key`` (scheduling the same key again moves the one timer: one
snooze timer per conversation). :func:`schedule` and :func:`cancel` take the caller's session,
so a timer is created or dropped in the same transaction as the change that needs it.

The loop claims due rows under a lease (:func:`claim`: ``SELECT … FOR UPDATE SKIP LOCKED`` on
PostgreSQL, a guarded ``UPDATE … RETURNING`` on SQLite), runs each handler in its own unit of
work, and deletes the row in that same transaction. A failure reschedules the row with
exponential backoff and jitter; after ``max_attempts`` it is marked ``failed`` with
``last_error`` (visible, never silently dropped). A worker that dies mid-run leaves its lease to
expire, and the row is claimed again. See docs/architecture/timers-and-outbox.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import random
import signal
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk import clock
from frontdesk.db import Database
from frontdesk.ids import new_id
from frontdesk.models import Timer
from frontdesk.models.enums import JobStatus

log = logging.getLogger(__name__)

BACKOFF_BASE_SECONDS = 2.0
BACKOFF_CAP_SECONDS = 3600.0
BATCH = 50
ERROR_MAX_CHARS = 2000

# Modules that register timer handlers; later packages append theirs.
# Modules that register timer handlers; imported before the loop runs its first timer.
HANDLER_MODULES: list[str] = ["frontdesk.conversations.service", "frontdesk.channels.webchat.confirm"]

# -- handlers -------------------------------------------------------------------------------

Handler = Callable[[AsyncSession, Timer], Awaitable[None]]
_handlers: dict[str, Handler] = {}


def handler(kind: str) -> Callable[[Handler], Handler]:
    """Register the function that runs timers of ``kind`` (``domain.verb``).

    It gets the unit of work's session and the timer; it flushes, never commits. Raising
    retries the timer with backoff; raising :class:`PermanentFailure` fails it at once. The
    loop's settings are ``session.info["settings"]`` (``None`` when the loop was given none).
    """
    if "." not in kind:
        raise ValueError(f"timer kinds are domain.verb, got {kind!r}")

    def deco(fn: Handler) -> Handler:
        _handlers[kind] = fn
        return fn

    return deco


def handlers() -> dict[str, Handler]:
    for module in HANDLER_MODULES:
        importlib.import_module(module)
    return dict(_handlers)


class PermanentFailure(Exception):
    """Raised by a handler when retrying cannot help."""


class LeaseLost(Exception):
    """Another worker took the row (our lease expired); our work is rolled back."""


# -- scheduling -----------------------------------------------------------------------------


async def schedule(
    session: AsyncSession,
    kind: str,
    due_at: datetime,
    payload: dict[str, Any] | None = None,
    key: str | None = None,
    *,
    max_attempts: int = 8,
) -> Timer:
    """Add a timer (or, with ``key``, move the existing one) in the caller's unit of work."""
    if due_at.tzinfo is None:
        raise ValueError("due_at must be timezone-aware")
    if key is None:
        timer = Timer(kind=kind, due_at=due_at, payload=payload or {}, max_attempts=max_attempts)
        session.add(timer)
        await session.flush()
        return timer
    bind = session.get_bind()
    insert_fn: Any = pg_insert if bind.dialect.name == "postgresql" else sqlite_insert
    fresh = {
        "kind": kind,
        "due_at": due_at,
        "payload": payload or {},
        "status": JobStatus.pending.value,
        "attempts": 0,
        "max_attempts": max_attempts,
        "locked_by": None,
        "locked_until": None,
        "last_error": None,
    }
    stmt = insert_fn(Timer).values(id=new_id(), key=key, **fresh)
    stmt = stmt.on_conflict_do_update(index_elements=[Timer.key], set_=fresh)
    await session.execute(stmt)
    found = await session.execute(select(Timer).where(Timer.key == key).execution_options(populate_existing=True))
    return found.scalar_one()


async def cancel(session: AsyncSession, key: str) -> bool:
    """Drop the timer with ``key``; ``True`` if there was one."""
    result: Any = await session.execute(delete(Timer).where(Timer.key == key))
    return bool(result.rowcount)


# -- the shared claim -----------------------------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    id: uuid.UUID
    attempts: int  # including this one
    max_attempts: int


async def claim(db: Database, model: Any, *, worker: str, limit: int, lease_seconds: float) -> list[Claimed]:
    """Take up to ``limit`` due rows of ``model`` (a ``DueWorkMixin`` table) under a lease.

    Due = ``pending`` with ``due_at`` passed, or ``running`` whose lease expired (its worker
    died). Claiming counts the attempt. PostgreSQL: ``FOR UPDATE SKIP LOCKED`` so concurrent
    workers take disjoint rows; SQLite: one guarded ``UPDATE`` (writes are serialised).
    """
    table = model.__table__
    now = clock.now()
    claimable = or_(
        and_(table.c.status == JobStatus.pending.value, table.c.due_at <= now),
        and_(table.c.status == JobStatus.running.value, table.c.locked_until < now),
    )
    pick = select(table.c.id).where(claimable).order_by(table.c.due_at).limit(limit)
    take = {
        "status": JobStatus.running.value,
        "locked_by": worker,
        "locked_until": now + timedelta(seconds=lease_seconds),
        "attempts": table.c.attempts + 1,
    }
    async with db.transaction() as session:
        if db.dialect == "postgresql":
            ids = list((await session.execute(pick.with_for_update(skip_locked=True))).scalars())
            if not ids:
                return []
            stmt = update(table).where(table.c.id.in_(ids))
        else:
            stmt = update(table).where(table.c.id.in_(pick.scalar_subquery()), claimable)
        rows = await session.execute(stmt.values(**take).returning(table.c.id, table.c.attempts, table.c.max_attempts))
        claimed = [Claimed(r.id, r.attempts, r.max_attempts) for r in rows]
    return claimed


def backoff(attempt: int, base: float = BACKOFF_BASE_SECONDS, cap: float = BACKOFF_CAP_SECONDS) -> timedelta:
    """Delay before retry number ``attempt`` + 1: exponential, capped, with jitter in [½, 1]."""
    delay = min(cap, base * (2 ** max(0, attempt - 1)))
    return timedelta(seconds=delay * random.uniform(0.5, 1.0))


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class WorkLoop:
    """Claims due rows of one table and processes them; subclasses define :meth:`process`."""

    model: Any = None
    name = "work"

    def __init__(
        self,
        db: Database,
        settings: Any = None,
        *,
        worker: str | None = None,
        batch: int = BATCH,
        concurrency: int = 8,
    ) -> None:
        self.db = db
        self.settings = settings
        self.worker = worker or worker_name()
        self.batch = batch
        self.concurrency = concurrency
        self.poll = float(getattr(settings, "timers_poll_seconds", 0.5))
        self.lease = float(getattr(settings, "timers_lease_seconds", 60.0))
        self.backoff_base = float(getattr(settings, "timers_backoff_seconds", BACKOFF_BASE_SECONDS))
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    # -- one pass --------------------------------------------------------------------------

    async def run_due(self) -> int:
        """Claim and process one batch of due rows; the number claimed."""
        claimed = await claim(self.db, self.model, worker=self.worker, limit=self.batch, lease_seconds=self.lease)
        if not claimed:
            return 0
        sem = asyncio.Semaphore(self.concurrency)

        async def one(c: Claimed) -> None:
            async with sem:
                try:
                    if c.attempts > c.max_attempts:
                        # Claimed again after a lease expired on the last allowed attempt.
                        await self.record_failure(c, f"gave up after {c.max_attempts} attempts", permanent=True)
                    else:
                        await self.process(c)
                except Exception:
                    log.exception("%s: processing %s crashed", self.name, c.id)

        await asyncio.gather(*(one(c) for c in claimed))
        return len(claimed)

    async def process(self, claimed: Claimed) -> None:
        raise NotImplementedError

    async def record_failure(self, claimed: Claimed, error: str, *, permanent: bool = False) -> bool:
        """Reschedule with backoff, or mark failed when out of attempts; ``True`` if failed."""
        final = permanent or claimed.attempts >= claimed.max_attempts
        values: dict[str, Any] = {"last_error": error[:ERROR_MAX_CHARS], "locked_by": None, "locked_until": None}
        if final:
            values["status"] = JobStatus.failed.value
        else:
            values["status"] = JobStatus.pending.value
            values["due_at"] = clock.now() + backoff(claimed.attempts, self.backoff_base)
        table = self.model.__table__
        async with self.db.transaction() as session:
            result: Any = await session.execute(
                update(table).where(table.c.id == claimed.id, table.c.locked_by == self.worker).values(**values)
            )
            if not result.rowcount:
                log.warning("%s: lease on %s lost before recording its failure", self.name, claimed.id)
                return False
            if final:
                log.error("%s: %s failed for good: %s", self.name, claimed.id, error)
                await self.on_failed(session, claimed, error)
            else:
                await self.on_retry(session, claimed, error)
        return final

    async def on_failed(self, session: AsyncSession, claimed: Claimed, error: str) -> None:
        """Hook: the row just failed for good (same transaction)."""

    async def on_retry(self, session: AsyncSession, claimed: Claimed, error: str) -> None:
        """Hook: the row was rescheduled (same transaction)."""

    async def complete(self, session: AsyncSession, claimed: Claimed) -> None:
        """Delete the row inside the unit of work that did its job; raise if the lease was lost."""
        table = self.model.__table__
        result: Any = await session.execute(
            delete(table).where(table.c.id == claimed.id, table.c.locked_by == self.worker)
        )
        if not result.rowcount:
            raise LeaseLost(str(claimed.id))

    # -- the loop --------------------------------------------------------------------------

    def wake(self) -> None:
        """Look for work now instead of at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                n = await self.run_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s loop: claiming failed; retrying", self.name)
                n = 0
            if self._stopping:
                break
            if n >= self.batch:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll)

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self.run(), name=f"{self.name}-loop")

    async def stop(self, timeout: float = 15.0) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None


class TimerLoop(WorkLoop):
    model = Timer
    name = "timers"

    async def process(self, claimed: Claimed) -> None:
        try:
            async with self.db.transaction() as session:
                timer = await session.get(Timer, claimed.id)
                if timer is None or timer.locked_by != self.worker:
                    raise LeaseLost(str(claimed.id))
                fn = handlers().get(timer.kind)
                if fn is None:
                    raise PermanentFailure(f"no handler registered for timer kind {timer.kind!r}")
                session.info["settings"] = self.settings
                await fn(session, timer)
                await self.complete(session, claimed)
        except LeaseLost:
            log.warning("timers: lease on %s lost; another worker runs it", claimed.id)
        except PermanentFailure as exc:
            await self.record_failure(claimed, str(exc), permanent=True)
        except Exception as exc:
            await self.record_failure(claimed, f"{type(exc).__name__}: {exc}")


# -- built-in handlers ----------------------------------------------------------------------


def snooze_key(conversation_id: uuid.UUID | str) -> str:
    """The timer key of a conversation's snooze (one per conversation)."""
    return f"conversation.snooze:{conversation_id}"


# -- running --------------------------------------------------------------------------------


class Loops:
    """The background loops of one process: timers, the outbox dispatcher, webhook deliveries."""

    def __init__(self, timers: TimerLoop, dispatcher: WorkLoop, webhooks: WorkLoop | None = None) -> None:
        self.timers = timers
        self.dispatcher = dispatcher
        self.webhooks = webhooks

    async def stop(self) -> None:
        others = [self.webhooks.stop()] if self.webhooks is not None else []
        await asyncio.gather(self.timers.stop(), self.dispatcher.stop(), *others)


async def start_loops(db: Database, settings: Any) -> Loops:
    """Start the timer loop and the outbox dispatcher in this process (``serve`` and ``worker``)."""
    from frontdesk.conversations.dispatcher import Dispatcher
    from frontdesk.webhooks.service import WebhookLoop

    worker = worker_name()
    dispatcher = Dispatcher(db, settings, hub=db.hub, worker=worker)
    timers = TimerLoop(db, settings, worker=worker)
    webhooks = WebhookLoop(db, settings, worker=worker)
    db.attach_hub(db.hub, outbox_wakeup=dispatcher.wake)
    timers.start()
    dispatcher.start()
    webhooks.start()
    log.info("loops started as %s", worker)
    return Loops(timers, dispatcher, webhooks)


async def run_worker(settings: Any) -> None:
    """``frontdesk worker``: run the timers and the outbox dispatcher until SIGINT/SIGTERM."""
    from frontdesk.app import prepare_database
    from frontdesk.realtime import make_hub

    await prepare_database(settings)
    db = Database(settings.effective_database_url)
    hub = make_hub(settings.redis_url)
    await hub.start()
    db.attach_hub(hub)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    loops = await start_loops(db, settings)
    try:
        await stop.wait()
        log.info("worker stopping")
    finally:
        await loops.stop()
        await hub.close()
        await db.dispose()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
