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
expire, and the row is claimed again.

While rows run, a heartbeat extends their lease every third of it (:func:`extend`), so a long
handler is not taken over by another worker. The attempt number a claim returns is the lease's
fencing token: completing, failing and extending a row all require ``locked_by = me AND attempts
= my attempt``, so a runner whose lease was lost (it stalled past it and the row was claimed
again — even under the same worker name) cannot commit its result. See
docs/architecture/timers-and-outbox.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk import clock
from frontdesk.db import Database
from frontdesk.ids import new_id
from frontdesk.models import Timer
from frontdesk.models.enums import JobStatus
from frontdesk.storage import AttachmentStore, UnsafeKey, make_store

log = logging.getLogger(__name__)

BACKOFF_BASE_SECONDS = 2.0
BACKOFF_CAP_SECONDS = 3600.0
BATCH = 50
ERROR_MAX_CHARS = 2000

# -- handlers -------------------------------------------------------------------------------

Handler = Callable[[AsyncSession, Timer], Awaitable[None]]


class Registry:
    """Which function runs timers of which ``kind`` (``domain.verb``): filled by the wiring
    (``frontdesk/wiring.py: timer_handlers``) and handed to the :class:`TimerLoop`.

    A handler gets the unit of work's session and the timer; it flushes, never commits. Raising
    retries the timer with backoff; raising :class:`PermanentFailure` fails it at once. The
    loop's settings are ``session.info["settings"]`` (``None`` when the loop was given none).
    """

    def __init__(self, handlers: Mapping[str, Handler] | None = None) -> None:
        self._handlers: dict[str, Handler] = {}
        for kind, fn in (handlers or {}).items():
            self.add(kind, fn)

    def add(self, kind: str, fn: Handler) -> None:
        if "." not in kind:
            raise ValueError(f"timer kinds are domain.verb, got {kind!r}")
        if self._handlers.get(kind, fn) is not fn:
            raise ValueError(f"timer kind {kind!r} already has a handler")
        self._handlers[kind] = fn

    def get(self, kind: str) -> Handler | None:
        return self._handlers.get(kind)

    def kinds(self) -> list[str]:
        return sorted(self._handlers)


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
    attempts: int  # including this one; the fencing token of this claim's lease
    max_attempts: int


def _held(table: Any, claimed: Claimed, worker: str) -> Any:
    """This claim's lease still holds the row: same worker AND same attempt (the fence)."""
    return and_(table.c.id == claimed.id, table.c.locked_by == worker, table.c.attempts == claimed.attempts)


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


async def extend(
    db: Database, model: Any, claimed: Iterable[Claimed], *, worker: str, lease_seconds: float
) -> set[uuid.UUID]:
    """Renew the lease (now + ``lease_seconds``) of the rows these claims still hold; their ids."""
    rows = list(claimed)
    if not rows:
        return set()
    table = model.__table__
    async with db.transaction() as session:
        result = await session.execute(
            update(table)
            .where(
                tuple_(table.c.id, table.c.attempts).in_([(c.id, c.attempts) for c in rows]),
                table.c.locked_by == worker,
                table.c.status == JobStatus.running.value,
            )
            .values(locked_until=clock.now() + timedelta(seconds=lease_seconds))
            .returning(table.c.id)
        )
        return {r[0] for r in result}


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
        self.heartbeat = max(0.05, self.lease / 3)
        self.settings = settings
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
        running = {c.id: c for c in claimed}  # leased and not finished: the heartbeat renews these

        async def one(c: Claimed) -> None:
            try:
                if c.attempts > c.max_attempts:
                    # Claimed again after a lease expired on the last allowed attempt.
                    await self.record_failure(c, f"gave up after {c.max_attempts} attempts", permanent=True)
                else:
                    await self.process(c)
            except Exception:
                log.exception("%s: processing %s crashed", self.name, c.id)
            finally:
                running.pop(c.id, None)

        async def in_turn(group: list[Claimed]) -> None:
            async with sem:
                for c in group:
                    await one(c)

        beat = asyncio.create_task(self._heartbeat(running), name=f"{self.name}-heartbeat")
        try:
            await asyncio.gather(*(in_turn(group) for group in await self.in_order(claimed)))
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
        return len(claimed)

    async def in_order(self, claimed: list[Claimed]) -> list[list[Claimed]]:
        """Groups of claimed rows: groups run side by side, the rows of one group one after the
        other, in the group's order. Here each row alone; the outbox keeps a conversation's
        messages in the order they were written."""
        return [[c] for c in claimed]

    async def _heartbeat(self, running: dict[uuid.UUID, Claimed]) -> None:
        """Renew the lease of the rows still running (waiting ones too) every third of a lease.

        A row no longer held was claimed again after our lease ran out: it is not renewed, and the
        fence (``_held``) keeps its old runner from completing it. A database error only skips a
        beat (SQLite: a handler's open write transaction holds the lock a while).
        """
        while running:
            await asyncio.sleep(self.heartbeat)
            if not running:
                return
            try:
                held = await extend(
                    self.db, self.model, list(running.values()), worker=self.worker, lease_seconds=self.lease
                )
            except Exception as exc:
                log.debug("%s: heartbeat skipped (%s: %s)", self.name, type(exc).__name__, exc)
                continue
            for row_id in [i for i in running if i not in held]:
                log.debug("%s: %s is no longer ours to renew (done, or taken over)", self.name, row_id)
                running.pop(row_id, None)

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
            stmt = update(table).where(_held(table, claimed, self.worker)).values(**values)
            result: Any = await session.execute(stmt)
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
        result: Any = await session.execute(delete(table).where(_held(table, claimed, self.worker)))
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
        await self._stop_task(timeout)
        await self.close()

    async def close(self) -> None:
        """Release what the loop holds besides its task (hook)."""

    async def _stop_task(self, timeout: float) -> None:
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
    """Runs due timers with the handlers of its :class:`Registry` (a kind it does not know fails)."""

    model = Timer
    name = "timers"

    _store: AttachmentStore | None = None

    def __init__(self, db: Database, settings: Any = None, *, handlers: Registry | None = None, **kwargs: Any) -> None:
        super().__init__(db, settings, **kwargs)
        self.handlers = handlers if handlers is not None else Registry()

    def store(self) -> AttachmentStore:
        """The attachment store, for handlers (:func:`store_of`): made from the settings once."""
        if self._store is None:
            self._store = make_store(self.settings)
        return self._store

    async def close(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            await store.close()

    async def process(self, claimed: Claimed) -> None:
        try:
            async with self.db.transaction() as session:
                session.info["timer_loop"] = self
                timer = await session.get(Timer, claimed.id)
                if timer is None or timer.locked_by != self.worker or timer.attempts != claimed.attempts:
                    raise LeaseLost(str(claimed.id))
                fn = self.handlers.get(timer.kind)
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


DELETE_OBJECTS = "storage.delete_objects"
KEYS_PER_TIMER = 500


def store_of(session: AsyncSession) -> AttachmentStore:
    """The attachment store, inside a timer handler."""
    loop: TimerLoop | None = session.info.get("timer_loop")
    if loop is None:
        raise PermanentFailure("not running inside a timer loop: no attachment store")
    return loop.store()


async def delete_objects_later(session: AsyncSession, keys: Iterable[str]) -> None:
    """Have these store objects deleted by due work written in the caller's transaction: once it
    commits, a timer loop deletes them — even if this process dies right after the commit."""
    wanted = sorted({k for k in keys if k})
    for i in range(0, len(wanted), KEYS_PER_TIMER):
        await schedule(session, DELETE_OBJECTS, clock.now(), {"keys": wanted[i : i + KEYS_PER_TIMER]}, max_attempts=16)


async def delete_objects(session: AsyncSession, timer: Timer) -> None:
    """Timer handler for :data:`DELETE_OBJECTS` (registered by the wiring like every other)."""
    store = store_of(session)
    for key in timer.payload.get("keys") or []:
        try:
            await store.delete(str(key))  # a missing object is not an error: reruns are harmless
        except UnsafeKey:
            log.error("timers: %s names an unsafe store key %r; skipped", timer.id, key)


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
