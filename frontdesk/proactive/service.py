"""Customer events: the one way in (:func:`ingest`), listing, and keeping rejected input.

``ingest`` is the single entry point for every event, whatever sent it (API, import, channel,
demo); the journeys engine will hang off it. It is idempotent on ``idempotency_key`` and pushes
``customer.event_created`` on topic ``customer:{id}`` after the commit.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk import clock
from frontdesk.customers import service as customers
from frontdesk.customers.identity import normalise
from frontdesk.models import CustomerEvent
from frontdesk.pagination import cut_page, keyset_condition
from frontdesk.proactive.schemas import EventIn, EventOut
from frontdesk.realtime import publish_after_commit
from frontdesk.rejected import service as rejected

REJECTED_SOURCE = "api.events"


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
        customer = await customers.resolve_by_identity(session, kind, value, create=True)
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


async def keep_rejected(
    session: AsyncSession,
    body: bytes,
    reason: str,
    content_type: str | None,
    *,
    sender: str | None = None,
    kind: str = "event",
    settings: Any = None,
) -> None:
    """Keep an event input we refused, through the one rejected-input keeper (``frontdesk.rejected``).

    ``kind`` is ``event`` (one event's JSON: a single post or a batch item; replayable) or
    ``batch`` (a whole batch refused for its shape). ``sender`` (``user:<id>``) is the caller the
    per-sender limit counts against. An event's ``customer_id`` or ``identity`` links the row to
    that customer, so erasing them deletes it.
    """
    customer_id, identity = _named(body) if kind == "event" else (None, None)
    await rejected.keep(
        session,
        source=REJECTED_SOURCE,
        reason=reason,
        body=body,
        content_type=content_type,
        origin=sender,
        meta={"kind": kind},
        customer_id=customer_id,
        identity=identity,
        settings=settings,
    )


def _named(body: bytes) -> tuple[uuid.UUID | None, tuple[str, str] | None]:
    """The customer id or identity a (possibly invalid) event names, when it names one."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(data, dict):
        return None, None
    customer_id = None
    with contextlib.suppress(TypeError, ValueError, AttributeError):
        customer_id = uuid.UUID(str(data.get("customer_id")))
    ident = data.get("identity")
    identity = None
    if isinstance(ident, dict) and isinstance(ident.get("kind"), str) and isinstance(ident.get("value"), str):
        identity = (ident["kind"], ident["value"])
    return customer_id, identity


def event_out(event: CustomerEvent, duplicate: bool = False) -> EventOut:
    return EventOut.model_validate(event).model_copy(update={"duplicate": duplicate})
