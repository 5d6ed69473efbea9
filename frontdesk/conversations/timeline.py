"""The customer timeline: every message, note, call and customer event, one ordered stream.

Two sources — ``messages`` (all the customer's conversations and channels) and
``customer_events`` — are each read with one bounded keyset query (``limit + 1`` rows after the
cursor, on the indexes ``(customer_id, created_at)`` and ``(customer_id, occurred_at)``) and
merged in Python. The cursor is the (time, id) of the last item returned, so a page never
repeats or skips an item however the two sources interleave, and no query uses OFFSET.
"""

from __future__ import annotations

import heapq
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import and_, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk import clock
from frontdesk.conversations.schemas import TimelineItem, TimelineKind, TimelineOrder
from frontdesk.conversations.service import decode_time_cursor, time_cursor
from frontdesk.customers.personal import family_ids
from frontdesk.customers.service import follow_merges
from frontdesk.db import UTCDateTime, get_or_404
from frontdesk.models import Customer, CustomerEvent, Message
from frontdesk.models.enums import Channel, Direction

TEXT_PREVIEW = 1000


def _kind(message: Message) -> TimelineKind:
    if message.direction == Direction.note.value:
        return TimelineKind.note
    if message.channel == Channel.voice.value:
        return TimelineKind.call
    return TimelineKind.message


def _message_item(m: Message) -> TimelineItem:
    text = m.text or ""
    preview = text if len(text) <= TEXT_PREVIEW else text[: TEXT_PREVIEW - 1] + "…"
    return TimelineItem(
        kind=_kind(m),
        id=m.id,
        at=m.created_at,
        channel=m.channel,
        direction=m.direction,
        conversation_id=m.conversation_id,
        text=preview,
        summary=preview.split("\n", 1)[0][:200] or None,
        author_type=m.author_type,
        author_id=m.author_id,
    )


def _event_summary(e: CustomerEvent) -> str:
    props = e.properties or {}
    shown = ", ".join(f"{k}={v}" for k, v in list(props.items())[:3] if isinstance(v, str | int | float | bool))
    return f"{e.type} ({shown})" if shown else e.type


def _event_item(e: CustomerEvent) -> TimelineItem:
    return TimelineItem(
        kind=TimelineKind.event,
        id=e.id,
        at=e.occurred_at,
        event_type=e.type,
        source=e.source,
        properties=e.properties or {},
        summary=_event_summary(e)[:200],
    )


async def customer_timeline(
    session: AsyncSession,
    customer_id: uuid.UUID,
    *,
    cursor: str | None = None,
    limit: int = 50,
    order: TimelineOrder = TimelineOrder.desc,
) -> tuple[list[TimelineItem], str | None]:
    """One page of the customer's timeline (newest first unless ``order`` is ``asc``).

    Follows merges: a merged record's id answers with its survivor's timeline, which also reads
    any row still filed under a record merged into it (a message written while the merge ran).
    """
    customer = await get_or_404(session, Customer, customer_id, "customer")
    ids = await family_ids(session, (await follow_merges(session, customer)).id)
    desc = order is TimelineOrder.desc
    after: tuple[datetime, uuid.UUID] | None = decode_time_cursor(cursor) if cursor else None

    def keyset(time_col: Any, id_col: Any) -> Any:
        assert after is not None
        at = after[0]
        value = literal(at, UTCDateTime())
        if desc:
            return or_(time_col < value, and_(time_col == value, id_col < after[1]))
        return or_(time_col > value, and_(time_col == value, id_col > after[1]))

    def ordering(time_col: Any, id_col: Any) -> tuple[Any, Any]:
        return (time_col.desc(), id_col.desc()) if desc else (time_col.asc(), id_col.asc())

    messages_stmt = select(Message).where(Message.customer_id.in_(ids))
    events_stmt = select(CustomerEvent).where(CustomerEvent.customer_id.in_(ids))
    if after is not None:
        messages_stmt = messages_stmt.where(keyset(Message.created_at, Message.id))
        events_stmt = events_stmt.where(keyset(CustomerEvent.occurred_at, CustomerEvent.id))
    messages_stmt = messages_stmt.order_by(*ordering(Message.created_at, Message.id)).limit(limit + 1)
    events_stmt = events_stmt.order_by(*ordering(CustomerEvent.occurred_at, CustomerEvent.id)).limit(limit + 1)

    messages = [_message_item(m) for m in await session.scalars(messages_stmt)]
    events = [_event_item(e) for e in await session.scalars(events_stmt)]

    def key(item: TimelineItem) -> tuple[datetime, uuid.UUID]:
        return (clock.ensure_utc(item.at), item.id)

    merged: Iterator[TimelineItem] = heapq.merge(messages, events, key=key, reverse=desc)
    items: list[TimelineItem] = []
    for item in merged:
        items.append(item)
        if len(items) > limit:
            break
    next_cursor = None
    if len(items) > limit:
        items = items[:limit]
        next_cursor = time_cursor(items[-1].at, items[-1].id)
    return items, next_cursor
