"""Agents' presence: available, busy, away, after-call work, offline.

A change is a row in ``agent_presence``, forwarded to the leader in the same unit of work (going
offline returns the agent's unanswered offers first in line) and pushed as ``agent.presence`` to
every desk after the commit. The leader writes presence itself when after-call work ends, an
agent misses too many offers, or their desk stays disconnected.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk import clock
from frontdesk.audit import service as audit
from frontdesk.bus import emit
from frontdesk.db import get_or_404
from frontdesk.errors import Conflict, Invalid
from frontdesk.events import PresenceChanged
from frontdesk.models import AgentPresence, User
from frontdesk.models.enums import PresenceStatus
from frontdesk.models.routing import RoutingProfile
from frontdesk.routing import schemas as s
from frontdesk.routing.inbox import forward
from frontdesk.routing.names import Actor
from frontdesk.routing.profiles import DEFAULT_PROFILE

# -- presence --------------------------------------------------------------------------------


def presence_view(row: AgentPresence | None, fallback_since: datetime) -> s.PresenceOut:
    if row is None:
        return s.PresenceOut(status=PresenceStatus.offline.value, since=fallback_since, until=None, reason=None)
    return s.PresenceOut(status=row.status, since=row.since, until=row.until, reason=row.reason)


def publish_presence(session: AsyncSession, user_id: uuid.UUID, status: str, since: datetime, **extra: Any) -> None:
    """``agent.presence`` to every desktop (the wallboard, supervisors) and the agent's own tabs."""
    emit(session, PresenceChanged(user_id=user_id, status=status, since=since, extra=extra))


async def get_presence(session: AsyncSession, user_id: uuid.UUID) -> s.PresenceOut:
    user = await get_or_404(session, User, user_id, "user")
    return presence_view(await session.get(AgentPresence, user_id), user.created_at)


async def after_call_work_seconds(session: AsyncSession, user_id: uuid.UUID) -> int:
    seconds = await session.scalar(
        select(RoutingProfile.after_call_work_seconds).where(RoutingProfile.user_id == user_id)
    )
    return int(DEFAULT_PROFILE["after_call_work_seconds"] if seconds is None else seconds)


async def set_presence(
    session: AsyncSession,
    user_id: uuid.UUID,
    body: s.PresenceIn,
    actor: Actor,
) -> s.PresenceOut:
    """Change an agent's presence; the leader hears of it (offline returns their offers first in line)."""
    user = await get_or_404(session, User, user_id, "user")
    if not user.is_active and body.status is not PresenceStatus.offline:
        raise Conflict("A disabled user can only be offline.")
    now = clock.now()
    until: datetime | None = None
    if body.status is PresenceStatus.after_call_work:
        if body.until is not None:
            until = clock.ensure_utc(body.until)
            if until <= now:
                raise Invalid("until must be in the future", field="until")
        else:
            until = now + timedelta(seconds=await after_call_work_seconds(session, user_id))
    elif body.until is not None:
        raise Invalid("until is only accepted with status after_call_work", field="until")
    row = await session.get(AgentPresence, user_id)
    if row is None:
        row = AgentPresence(user_id=user_id, status=body.status.value, since=now, missed_offers=0)
        session.add(row)
    elif row.status != body.status.value:
        row.status = body.status.value
        row.since = now
    row.until = until
    row.reason = body.reason
    if body.status is PresenceStatus.available:
        row.missed_offers = 0
    await session.flush()
    if actor is not None and getattr(actor, "user_id", None) != user_id:
        await audit.record(session, actor, "routing.presence_set", "user", user_id, {"status": row.status})
    await forward(session, "agent", user_id=user_id)
    publish_presence(session, user_id, row.status, row.since, until=until.isoformat() if until else None)
    return presence_view(row, now)
