"""Group commit: many callers' writes in one transaction, each caller answered once it is durable.

A hot intake (inbound messages, customer events) gets one :class:`GroupCommit` subclass. Callers
``await submit(item)``; one writer task drains what is queued into batches of at most
``batch_max`` and hands each to :meth:`GroupCommit.write` inside ONE transaction on the writer's
own small connection pool (requests holding a pooled connection while they wait can never starve
it). After the commit it runs the batch's ``after`` callbacks (wake-ups, counters), answers the
callers, and queues the batch's ``publish`` step (the realtime push), which a second task runs in
commit order, off the writer's path.

* **Overlap.** A batch starts at once when none is being written. On PostgreSQL another may be
  written while the first commits (``concurrent_max``), but only while at least
  :data:`OVERLAP_MIN_WAITING` items wait: under full load the commit's round trips, not the CPU,
  bound the rate; under lighter load the next batch waits and grows, which costs less per item
  than two small ones. SQLite has one writer at a time, so there it is always one batch.
* **Failures.** A result may be an exception: that caller alone gets it (an unknown customer, an
  invalid identity), the batch commits. If the write itself fails, its items are retried one by
  one, so a bad item fails only its own caller; a single item's failure goes through
  :meth:`GroupCommit.explain` (on a fresh connection) for a clearer error. A connection that had
  dropped (the pool does not ping) is replaced and the batch tried once more.
* **Stop.** :meth:`GroupCommit.stop` writes what is queued and publishes what was written first.

See ``docs/architecture/ingest.md`` (the inbound messages' writer, the first of these).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from frontdesk.db import Database, make_engine
from frontdesk.errors import ServiceUnavailable

log = logging.getLogger(__name__)

OVERLAP_MIN_WAITING = 16  # items waiting before a second batch overlaps the one being written

T = TypeVar("T")  # what callers submit
R = TypeVar("R")  # what each of them gets back


@dataclass(slots=True)
class Batch(Generic[R]):
    """What :meth:`GroupCommit.write` returns: one result (or exception) per item, in order."""

    results: list[R | Exception]
    after: list[Callable[[], None]] = field(default_factory=list)  # right after the commit
    publish: Callable[[], Awaitable[None]] | None = None  # later, in commit order


@dataclass(slots=True)
class _Pending(Generic[T, R]):
    item: T
    future: asyncio.Future[R]


class GroupCommit(Generic[T, R]):
    """The writer loop; a subclass says how a batch is written (:meth:`write`)."""

    name = "group-commit"  # of the writer's tasks and in its log lines

    def __init__(self, db: Database, *, batch_max: int, concurrent_max: int) -> None:
        self.db = db
        self.batch_max = batch_max
        # SQLite has one writer at a time (the database's write gate): overlapping commits only queue.
        self.concurrent_max = 1 if db.url.startswith("sqlite") else max(1, concurrent_max)
        self._engine: AsyncEngine | None = None
        self._pending: list[_Pending[T, R]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._publisher: asyncio.Task[None] | None = None
        self._published: asyncio.Queue[Callable[[], Awaitable[None]] | None] = asyncio.Queue()
        self._stopping = False
        # Figures for tests and benchmarks.
        self.batches = 0
        self.largest_batch = 0
        self.fallbacks = 0  # batches that failed and were retried item by item
        self.most_in_flight = 0  # batches written at once, at most

    # -- what a subclass provides ------------------------------------------------------------

    def prepare(self, item: T) -> T:
        """Validate and normalise ``item`` before it is queued (raise to refuse it)."""
        return item

    async def write(self, conn: AsyncConnection, items: list[T]) -> Batch[R]:
        """Write ``items`` on ``conn``, inside its transaction (the writer commits)."""
        raise NotImplementedError

    async def explain(self, conn: AsyncConnection, item: T, exc: Exception) -> Exception:
        """A clearer error for ``item``, whose write failed with ``exc`` on its own."""
        return exc

    def observe(self, batch_size: int) -> None:
        """Called for every batch written (a metric)."""

    def describe(self, item: T) -> str:
        """``item`` in a log line (no personal data)."""
        return "an item"

    # -- the loop ------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is not None:
            return
        # Its own small pool, without a ping per checkout (a round trip per batch): a dropped
        # connection fails the batch, which is then retried once on a fresh connection.
        kw: dict[str, Any] = {} if self.db.url.startswith("sqlite") else {"pool_pre_ping": False}
        self._engine = make_engine(self.db.url, pool_size=self.concurrent_max + 1, max_overflow=0, **kw)
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=self.name)
        self._publisher = asyncio.create_task(self._publish_loop(), name=f"{self.name}-publisher")

    async def stop(self) -> None:
        """Write what is queued, publish what was written, then stop."""
        if self._task is None:
            return
        self._stopping = True
        self._wakeup.set()
        await self._task
        self._task = None
        self._published.put_nowait(None)
        if self._publisher is not None:
            await self._publisher
            self._publisher = None
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    async def submit(self, item: T) -> R:
        """Write ``item`` and return its result once it is committed (raises what :meth:`prepare`
        or the write raised for it)."""
        item = self.prepare(item)
        if self._task is None or self._stopping:
            raise ServiceUnavailable("The server is shutting down; retry in a moment.")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(item, future))
        self._wakeup.set()
        return await future

    async def _run(self) -> None:
        in_flight: set[asyncio.Task[None]] = set()

        def finished(task: asyncio.Task[None]) -> None:
            in_flight.discard(task)
            self._wakeup.set()

        while True:
            if not self._pending or not self._may_start(len(in_flight)):
                if self._stopping and not self._pending and not in_flight:
                    return
                await self._wakeup.wait()
                self._wakeup.clear()
                continue
            batch = self._pending[: self.batch_max]
            del self._pending[: self.batch_max]
            batch = [p for p in batch if not p.future.done()]  # callers that gave up
            if not batch:
                continue
            task = asyncio.create_task(self._write_guarded(batch), name=f"{self.name}-batch")
            in_flight.add(task)
            task.add_done_callback(finished)
            self.most_in_flight = max(self.most_in_flight, len(in_flight))

    def _may_start(self, in_flight: int) -> bool:
        if in_flight == 0:
            return True
        return in_flight < self.concurrent_max and len(self._pending) >= OVERLAP_MIN_WAITING

    async def _write_guarded(self, batch: list[_Pending[T, R]]) -> None:
        try:
            await self._write(batch)
        except Exception as exc:  # never let the writer die; fail the batch instead
            log.exception("%s: writer failed", self.name)
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(exc)

    async def _write(self, batch: list[_Pending[T, R]]) -> None:
        self.batches += 1
        self.largest_batch = max(self.largest_batch, len(batch))
        self.observe(len(batch))
        try:
            written = await self._attempt([p.item for p in batch])
        except Exception as exc:
            if len(batch) == 1:
                await self._fail(batch[0], exc)
                return
            self.fallbacks += 1
            log.warning("%s: batch of %d failed (%s); retrying its items one by one", self.name, len(batch), brief(exc))
            for p in batch:
                await self._write_one(p)
            return
        self._done(batch, written)

    async def _write_one(self, p: _Pending[T, R]) -> None:
        try:
            written = await self._attempt([p.item])
        except Exception as exc:
            await self._fail(p, exc)
            return
        self._done([p], written)

    async def _attempt(self, items: list[T]) -> Batch[R]:
        """One transaction; again once if the connection had dropped (the pool does not ping)."""
        assert self._engine is not None
        for attempt in (1, 2):
            try:
                async with self._engine.begin() as conn:
                    written = await self.write(conn, items)
                for after in written.after:
                    after()
                return written
            except DBAPIError as exc:
                if attempt == 2 or not exc.connection_invalidated:
                    raise
                log.warning("%s: database connection lost; retrying the batch on a new one", self.name)
        raise AssertionError("unreachable")

    async def _fail(self, p: _Pending[T, R], exc: Exception) -> None:
        assert self._engine is not None
        try:
            async with self._engine.connect() as conn:
                exc = await self.explain(conn, p.item, exc)
        except Exception:  # explaining must not hide the original error
            log.exception("%s: could not explain a failure", self.name)
        if getattr(exc, "status", 500) >= 500:  # not the caller's input: ours to look at
            log.error("%s: %s failed: %s", self.name, self.describe(p.item), brief(exc))
        if not p.future.done():
            p.future.set_exception(exc)

    def _done(self, batch: list[_Pending[T, R]], written: Batch[R]) -> None:
        for p, result in zip(batch, written.results, strict=True):
            if p.future.done():
                continue
            if isinstance(result, Exception):
                p.future.set_exception(result)
            else:
                p.future.set_result(result)
        if written.publish is not None:
            self._published.put_nowait(written.publish)

    async def _publish_loop(self) -> None:
        """Run the batches' publish steps in commit order, off the writer's path."""
        while True:
            publish = await self._published.get()
            if publish is None:
                return
            try:
                await publish()
            except Exception:  # the commit stands; a lost push is logged
                log.exception("%s: publishing a batch failed", self.name)


def brief(exc: BaseException) -> str:
    """The first line of an error, without the SQL parameters (personal data, and long)."""
    inner = getattr(exc, "orig", None) or exc
    first = (str(inner).strip().splitlines() or [""])[0]
    return f"{type(inner).__name__}: {first[:300]}"
