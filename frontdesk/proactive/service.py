"""Customer events: the one way in (:func:`ingest`), listing, and keeping rejected input.

``ingest`` is the single entry point for every event, whatever sent it (API, import, channel,
demo); the journeys engine will hang off it. It is idempotent on ``idempotency_key`` and pushes
``customer.event_created`` on topic ``customer:{id}`` after the commit.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk import clock
from frontdesk.customers import service as customers
from frontdesk.customers.identity import normalise
from frontdesk.models import CustomerEvent, RejectedInput
from frontdesk.pagination import cut_page, keyset_condition
from frontdesk.proactive.schemas import EventIn, EventOut
from frontdesk.realtime import publish_after_commit

REJECTED_SOURCE = "api.events"
MAX_REJECTED_BODY = 1024 * 1024


async def _by_key(session: AsyncSession, key: str) -> CustomerEvent | None:
    return (await session.scalars(select(CustomerEvent).where(CustomerEvent.idempotency_key == key))).first()


async def ingest(session: AsyncSession, event_in: EventIn) -> tuple[CustomerEvent, bool]:
    """Store one customer event; ``(event, True)`` if new, ``(original, False)`` for a repeated key.

    ``customer_id`` may name a merged record: the event goes to the survivor. An ``identity``
    nobody owns creates the customer. Raises ``NotFound`` / ``Invalid`` for an unknown customer
    or a bad identity, before anything is written.
    """
    key = event_in.idempotency_key
    if key is not None and (existing := await _by_key(session, key)) is not None:
        return existing, False
    if event_in.customer_id is not None:
        customer = await customers.follow_merges(session, await customers.get_customer(session, event_in.customer_id))
    else:
        assert event_in.identity is not None  # the schema requires one of the two
        kind = event_in.identity.kind.value
        value = normalise(kind, event_in.identity.value, field="identity.value")
        # Events come from authenticated integrations (API tokens): they vouch for the identity.
        customer = await customers.resolve_by_identity(session, kind, value, create=True, proven=True)
    now = clock.now()
    event = CustomerEvent(
        customer_id=customer.id,
        type=event_in.type,
        properties=event_in.properties,
        source=event_in.source,
        occurred_at=event_in.occurred_at or now,
        received_at=now,
        idempotency_key=key,
    )
    if key is None:
        session.add(event)
        await session.flush()
    else:
        try:
            async with session.begin_nested():
                session.add(event)
                await session.flush()
        except IntegrityError:  # the same key was stored by a concurrent request
            existing = await _by_key(session, key)
            if existing is None:
                raise
            return existing, False
    publish_after_commit(
        session,
        f"customer:{customer.id}",
        "customer.event_created",
        EventOut.model_validate(event).model_dump(mode="json"),
    )
    return event, True


async def list_events(
    session: AsyncSession,
    customer_id: uuid.UUID,
    *,
    type: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[CustomerEvent], str | None]:
    """A customer's events, most recent ``occurred_at`` first, and the next page's cursor."""
    customer = await customers.follow_merges(session, await customers.get_customer(session, customer_id))
    stmt = select(CustomerEvent).where(CustomerEvent.customer_id == customer.id)
    if type:
        stmt = stmt.where(CustomerEvent.type == type)
    if cursor:
        stmt = stmt.where(keyset_condition(cursor, CustomerEvent.occurred_at, CustomerEvent.id))
    stmt = stmt.order_by(CustomerEvent.occurred_at.desc(), CustomerEvent.id.desc()).limit(limit + 1)
    rows, next_cursor = cut_page(list((await session.scalars(stmt)).all()), limit, lambda e: (e.occurred_at, e.id))
    return rows, next_cursor


def keep_rejected(
    session: AsyncSession, body: bytes, reason: str, content_type: str | None, source: str = REJECTED_SOURCE
) -> RejectedInput:
    """Store input we could not accept, raw, for inspection (at most 1 MB of it)."""
    if len(body) > MAX_REJECTED_BODY:
        reason = f"{reason} (body truncated from {len(body)} bytes)"
        body = body[:MAX_REJECTED_BODY]
    row = RejectedInput(
        source=source,
        reason=_storable(reason[:10_000]),
        content_type=_storable(content_type or "")[:200] or None,
        body=body,
        received_at=clock.now(),
    )
    session.add(row)
    return row


def _storable(text: str) -> str:
    """``text`` without what a text column refuses (NUL, lone surrogates)."""
    return text.replace("\x00", "\\x00").encode("utf-8", "replace").decode("utf-8")


def event_out(event: CustomerEvent, duplicate: bool = False) -> EventOut:
    return EventOut.model_validate(event).model_copy(update={"duplicate": duplicate})
