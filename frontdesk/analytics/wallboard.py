"""The live wallboard: queues, waiting customers, today's service level and the agents' state.

Definitions (also in ``docs/architecture/wallboard.md``):

- A **row** is a (queue, channel) pair — the queue may be none — that has a conversation waiting
  now or answered or abandoned since the start of today.
- **Waiting**: open conversations whose customer waits for an answer — not answered yet, or they
  wrote again after the last agent reply (``waiting_since`` is set), assigned or not.
  **Longest wait**: seconds since the oldest of them started waiting (``waiting_since``); null
  when none.
- **Today** starts at local midnight in the requested time zone (``tz``, default UTC).
- **Answered today**: ``first_response_at`` today. **Abandoned today**: resolved today without
  any agent response.
- **Service level today**: answered today within the queue's ``service_level_seconds``
  (``first_response_seconds``), divided by answered + abandoned today, in percent; null when
  neither happened. Conversations in no queue use 60 s / 80 %.
- **Totals** add the rows up; their service level weighs every row by its own target.
- **Agents**: every active agent and supervisor, with the presence the routing layer wrote
  (``agent_presence``; no row means offline) and their load — open and pending conversations
  assigned to them, per channel.

Five small GROUP BY / lookup queries, whatever the number of conversations.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field
from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk import clock
from frontdesk.errors import Invalid
from frontdesk.models import AgentPresence, Conversation, Queue, User
from frontdesk.models.enums import ConversationStatus, PresenceStatus, Role

DEFAULT_TARGET_SECONDS = 60
DEFAULT_TARGET_PERCENT = 80
ACTIVE = (ConversationStatus.open.value, ConversationStatus.pending.value)


class QueueFigures(BaseModel):
    queue_id: uuid.UUID | None
    queue_name: str | None
    channel: str
    waiting: int = Field(
        description="Open conversations whose customer waits for an answer (never answered, or wrote again since)."
    )
    longest_wait_seconds: int | None = Field(description="The oldest waiting one's wait; null when none waits.")
    answered_today: int
    abandoned_today: int = Field(description="Resolved today without any agent response.")
    service_level_today: float | None = Field(
        description="Percent answered within the target of answered + abandoned today; null when neither happened."
    )
    target_percent: int
    target_seconds: int


class AgentFigures(BaseModel):
    user_id: uuid.UUID
    name: str
    role: str
    presence: str = Field(description="available, busy, away, after_call_work or offline.")
    presence_since: datetime | None
    load: dict[str, int] = Field(description="Open and pending conversations assigned, per channel.")
    open_conversations: int


class Totals(BaseModel):
    waiting: int
    answered_today: int
    abandoned_today: int
    service_level_today: float | None


class Wallboard(BaseModel):
    generated_at: datetime
    day_start: datetime = Field(description="Local midnight of today in the requested time zone, in UTC.")
    time_zone: str
    queues: list[QueueFigures]
    agents: list[AgentFigures]
    totals: Totals


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise Invalid(f"unknown time zone {name[:64]!r}; use an IANA name such as Europe/Moscow", field="tz") from exc


def day_start(now: datetime, tz: ZoneInfo) -> datetime:
    """Local midnight of ``now``'s day in ``tz``, as aware UTC."""
    local = now.astimezone(tz)
    return clock.ensure_utc(datetime.combine(local.date(), time(0), tzinfo=tz))


def _percent(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


async def wallboard(session: AsyncSession, tz_name: str = "UTC") -> Wallboard:
    tz = zone(tz_name)
    now = clock.now()
    start = day_start(now, tz)
    c = Conversation

    # 1. Waiting now, per (queue, channel): a customer waits for an answer since ``waiting_since``
    #    (set by their first unanswered message, cleared by an agent's reply or resolving).
    waiting: dict[tuple[uuid.UUID | None, str], tuple[int, datetime | None]] = {}
    oldest: datetime | None
    for queue_id, channel, n, oldest in await session.execute(
        select(c.queue_id, c.channel, func.count(), func.min(c.waiting_since))
        .where(c.status == ConversationStatus.open.value, c.waiting_since.is_not(None))
        .group_by(c.queue_id, c.channel)
    ):
        waiting[(queue_id, channel)] = (n, oldest)

    # 2. Today's answered (and within target) and abandoned, per (queue, channel).
    answered = c.first_response_at >= start
    abandoned = and_(
        c.first_response_at.is_(None), c.status == ConversationStatus.resolved.value, c.resolved_at >= start
    )
    target = func.coalesce(Queue.service_level_seconds, DEFAULT_TARGET_SECONDS)
    within = and_(answered, c.first_response_seconds <= target)
    today: dict[tuple[uuid.UUID | None, str], tuple[int, int, int]] = {}
    for queue_id, channel, n_answered, n_within, n_abandoned in await session.execute(
        select(
            c.queue_id,
            c.channel,
            func.sum(case((answered, 1), else_=0)),
            func.sum(case((within, 1), else_=0)),
            func.sum(case((abandoned, 1), else_=0)),
        )
        .outerjoin(Queue, Queue.id == c.queue_id)
        .where(or_(answered, abandoned))
        .group_by(c.queue_id, c.channel)
    ):
        today[(queue_id, channel)] = (int(n_answered or 0), int(n_within or 0), int(n_abandoned or 0))

    # 3. The queues named by those rows.
    keys = set(waiting) | set(today)
    queue_ids = {q for q, _ in keys if q is not None}
    queues: dict[uuid.UUID, Any] = {}
    if queue_ids:
        for row in await session.execute(
            select(Queue.id, Queue.name, Queue.service_level_seconds, Queue.service_level_percent).where(
                Queue.id.in_(queue_ids)
            )
        ):
            queues[row[0]] = row

    rows: list[QueueFigures] = []
    total_within = 0
    for key in keys:
        queue_id, channel = key
        n_waiting, oldest = waiting.get(key, (0, None))
        n_answered, n_within, n_abandoned = today.get(key, (0, 0, 0))
        queue = queues.get(queue_id) if queue_id is not None else None
        total_within += n_within
        rows.append(
            QueueFigures(
                queue_id=queue_id,
                queue_name=queue[1] if queue is not None else None,
                channel=channel,
                waiting=n_waiting,
                longest_wait_seconds=(
                    max(0, int((now - oldest).total_seconds())) if n_waiting and oldest is not None else None
                ),
                answered_today=n_answered,
                abandoned_today=n_abandoned,
                service_level_today=_percent(n_within, n_answered + n_abandoned),
                target_percent=queue[3] if queue is not None else DEFAULT_TARGET_PERCENT,
                target_seconds=queue[2] if queue is not None else DEFAULT_TARGET_SECONDS,
            )
        )
    rows.sort(key=lambda r: (r.queue_name is None, (r.queue_name or "").casefold(), str(r.queue_id), r.channel))

    totals = Totals(
        waiting=sum(r.waiting for r in rows),
        answered_today=sum(r.answered_today for r in rows),
        abandoned_today=sum(r.abandoned_today for r in rows),
        service_level_today=_percent(total_within, sum(r.answered_today + r.abandoned_today for r in rows)),
    )
    return Wallboard(
        generated_at=now,
        day_start=start,
        time_zone=tz_name,
        queues=rows,
        agents=await _agents(session),
        totals=totals,
    )


async def _agents(session: AsyncSession) -> list[AgentFigures]:
    # 4. Active agents and supervisors with their presence (no row: offline).
    people = (
        await session.execute(
            select(User.id, User.name, User.role, AgentPresence.status, AgentPresence.since)
            .outerjoin(AgentPresence, AgentPresence.user_id == User.id)
            .where(User.is_active.is_(True), User.role.in_((Role.agent.value, Role.supervisor.value)))
            .order_by(User.name, User.id)
        )
    ).all()
    if not people:
        return []
    # 5. Their load: open and pending conversations assigned, per channel.
    load: dict[uuid.UUID | None, dict[str, int]] = defaultdict(dict)
    for assignee_id, channel, n in await session.execute(
        select(Conversation.assignee_id, Conversation.channel, func.count())
        .where(Conversation.status.in_(ACTIVE), Conversation.assignee_id.is_not(None))
        .group_by(Conversation.assignee_id, Conversation.channel)
    ):
        load[assignee_id][channel] = n
    return [
        AgentFigures(
            user_id=user_id,
            name=name,
            role=role,
            presence=status or PresenceStatus.offline.value,
            presence_since=since,
            load=dict(sorted(load.get(user_id, {}).items())),
            open_conversations=sum(load.get(user_id, {}).values()),
        )
        for user_id, name, role, status, since in people
    ]


__all__ = ["AgentFigures", "QueueFigures", "Totals", "Wallboard", "day_start", "wallboard", "zone"]
