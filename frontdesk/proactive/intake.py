"""Customer events through a group commit: ``app.state.events`` in the server.

``POST /api/v1/events`` hands each event to :class:`EventWriter` instead of writing it in a unit
of work of its own: concurrent events are written together by :func:`service.ingest_batch` (the
rules of :func:`service.ingest`, in a few statements for the whole batch), in one transaction,
and each caller is answered once it is committed. An item's own problem (an unknown customer, an
invalid identity) is raised to that caller alone; the others commit. The pushes
(``customer.event_created``) follow the commit, in commit order. See ``frontdesk/groupcommit.py``.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from frontdesk.db import Database, run_after_commit, run_before_commit
from frontdesk.errors import ProblemError
from frontdesk.groupcommit import Batch, GroupCommit
from frontdesk.metrics import EVENTS_BATCH
from frontdesk.models import CustomerEvent
from frontdesk.proactive.schemas import EventIn
from frontdesk.proactive.service import BatchOutcome, ingest, ingest_batch
from frontdesk.settings import Settings

Stored = tuple[CustomerEvent, bool]  # the event, and whether this call created it


class EventWriter(GroupCommit[EventIn, Stored]):
    name = "events"

    def __init__(self, db: Database, settings: Settings) -> None:
        super().__init__(db, batch_max=settings.ingest_batch_max, concurrent_max=settings.ingest_concurrent_batches)

    def observe(self, batch_size: int) -> None:
        EVENTS_BATCH.observe(batch_size)

    def describe(self, item: EventIn) -> str:
        return f"event {item.type}"

    async def write(self, conn: AsyncConnection, items: list[EventIn]) -> Batch[Stored]:
        # A session on the writer's connection and transaction: ingest_batch is written for one.
        session = AsyncSession(bind=conn, autoflush=False, expire_on_commit=False, info={"hub": self.db.hub})
        try:
            if len(items) == 1:  # light load: the single event's path, a few statements fewer
                outcomes = [await _ingest_one(session, items[0])]
            else:
                outcomes = await ingest_batch(session, items)
            await run_before_commit(session)  # the in-transaction subscribers of its domain events
        finally:
            await session.close()  # its info (the after-commit effects) stays with the object

        async def publish() -> None:
            await run_after_commit(session)  # each effect on its own: one failing is logged

        return Batch(list(outcomes), publish=publish if session.info.get("after_commit") else None)


async def _ingest_one(session: AsyncSession, item: EventIn) -> BatchOutcome:
    try:
        return await ingest(session, item)
    except ProblemError as exc:  # the caller's own problem: nothing was written for it
        return exc
