"""The leader's inbox: how every process tells the routing leader to look at something.

Nothing outside the leader decides who gets a conversation (``frontdesk/routing/leader.py``).
Every change the leader must look at is forwarded to it as a ``routing_inbox`` row written in the
SAME transaction as the change (a transactional inbox), followed on PostgreSQL by
``NOTIFY frontdesk_routing`` (delivered at commit) and, in this process, by a direct wake-up.
Conversations enter routing through :func:`forward_conversation_events`, an in-transaction
subscriber of the bus (``frontdesk.bus``, registered in ``frontdesk.wiring``) that sees every
``ConversationUpdated`` / ``MessageReceived`` of a unit of work before it commits — including the
ingest writer's batches — so no other package has to call routing. The desk socket reports itself with
:func:`desk_connected` / :func:`desk_disconnected`; configuration, presence and offer changes call
:func:`forward` in their own unit of work.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import Table, insert, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from frontdesk import clock
from frontdesk.db import after_commit, before_commit, insert_rows
from frontdesk.events import ConversationUpdated, MessageReceived
from frontdesk.models.routing import RoutingInboxEvent

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "frontdesk_routing"
_inbox_table: Table = RoutingInboxEvent.__table__  # type: ignore[assignment]


_local_wakeups: dict[Callable[[], None], Callable[[], bool]] = {}


def register_wakeup(fn: Callable[[], None], leads: Callable[[], bool] = lambda: False) -> None:
    """A leader of this process asks to be woken when an inbox row commits here; ``leads`` says
    whether it currently leads (then no other process needs a ``NOTIFY``)."""
    _local_wakeups[fn] = leads


def unregister_wakeup(fn: Callable[[], None]) -> None:
    _local_wakeups.pop(fn, None)


def wake_local_leaders() -> None:
    for fn in list(_local_wakeups):
        try:
            fn()
        except Exception:  # a wake-up must never fail a request
            log.exception("routing: waking the leader failed")


def _leads_here() -> bool:
    return any(leads() for leads in list(_local_wakeups.values()))


async def notify_leader(conn: AsyncConnection | AsyncSession) -> None:
    """``NOTIFY`` the leader of another process (PostgreSQL; delivered at commit), in the caller's
    transaction. Skipped when this process leads: it is woken directly after the commit, and a
    round trip per write is saved on the hot path. Should it lose the lead meanwhile, the new
    leader reads the inbox on taking over, and every tick."""
    bind = conn.get_bind() if isinstance(conn, AsyncSession) else conn
    if bind.dialect.name == "postgresql" and not _leads_here():
        await conn.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))


async def _wake_after_commit() -> None:
    wake_local_leaders()


async def forward(
    session: AsyncSession,
    kind: str,
    *,
    conversation_id: uuid.UUID | None = None,
    user_id: uuid.UUID | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Tell the routing leader to look at something, in the caller's unit of work."""
    await session.execute(
        insert(RoutingInboxEvent).values(
            kind=kind, conversation_id=conversation_id, user_id=user_id, data=data or {}, created_at=clock.now()
        )
    )
    if session.info.get("routing_forwarded"):
        return
    session.info["routing_forwarded"] = True

    async def _notify() -> None:
        session.info.pop("routing_forwarded", None)
        await notify_leader(session)

    before_commit(session, _notify)
    after_commit(session, _wake_after_commit)


async def _forward_alone(db: Any, kind: str, user_id: uuid.UUID) -> None:
    try:
        async with db.transaction() as session:
            await forward(session, kind, user_id=user_id)
    except Exception:
        log.exception("routing: could not forward %s for %s", kind, user_id)


async def desk_connected(db: Any, user_id: uuid.UUID) -> None:
    """For the desk WebSocket (``frontdesk/web/ws.py``), once authenticated: cancels a pending
    disconnect. Its own unit of work; never raises (a socket must not fail for routing)."""
    await _forward_alone(db, "connected", user_id)


async def desk_disconnected(db: Any, user_id: uuid.UUID) -> None:
    """For the desk WebSocket, when it closes. When it was the agent's last desk and none reopens
    within a short grace (a reload reconnects), the leader sets them offline: their unanswered
    offers go back to the queue, first in line."""
    await _forward_alone(db, "disconnected", user_id)


ROUTED_CHANGES = frozenset({"created", "status", "assignee_id", "queue_id", "priority"})


async def forward_conversation_events(
    conn: AsyncConnection, events: list[ConversationUpdated | MessageReceived]
) -> list[Callable[[], None]]:
    """Bus subscriber, in the transaction: new, reopened, re-assigned, transferred or closed
    conversations become routing inbox rows of the same transaction (and one NOTIFY)."""
    ids: list[str] = []
    for event in events:
        if isinstance(event, MessageReceived):
            if not (event.new_conversation or event.reopened):
                continue
        elif event.by == "routing" or ROUTED_CHANGES.isdisjoint(event.changes):
            continue
        cid = str(event.conversation_id)
        if cid not in ids:
            ids.append(cid)
    if not ids:
        return []
    now = clock.now()
    await insert_rows(
        conn,
        _inbox_table,
        [
            {"kind": "conversation", "conversation_id": uuid.UUID(c), "user_id": None, "data": {}, "created_at": now}
            for c in ids
        ],
    )
    await notify_leader(conn)
    return [wake_local_leaders]
