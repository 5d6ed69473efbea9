"""Routing hears user and team changes from the bus (auth does not call routing).

In-transaction subscribers (registered in ``frontdesk.wiring``): a changed user becomes an
``agent`` routing-inbox row, a deleted team first stops being named by queues (as their team or a
bullseye backup team) and then a ``config`` row — all in the change's own transaction, followed
on PostgreSQL by one ``NOTIFY`` and, after the commit, a wake-up of this process's leader.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Table, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from frontdesk import clock
from frontdesk.events import TeamChanged, UserChanged
from frontdesk.models import Queue
from frontdesk.models.routing import RoutingInboxEvent
from frontdesk.routing.inbox import notify_leader, wake_local_leaders

_queues: Table = Queue.__table__  # type: ignore[assignment]


async def _forget_team(conn: AsyncConnection, team_id: str) -> None:
    rows = (await conn.execute(select(_queues.c.id, _queues.c.team_ids, _queues.c.bullseye))).all()
    for queue_id, team_ids, bullseye in rows:
        values: dict[str, Any] = {}
        if team_id in (team_ids or []):
            values["team_ids"] = [t for t in team_ids if t != team_id]
        if any(team_id in (ring.get("add_team_ids") or []) for ring in bullseye or []):
            values["bullseye"] = [
                {**ring, "add_team_ids": [t for t in ring.get("add_team_ids") or [] if t != team_id]}
                for ring in bullseye
            ]
        if values:
            await conn.execute(update(_queues).where(_queues.c.id == queue_id).values(**values))


async def forward_user_events(
    conn: AsyncConnection, events: list[UserChanged | TeamChanged]
) -> list[Callable[[], None]]:
    """Bus subscriber, in the transaction: user and team changes become routing inbox rows."""
    now = clock.now()
    rows: list[dict[str, Any]] = []
    for event in events:
        if isinstance(event, UserChanged):
            rows.append(
                {"kind": "agent", "conversation_id": None, "user_id": event.user_id, "data": {}, "created_at": now}
            )
        else:
            if event.deleted:
                await _forget_team(conn, str(event.team_id))
            rows.append({"kind": "config", "conversation_id": None, "user_id": None, "data": {}, "created_at": now})
    if not rows:
        return []
    await conn.execute(insert(RoutingInboxEvent), rows)
    await notify_leader(conn)
    return [wake_local_leaders]
