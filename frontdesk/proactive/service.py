"""Customer events: the one way in (:func:`ingest`), and listing (refused input is kept by ``frontdesk.rejected``).

``ingest`` is the single entry point for every event, whatever sent it (API, import, channel,
demo); the journeys engine will hang off it. It is idempotent on ``idempotency_key`` and pushes
``customer.event_created`` on topic ``customer:{id}`` after the commit.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import Table, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk import clock
from frontdesk.bus import emit
from frontdesk.customers import service as customers
from frontdesk.customers.identity import normalise
from frontdesk.errors import NotFound, ProblemError
from frontdesk.events import EventIngested
from frontdesk.ids import new_id
from frontdesk.models import Customer, CustomerEvent, Identity
from frontdesk.pagination import cut_page, keyset_condition
from frontdesk.proactive.schemas import EventIn, EventOut

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
    emit(session, EventIngested(customer_id=customer.id, event=EventOut.model_validate(event)))
    return event, True


# -- batches: the rules of ingest() for many events, in a few statements ------------------------

BatchOutcome = tuple[CustomerEvent, bool] | ProblemError
_IN_CHUNK = 250  # values per IN (...) list and rows per INSERT
_YIELD_EVERY = 25  # items between two turns of the event loop
_INLINE_NORMALISE = 64  # items normalised on the event loop; more go to a thread
_events: Table = CustomerEvent.__table__  # type: ignore[assignment]


def _chunks(values: Iterable[Any]) -> Iterator[list[Any]]:
    items = list(values)
    for start in range(0, len(items), _IN_CHUNK):
        yield items[start : start + _IN_CHUNK]


async def _stored_by_key(session: AsyncSession, keys: Iterable[str]) -> dict[str, CustomerEvent]:
    found: dict[str, CustomerEvent] = {}
    for chunk in _chunks(keys):
        for event in await session.scalars(select(CustomerEvent).where(CustomerEvent.idempotency_key.in_(chunk))):
            found[event.idempotency_key or ""] = event
    return found


async def _survivors(session: AsyncSession, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Customer]:
    """The customers with these ids, each followed to the record it was merged into."""
    found: dict[uuid.UUID, Customer] = {}
    for chunk in _chunks(set(ids)):
        for customer in await session.scalars(select(Customer).where(Customer.id.in_(chunk))):
            found[customer.id] = (
                customer if customer.merged_into_id is None else await customers.follow_merges(session, customer)
            )
    return found


async def _identity_owners(session: AsyncSession, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Customer]:
    """The customers holding these identities as proven. One held only unverified (a claim, e.g. an
    address a chat visitor typed) is left out: the token that sent the event vouches for it, so
    :func:`customers.resolve_by_identity` (``proven=True``) gives it to a customer of its own, as
    :func:`ingest` does, and the event never lands on the claimant."""
    owner_of: dict[tuple[str, str], uuid.UUID] = {}
    for chunk in _chunks(set(pairs)):
        rows = await session.execute(
            select(Identity.kind, Identity.value, Identity.customer_id, Identity.verified).where(
                tuple_(Identity.kind, Identity.value).in_(chunk)
            )
        )
        owner_of.update({(kind, value): customer_id for kind, value, customer_id, verified in rows if verified})
    survivors = await _survivors(session, owner_of.values())
    return {pair: survivors[customer_id] for pair, customer_id in owner_of.items()}


def _normalised_identities(items: list[EventIn]) -> dict[int, tuple[str, str] | ProblemError]:
    """``(kind, normalised value)`` of each item naming an identity, or why it is invalid."""
    pairs: dict[int, tuple[str, str] | ProblemError] = {}
    for index, item in enumerate(items):
        if item.identity is not None:
            kind = item.identity.kind.value
            try:
                pairs[index] = (kind, normalise(kind, item.identity.value, field="identity.value"))
            except ProblemError as exc:
                pairs[index] = exc
    return pairs


def _insert_new_keys(dialect: str) -> Any:
    """INSERT that skips a row whose idempotency key another request stored meanwhile."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(_events).on_conflict_do_nothing(index_elements=["idempotency_key"])
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(_events).on_conflict_do_nothing(index_elements=["idempotency_key"])


async def ingest_batch(session: AsyncSession, items: list[EventIn]) -> list[BatchOutcome]:
    """:func:`ingest` for each of ``items``, in order: ``(event, created)`` or the problem.

    The outcome of each item is what ``ingest`` would give (a key seen before, also earlier in
    the same batch, is a duplicate; an unknown customer is ``NotFound``; a bad identity is
    ``Invalid``), but the work is a few statements, not a few per event: everything is read
    first — on SQLite without holding the write lock — then the customers of identities nobody
    owns are created (:func:`customers.resolve_by_identity`) and the events written in one INSERT.
    A key another request stored in the meantime makes that item a duplicate of its event.
    """
    stored = await _stored_by_key(session, {e.idempotency_key for e in items if e.idempotency_key})
    named = await _survivors(session, [e.customer_id for e in items if e.customer_id is not None])
    # CPU work: off the event loop for a large batch (the API's /events/batch); a group commit's
    # batch is small, and a thread hop would cost more than the work.
    small = len(items) <= _INLINE_NORMALISE
    pairs = _normalised_identities(items) if small else await asyncio.to_thread(_normalised_identities, items)
    owners = await _identity_owners(session, [p for p in pairs.values() if isinstance(p, tuple)])
    # The customers of identities nobody holds as proven, made before the events and in one order:
    # two batches written at once (the group commit) lock the new identities alike, and so wait
    # for each other instead of deadlocking. Events come from authenticated integrations (API
    # tokens): they vouch for the identity.
    unowned = {
        pair
        for index, pair in pairs.items()
        if isinstance(pair, tuple) and pair not in owners and items[index].idempotency_key not in stored
    }
    for kind, value in sorted(unowned):
        owners[(kind, value)] = await customers.resolve_by_identity(session, kind, value, create=True, proven=True)

    now = clock.now()
    outcomes: list[BatchOutcome | None] = [None] * len(items)
    pending: list[tuple[int, CustomerEvent]] = []
    in_batch: dict[str, CustomerEvent] = {}
    for index, item in enumerate(items):
        if index % _YIELD_EVERY == 0:
            await asyncio.sleep(0)  # let other requests (/healthz) in between
        key = item.idempotency_key
        if key is not None and (original := stored.get(key) or in_batch.get(key)) is not None:
            outcomes[index] = (original, False)
            continue
        if item.customer_id is not None:
            customer = named.get(item.customer_id)
            if customer is None:
                outcomes[index] = NotFound(f"No customer with id {item.customer_id}.")
                continue
        else:
            pair = pairs[index]
            if not isinstance(pair, tuple):
                outcomes[index] = pair
                continue
            customer = owners[pair]
        event = CustomerEvent(
            id=new_id(),
            customer_id=customer.id,
            type=item.type,
            properties=item.properties,
            source=item.source,
            occurred_at=item.occurred_at or now,
            received_at=now,
            idempotency_key=key,
        )
        pending.append((index, event))
        if key is not None:
            in_batch[key] = event

    inserted: set[uuid.UUID] = set()
    # In idempotency-key order, so batches written at once lock the keys alike (see above).
    ordered = sorted(
        (event for _, event in pending), key=lambda e: (e.idempotency_key is None, e.idempotency_key or "")
    )
    rows = [{c.name: getattr(event, c.key) for c in _events.columns} for event in ordered]
    stmt = _insert_new_keys(session.get_bind().dialect.name).returning(_events.c.id)
    for chunk in _chunks(rows):
        inserted.update((await session.execute(stmt, chunk)).scalars())
    lost = await _stored_by_key(
        session, [e.idempotency_key for _, e in pending if e.id not in inserted and e.idempotency_key]
    )
    for done, (index, event) in enumerate(pending):
        if done % _YIELD_EVERY == 0:
            await asyncio.sleep(0)
        if event.id in inserted:
            outcomes[index] = (event, True)
            emit(session, EventIngested(customer_id=event.customer_id, event=EventOut.model_validate(event)))
        else:  # a concurrent request stored the same key first
            outcomes[index] = (lost[event.idempotency_key or ""], False)
    assert all(outcome is not None for outcome in outcomes)
    return outcomes  # type: ignore[return-value]


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


def event_out(event: CustomerEvent, duplicate: bool = False) -> EventOut:
    return EventOut.model_validate(event).model_copy(update={"duplicate": duplicate})
