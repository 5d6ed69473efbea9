"""Routing configuration, presence, offers, the decision log and the queue state: the business rules.

Nothing here decides who gets a conversation: only the routing leader does
(``frontdesk/routing/leader.py``). Every change the leader must look at is forwarded to it as a
``routing_inbox`` row written in the SAME transaction as the change (a transactional inbox),
followed on PostgreSQL by ``NOTIFY frontdesk_routing`` (delivered at commit) and, in this
process, by a direct wake-up. Conversations enter routing through :func:`forward_conversation_events`,
an in-transaction subscriber of the bus (``frontdesk.bus``, registered in ``frontdesk.subscribers``)
that sees every ``ConversationUpdated`` / ``MessageReceived`` of a unit of work before it commits —
including the ingest writer's batches — so no other package has to call routing.

Offers are answered here, by whichever process serves the request: the answer is a conditional
``UPDATE routing_offers … WHERE status = 'pending'``, so an agent's accept and the leader's expiry
can never both win.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select, text, true, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from frontdesk import clock
from frontdesk.audit import service as audit
from frontdesk.bus import emit
from frontdesk.conversations import service as conversations
from frontdesk.db import after_commit, before_commit, flush_or_conflict, folded, get_or_404
from frontdesk.errors import Conflict, Invalid, NotFound
from frontdesk.events import DESK, PRESENCE, Actor, ConversationUpdated, MessageReceived, PresenceChanged
from frontdesk.ids import new_id
from frontdesk.models import AgentPresence, Conversation, Queue, Team, TeamMember, User
from frontdesk.models.enums import Channel, PresenceStatus
from frontdesk.models.routing import (
    AgentSkill,
    CapacityShift,
    QueueSkill,
    RoutingDecision,
    RoutingInboxEvent,
    RoutingItem,
    RoutingLeadership,
    RoutingOffer,
    RoutingProfile,
    RoutingQueueStatus,
    RoutingRule,
    Skill,
)
from frontdesk.realtime import publish_after_commit
from frontdesk.routing import schemas as s

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "frontdesk_routing"
DESK_TOPIC = DESK
EVENT_PRESENCE = PRESENCE
EVENT_OFFER = "routing.offer"
EVENT_OFFER_WITHDRAWN = "routing.offer_withdrawn"
EVENT_CAPACITY_SHIFT = "routing.capacity_shift"

LIVE_STATES = ("waiting", "offered")

# The capacity of an agent without a routing profile: one call, or a blend within a budget of 100
# (call 100, chat 25, email 10), and nothing interrupts a call.
_MESSAGING = ("webchat", "whatsapp", "telegram", "sms")
DEFAULT_PROFILE: dict[str, Any] = {
    "max_per_channel": {"voice": 1, **dict.fromkeys(_MESSAGING, 3), "email": 5, "api": 5},
    "budget": 100,
    "cost": {"voice": 100, **dict.fromkeys(_MESSAGING, 25), "email": 10, "api": 10},
    "blocks": {"voice": [c.value for c in Channel if c.value != "voice"]},
    "after_call_work_seconds": 60,
}


# -- forwarding to the leader ---------------------------------------------------------------

_local_wakeups: set[Callable[[], None]] = set()


def register_wakeup(fn: Callable[[], None]) -> None:
    """A leader of this process asks to be woken when an inbox row commits here."""
    _local_wakeups.add(fn)


def unregister_wakeup(fn: Callable[[], None]) -> None:
    _local_wakeups.discard(fn)


def wake_local_leaders() -> None:
    for fn in list(_local_wakeups):
        try:
            fn()
        except Exception:  # a wake-up must never fail a request
            log.exception("routing: waking the leader failed")


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
        if session.get_bind().dialect.name == "postgresql":
            await session.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))

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


async def forget_team(session: AsyncSession, team_id: uuid.UUID) -> None:
    """A team is being deleted: queues stop naming it (as their team or a bullseye backup team),
    and the leader re-reads queues and agents."""
    gone = str(team_id)
    for queue in await list_queues(session):
        if gone in (queue.team_ids or []):
            queue.team_ids = [t for t in queue.team_ids if t != gone]
        if any(gone in (ring.get("add_team_ids") or []) for ring in queue.bullseye or []):
            queue.bullseye = [
                {**ring, "add_team_ids": [t for t in ring.get("add_team_ids") or [] if t != gone]}
                for ring in queue.bullseye
            ]
    await forward(session, "config")


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
    await conn.execute(
        insert(RoutingInboxEvent),
        [
            {"kind": "conversation", "conversation_id": uuid.UUID(c), "user_id": None, "data": {}, "created_at": now}
            for c in ids
        ],
    )
    if conn.dialect.name == "postgresql":
        await conn.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))
    return [wake_local_leaders]


# -- decisions -------------------------------------------------------------------------------


def decision_row(
    conversation_id: uuid.UUID,
    kind: str,
    at: datetime,
    *,
    reason: str = "",
    queue_id: uuid.UUID | None = None,
    queue_name: str | None = None,
    agent_id: uuid.UUID | None = None,
    rule: str | None = None,
    waited_seconds: float | None = None,
    offer_id: uuid.UUID | None = None,
    detail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One ``routing_decisions`` row (for a Core insert)."""
    return {
        "id": new_id(),
        "conversation_id": conversation_id,
        "at": at,
        "kind": kind,
        "queue_id": queue_id,
        "queue_name": queue_name,
        "agent_id": agent_id,
        "rule": rule,
        "reason": reason,
        "waited_seconds": None if waited_seconds is None else round(max(0.0, waited_seconds), 3),
        "offer_id": offer_id,
        "detail": detail or {},
    }


async def list_decisions(session: AsyncSession, conversation_id: uuid.UUID) -> list[s.DecisionOut]:
    await get_or_404(session, Conversation, conversation_id, "conversation")
    rows = await session.execute(
        select(RoutingDecision, User.name)
        .outerjoin(User, User.id == RoutingDecision.agent_id)
        .where(RoutingDecision.conversation_id == conversation_id)
        .order_by(RoutingDecision.at, RoutingDecision.id)
    )
    return [
        s.DecisionOut(
            at=d.at,
            kind=d.kind,
            queue=d.queue_name,
            queue_id=d.queue_id,
            agent=name,
            agent_id=d.agent_id,
            rule=d.rule,
            reason=d.reason,
            waited_seconds=d.waited_seconds,
            offer_id=d.offer_id,
        )
        for d, name in rows
    ]


# -- skills ----------------------------------------------------------------------------------


async def list_skills(session: AsyncSession) -> list[Skill]:
    return list((await session.scalars(select(Skill).order_by(Skill.name))).all())


async def get_skill(session: AsyncSession, skill_id: uuid.UUID) -> Skill:
    return await get_or_404(session, Skill, skill_id, "skill")


async def _check_skill_name(session: AsyncSession, name: str, exclude: uuid.UUID | None = None) -> None:
    found = await session.scalar(select(Skill.id).where(folded(session, Skill.name) == name.casefold()))
    if found is not None and found != exclude:
        raise Conflict(f"A skill named {name!r} exists.")


async def create_skill(session: AsyncSession, body: s.SkillIn, actor: Actor) -> Skill:
    await _check_skill_name(session, body.name)
    skill = Skill(id=new_id(), name=body.name, description=body.description)
    session.add(skill)
    await flush_or_conflict(session, f"A skill named {body.name!r} exists.")
    await audit.record(session, actor, "routing.skill_created", "skill", skill.id, {"name": skill.name})
    return skill


async def update_skill(session: AsyncSession, skill_id: uuid.UUID, body: s.SkillUpdate, actor: Actor) -> Skill:
    skill = await get_skill(session, skill_id)
    sent = body.model_fields_set
    if "name" in sent:
        if body.name is None:
            raise Invalid("name cannot be null", field="name")
        await _check_skill_name(session, body.name, exclude=skill.id)
        skill.name = body.name
    if "description" in sent:
        skill.description = body.description
    skill.updated_at = clock.now()
    await flush_or_conflict(session, f"A skill named {skill.name!r} exists.")
    return skill


async def delete_skill(session: AsyncSession, skill_id: uuid.UUID, actor: Actor) -> None:
    skill = await get_skill(session, skill_id)
    used = (
        await session.scalars(
            select(Queue.name).join(QueueSkill, QueueSkill.queue_id == Queue.id).where(QueueSkill.skill_id == skill.id)
        )
    ).all()
    if used:
        raise Conflict(f"Queues require this skill: {', '.join(sorted(used))}. Remove it from them first.")
    await session.delete(skill)
    await session.flush()
    await audit.record(session, actor, "routing.skill_deleted", "skill", skill_id, {"name": skill.name})
    await forward(session, "config")


async def _check_skill_ids(session: AsyncSession, ids: Iterable[uuid.UUID], field: str) -> dict[uuid.UUID, str]:
    wanted = set(ids)
    if not wanted:
        return {}
    found = dict((await session.execute(select(Skill.id, Skill.name).where(Skill.id.in_(wanted)))).all())
    missing = wanted - set(found)
    if missing:
        raise Invalid(f"{field}: no skill with id {sorted(map(str, missing))[0]}", field=field)
    return found


async def _check_team_ids(session: AsyncSession, ids: Iterable[uuid.UUID], field: str) -> None:
    wanted = set(ids)
    if not wanted:
        return
    found = set((await session.scalars(select(Team.id).where(Team.id.in_(wanted)))).all())
    missing = wanted - found
    if missing:
        raise Invalid(f"{field}: no team with id {sorted(map(str, missing))[0]}", field=field)


# -- queues ----------------------------------------------------------------------------------


def queue_channels(queue: Queue) -> list[str]:
    """The channels a queue serves (an empty list, from rows written before routing, means all)."""
    return list(queue.channels) if queue.channels else [c.value for c in Channel]


async def queue_views(session: AsyncSession, queues: Sequence[Queue]) -> list[s.QueueOut]:
    ids = [q.id for q in queues]
    skills: dict[uuid.UUID, list[s.RequiredSkillOut]] = defaultdict(list)
    if ids:
        rows = await session.execute(
            select(QueueSkill.queue_id, QueueSkill.skill_id, Skill.name, QueueSkill.min_level)
            .join(Skill, Skill.id == QueueSkill.skill_id)
            .where(QueueSkill.queue_id.in_(ids))
            .order_by(Skill.name)
        )
        for qid, sid, name, level in rows:
            skills[qid].append(s.RequiredSkillOut(skill_id=sid, name=name, min_level=level))
    return [
        s.QueueOut(
            id=q.id,
            name=q.name,
            description=q.description,
            channels=queue_channels(q),
            priority=q.priority,
            service_level_percent=q.service_level_percent,
            service_level_seconds=q.service_level_seconds,
            required_skills=skills.get(q.id, []),
            team_ids=[uuid.UUID(str(t)) for t in q.team_ids or []],
            selection=q.selection,
            sticky_wait_seconds=q.sticky_wait_seconds,
            offer_timeout_seconds=q.offer_timeout_seconds,
            auto_accept=q.auto_accept,
            ageing_per_minute=q.ageing_per_minute,
            handle_time_seconds=q.handle_time_seconds,
            redecline_after_seconds=q.redecline_after_seconds,
            bullseye=list(q.bullseye or []),
            overflow_queue_id=q.overflow_queue_id,
            overflow_after_seconds=q.overflow_after_seconds,
            created_at=q.created_at,
            updated_at=q.updated_at,
        )
        for q in queues
    ]


async def list_queues(session: AsyncSession) -> list[Queue]:
    return list((await session.scalars(select(Queue).order_by(Queue.priority.desc(), Queue.name))).all())


async def get_queue(session: AsyncSession, queue_id: uuid.UUID) -> Queue:
    return await get_or_404(session, Queue, queue_id, "queue")


async def _check_queue_name(session: AsyncSession, name: str, exclude: uuid.UUID | None = None) -> None:
    found = await session.scalar(select(Queue.id).where(folded(session, Queue.name) == name.casefold()))
    if found is not None and found != exclude:
        raise Conflict(f"A queue named {name!r} exists.")


def _rings_json(rings: Sequence[s.Ring]) -> list[dict[str, Any]]:
    return [
        {
            "after_seconds": r.after_seconds,
            "level_drop": r.level_drop,
            "add_team_ids": [str(t) for t in r.add_team_ids],
            "any_agent": r.any_agent,
        }
        for r in sorted(rings, key=lambda r: r.after_seconds)
    ]


async def _apply_queue(session: AsyncSession, queue: Queue, values: dict[str, Any], sent: set[str]) -> None:
    if "required_skills" in sent and values.get("required_skills") is not None:
        required: list[s.RequiredSkill] = values["required_skills"]
        await _check_skill_ids(session, [r.skill_id for r in required], "required_skills")
    if "team_ids" in sent and values.get("team_ids") is not None:
        await _check_team_ids(session, values["team_ids"], "team_ids")
    if "bullseye" in sent and values.get("bullseye") is not None:
        await _check_team_ids(session, [t for r in values["bullseye"] for t in r.add_team_ids], "bullseye")
    if "overflow_queue_id" in sent and values.get("overflow_queue_id") is not None:
        target = await session.get(Queue, values["overflow_queue_id"])
        if target is None:
            raise Invalid("overflow_queue_id: no such queue", field="overflow_queue_id")
        if target.id == queue.id:
            raise Invalid("overflow_queue_id: a queue cannot overflow into itself", field="overflow_queue_id")
    simple = (
        "name",
        "description",
        "priority",
        "service_level_percent",
        "service_level_seconds",
        "sticky_wait_seconds",
        "offer_timeout_seconds",
        "auto_accept",
        "ageing_per_minute",
        "handle_time_seconds",
        "redecline_after_seconds",
        "overflow_queue_id",
        "overflow_after_seconds",
    )
    for field in simple:
        if field in sent:
            setattr(queue, field, values[field])
    if "channels" in sent:
        queue.channels = [Channel(c).value for c in values["channels"]]
    if "selection" in sent:
        queue.selection = str(
            values["selection"].value if hasattr(values["selection"], "value") else values["selection"]
        )
    if "team_ids" in sent:
        queue.team_ids = [str(t) for t in values["team_ids"] or []]
    if "bullseye" in sent:
        queue.bullseye = _rings_json(values["bullseye"] or [])
    if (queue.overflow_queue_id is None) != (queue.overflow_after_seconds is None):
        raise Invalid("overflow_queue_id and overflow_after_seconds go together", field="overflow_after_seconds")
    await flush_or_conflict(session, f"A queue named {queue.name!r} exists.")
    if "required_skills" in sent:
        await session.execute(delete(QueueSkill).where(QueueSkill.queue_id == queue.id))
        required = values.get("required_skills") or []
        levels: dict[uuid.UUID, int] = {}
        for r in required:
            levels[r.skill_id] = max(levels.get(r.skill_id, 0), r.min_level)
        if levels:
            await session.execute(
                insert(QueueSkill), [{"queue_id": queue.id, "skill_id": k, "min_level": v} for k, v in levels.items()]
            )


async def create_queue(session: AsyncSession, body: s.QueueIn, actor: Actor) -> Queue:
    await _check_queue_name(session, body.name)
    queue = Queue(id=new_id(), name=body.name, channels=[c.value for c in body.channels])
    session.add(queue)
    values = {f: getattr(body, f) for f in type(body).model_fields}
    await _apply_queue(session, queue, values, set(type(body).model_fields))
    await audit.record(session, actor, "routing.queue_created", "queue", queue.id, {"name": queue.name})
    await forward(session, "config")
    return queue


async def update_queue(session: AsyncSession, queue_id: uuid.UUID, body: s.QueueUpdate, actor: Actor) -> Queue:
    queue = await get_queue(session, queue_id)
    sent = set(body.model_fields_set)
    nullable = {"description", "overflow_queue_id", "overflow_after_seconds"}
    for field in sent - nullable:
        if getattr(body, field) is None:
            raise Invalid(f"{field} cannot be null", field=field)
    if "name" in sent and body.name is not None:
        await _check_queue_name(session, body.name, exclude=queue.id)
    values = {f: getattr(body, f) for f in sent}
    await _apply_queue(session, queue, values, sent)
    queue.updated_at = clock.now()
    await session.flush()
    await audit.record(session, actor, "routing.queue_updated", "queue", queue.id, {"fields": sorted(sent)})
    await forward(session, "config")
    return queue


async def delete_queue(session: AsyncSession, queue_id: uuid.UUID, actor: Actor) -> None:
    queue = await get_queue(session, queue_id)
    rules = (await session.scalars(select(RoutingRule.name).where(RoutingRule.queue_id == queue.id))).all()
    if rules:
        raise Conflict(f"Routing rules send conversations to this queue: {', '.join(sorted(rules))}.")
    live = await session.scalar(
        select(func.count())
        .select_from(RoutingItem)
        .where(RoutingItem.queue_id == queue.id, RoutingItem.state.in_(LIVE_STATES))
    )
    if live:
        raise Conflict(f"{live} conversation(s) are waiting in this queue; move or answer them first.")
    await session.execute(update(Conversation).where(Conversation.queue_id == queue.id).values(queue_id=None))
    await session.execute(
        update(Queue)
        .where(Queue.overflow_queue_id == queue.id)
        .values(overflow_queue_id=None, overflow_after_seconds=None)
    )
    await session.delete(queue)
    await session.flush()
    await audit.record(session, actor, "routing.queue_deleted", "queue", queue_id, {"name": queue.name})
    await forward(session, "config")


# -- routing profiles ------------------------------------------------------------------------


async def get_profile(session: AsyncSession, user_id: uuid.UUID) -> s.RoutingProfileOut:
    await get_or_404(session, User, user_id, "user")
    profile = await session.get(RoutingProfile, user_id)
    skills = await session.execute(
        select(AgentSkill.skill_id, Skill.name, AgentSkill.level)
        .join(Skill, Skill.id == AgentSkill.skill_id)
        .where(AgentSkill.user_id == user_id)
        .order_by(Skill.name)
    )
    teams = (await session.scalars(select(TeamMember.team_id).where(TeamMember.user_id == user_id))).all()
    base: dict[str, Any] = (
        DEFAULT_PROFILE
        if profile is None
        else {
            "max_per_channel": profile.max_per_channel,
            "budget": profile.budget,
            "cost": profile.cost,
            "blocks": profile.blocks,
            "after_call_work_seconds": profile.after_call_work_seconds,
        }
    )
    return s.RoutingProfileOut(
        user_id=user_id,
        skills=[s.AgentSkillOut(skill_id=sid, name=name, level=level) for sid, name, level in skills],
        teams=sorted(teams),
        max_per_channel=dict(base["max_per_channel"]),
        budget=base["budget"],
        cost=dict(base["cost"]),
        blocks={k: list(v) for k, v in base["blocks"].items()},
        after_call_work_seconds=base["after_call_work_seconds"],
        is_default=profile is None,
    )


async def put_profile(
    session: AsyncSession, user_id: uuid.UUID, body: s.RoutingProfileIn, actor: Actor
) -> s.RoutingProfileOut:
    await get_or_404(session, User, user_id, "user")
    levels: dict[uuid.UUID, int] = {}
    for sk in body.skills:
        levels[sk.skill_id] = sk.level
    await _check_skill_ids(session, levels, "skills")
    for channel, cost in body.cost.items():
        if cost > body.budget:
            field = f"cost.{channel.value}"
            raise Invalid(f"{field}: {cost} is above the budget {body.budget}", field=field)
    values = {
        "max_per_channel": {c.value: n for c, n in body.max_per_channel.items()},
        "budget": body.budget,
        "cost": {c.value: n for c, n in body.cost.items()},
        "blocks": {c.value: sorted({b.value for b in bs if b != c}) for c, bs in body.blocks.items()},
        "after_call_work_seconds": body.after_call_work_seconds,
        "updated_at": clock.now(),
    }
    profile = await session.get(RoutingProfile, user_id)
    if profile is None:
        session.add(RoutingProfile(user_id=user_id, **values))
    else:
        for k, v in values.items():
            setattr(profile, k, v)
    await session.execute(delete(AgentSkill).where(AgentSkill.user_id == user_id))
    if levels:
        await session.execute(
            insert(AgentSkill), [{"user_id": user_id, "skill_id": k, "level": v} for k, v in levels.items()]
        )
    await session.flush()
    await audit.record(
        session,
        actor,
        "routing.profile_updated",
        "user",
        user_id,
        {"skills": {str(k): v for k, v in levels.items()}, **{k: v for k, v in values.items() if k != "updated_at"}},
    )
    await forward(session, "agent", user_id=user_id)
    return await get_profile(session, user_id)


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


# -- routing rules ---------------------------------------------------------------------------


def rule_view(rule: RoutingRule) -> s.RuleOut:
    return s.RuleOut(
        id=rule.id,
        name=rule.name,
        description=rule.description,
        position=rule.position,
        enabled=rule.enabled,
        queue_id=rule.queue_id,
        conditions=dict(rule.conditions or {}),
        priority=rule.priority,
        created_at=rule.created_at,
        updated_at=rule.updated_at,
    )


async def list_rules(session: AsyncSession) -> list[RoutingRule]:
    return list(
        (await session.scalars(select(RoutingRule).order_by(RoutingRule.position, RoutingRule.created_at))).all()
    )


async def get_rule(session: AsyncSession, rule_id: uuid.UUID) -> RoutingRule:
    return await get_or_404(session, RoutingRule, rule_id, "routing rule")


def _conditions_json(conditions: s.RuleConditions) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if conditions.channels:
        out["channels"] = [c.value for c in conditions.channels]
    if conditions.inbox_ids:
        out["inbox_ids"] = [str(i) for i in conditions.inbox_ids]
    if conditions.languages:
        out["languages"] = [lang.lower().replace("_", "-") for lang in conditions.languages]
    if conditions.tags:
        # The way conversation tags are stored, or a rule on "Refund Request" would never match.
        out["tags"] = [conversations.normalise_tag(t, field="conditions.tags") for t in conditions.tags]
    if conditions.segments:
        out["segments"] = [x.strip().lower() for x in conditions.segments]
    if conditions.attributes:
        out["attributes"] = dict(conditions.attributes)
    return out


async def _reorder(session: AsyncSession, moved: RoutingRule, position: int | None) -> None:
    """Renumber the rules 0..n-1 with ``moved`` at ``position`` (``None``: where it is, or last)."""
    rules = [r for r in await list_rules(session) if r.id != moved.id]
    at = len(rules) if position is None else min(position, len(rules))
    rules.insert(at, moved)
    for i, r in enumerate(rules):
        if r.position != i:
            r.position = i


async def _check_rule_queue(session: AsyncSession, queue_id: uuid.UUID) -> None:
    if await session.get(Queue, queue_id) is None:
        raise Invalid("queue_id: no such queue", field="queue_id")


async def create_rule(session: AsyncSession, body: s.RuleIn, actor: Actor) -> RoutingRule:
    await _check_rule_queue(session, body.queue_id)
    rule = RoutingRule(
        id=new_id(),
        name=body.name,
        description=body.description,
        queue_id=body.queue_id,
        conditions=_conditions_json(body.conditions),
        priority=body.priority,
        enabled=body.enabled,
        position=10**6,
    )
    session.add(rule)
    await session.flush()
    await _reorder(session, rule, body.position)
    await session.flush()
    await audit.record(session, actor, "routing.rule_created", "routing_rule", rule.id, {"name": rule.name})
    await forward(session, "rules")
    return rule


async def update_rule(session: AsyncSession, rule_id: uuid.UUID, body: s.RuleUpdate, actor: Actor) -> RoutingRule:
    rule = await get_rule(session, rule_id)
    sent = set(body.model_fields_set)
    for field in sent - {"description", "priority"}:
        if getattr(body, field) is None:
            raise Invalid(f"{field} cannot be null", field=field)
    if body.queue_id is not None:
        await _check_rule_queue(session, body.queue_id)
        rule.queue_id = body.queue_id
    for field in ("name", "description", "priority", "enabled"):
        if field in sent:
            setattr(rule, field, getattr(body, field))
    if body.conditions is not None:
        rule.conditions = _conditions_json(body.conditions)
    if "position" in sent:
        await _reorder(session, rule, body.position)
    rule.updated_at = clock.now()
    await session.flush()
    await audit.record(session, actor, "routing.rule_updated", "routing_rule", rule.id, {"fields": sorted(sent)})
    await forward(session, "rules")
    return rule


async def delete_rule(session: AsyncSession, rule_id: uuid.UUID, actor: Actor) -> None:
    rule = await get_rule(session, rule_id)
    await session.delete(rule)
    await session.flush()
    for i, r in enumerate(await list_rules(session)):
        r.position = i
    await session.flush()
    await audit.record(session, actor, "routing.rule_deleted", "routing_rule", rule_id, {"name": rule.name})
    await forward(session, "rules")


# -- offers ----------------------------------------------------------------------------------


async def _offer_views(session: AsyncSession, offers: Sequence[RoutingOffer], now: datetime) -> list[s.OfferOut]:
    if not offers:
        return []
    qids = {o.queue_id for o in offers if o.queue_id}
    qnames = dict((await session.execute(select(Queue.id, Queue.name).where(Queue.id.in_(qids)))).all()) if qids else {}
    cids = [o.conversation_id for o in offers]
    priorities = dict(
        (await session.execute(select(Conversation.id, Conversation.priority).where(Conversation.id.in_(cids)))).all()
    )
    cnames = dict(
        (
            await session.execute(
                select(RoutingItem.conversation_id, RoutingItem.customer_name).where(
                    RoutingItem.conversation_id.in_(cids)
                )
            )
        ).all()
    )
    return [
        s.OfferOut(
            id=o.id,
            conversation_id=o.conversation_id,
            agent_id=o.agent_id,
            queue_id=o.queue_id,
            queue_name=qnames.get(o.queue_id) if o.queue_id else None,
            customer_name=cnames.get(o.conversation_id),
            channel=o.channel,
            status=o.status,
            priority=priorities.get(o.conversation_id, "normal"),
            effective_priority=o.priority,
            offered_at=o.offered_at,
            expires_at=o.expires_at,
            answered_at=o.answered_at,
            seconds=(
                max(0, int((o.expires_at - now).total_seconds()))
                if o.status == "pending" and o.expires_at is not None
                else None
            ),
        )
        for o in offers
    ]


async def my_offers(session: AsyncSession, user_id: uuid.UUID) -> list[s.OfferOut]:
    """The agent's pending offers (a desk that reloads shows them again)."""
    now = clock.now()
    offers = (
        await session.scalars(
            select(RoutingOffer)
            .where(RoutingOffer.agent_id == user_id, RoutingOffer.status == "pending")
            .order_by(RoutingOffer.offered_at)
        )
    ).all()
    return await _offer_views(session, [o for o in offers if o.expires_at is None or o.expires_at > now], now)


async def _own_offer(session: AsyncSession, offer_id: uuid.UUID, user_id: uuid.UUID) -> RoutingOffer:
    offer = await session.get(RoutingOffer, offer_id)
    if offer is None or offer.agent_id != user_id:
        raise NotFound(f"No offer with id {offer_id} for you.")
    return offer


def _closed(offer: RoutingOffer) -> Conflict:
    words = {"timed_out": "timed out", "auto_accepted": "accepted"}
    return Conflict(f"This offer is no longer open: it was {words.get(offer.status, offer.status)}.")


async def _answer(session: AsyncSession, offer: RoutingOffer, status: str, now: datetime) -> bool:
    result: Any = await session.execute(
        update(RoutingOffer)
        .where(RoutingOffer.id == offer.id, RoutingOffer.status == "pending")
        .values(status=status, answered_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)


async def accept_offer(session: AsyncSession, actor: Any, offer_id: uuid.UUID) -> s.OfferOut:
    """The agent takes the conversation: it is assigned to them at once (``conversation.updated``)."""
    me = actor.user_id
    now = clock.now()
    offer = await _own_offer(session, offer_id, me)
    if offer.status != "pending":
        raise _closed(offer)
    if offer.expires_at is not None and offer.expires_at <= now:
        raise Conflict("This offer has expired.")
    conversation = await session.get(Conversation, offer.conversation_id)
    if conversation is None or conversation.status != "open" or conversation.assignee_id not in (None, me):
        raise Conflict("The conversation is no longer waiting for an agent.")
    if not await _answer(session, offer, "accepted", now):
        await session.refresh(offer)
        raise _closed(offer)
    await session.refresh(offer)
    item = await session.get(RoutingItem, offer.conversation_id)
    previous = conversation.assignee_id
    changes = []
    if previous != me:
        conversation.assignee_id = me
        changes.append("assignee_id")
    if conversation.queue_id is None and offer.queue_id is not None:
        conversation.queue_id = offer.queue_id
        changes.append("queue_id")
    conversation.updated_at = now
    waited = None
    queue_name = None
    if item is not None:
        waited = (now - item.arrived_at).total_seconds()
        item.state = "assigned"
        item.agent_id = me
        item.first_in_line = False
        item.updated_at = now
    if offer.queue_id is not None:
        queue_name = await session.scalar(select(Queue.name).where(Queue.id == offer.queue_id))
    await session.execute(
        insert(RoutingDecision).values(
            decision_row(
                offer.conversation_id,
                "accepted",
                now,
                reason="the agent accepted the offer",
                queue_id=offer.queue_id,
                queue_name=queue_name,
                agent_id=me,
                waited_seconds=waited,
                offer_id=offer.id,
            )
        )
    )
    await session.execute(update(AgentPresence).where(AgentPresence.user_id == me).values(missed_offers=0))
    await session.flush()
    await audit.record(
        session,
        actor,
        "conversation.assigned",
        "conversation",
        conversation.id,
        {"assignee_id": {"from": str(previous) if previous else None, "to": str(me)}, "via": "routing offer"},
    )
    if changes:  # the event hook forwards this change to the leader
        await conversations.publish_conversation_updated(session, conversation, changes)
    else:
        await forward(session, "conversation", conversation_id=conversation.id)
    return (await _offer_views(session, [offer], now))[0]


async def decline_offer(session: AsyncSession, actor: Any, offer_id: uuid.UUID) -> s.OfferOut:
    """The agent passes: the conversation goes on to the next agent (not back to them for a while)."""
    me = actor.user_id
    now = clock.now()
    offer = await _own_offer(session, offer_id, me)
    if offer.status != "pending" or not await _answer(session, offer, "declined", now):
        await session.refresh(offer)
        raise _closed(offer)
    await session.refresh(offer)
    item = await session.get(RoutingItem, offer.conversation_id)
    waited = None
    if item is not None:
        waited = (now - item.arrived_at).total_seconds()
        if item.offer_id == offer.id and item.state == "offered":
            item.state = "waiting"
            item.agent_id = None
            item.offer_id = None
            item.updated_at = now
    queue_name = await session.scalar(select(Queue.name).where(Queue.id == offer.queue_id)) if offer.queue_id else None
    await session.execute(
        insert(RoutingDecision).values(
            decision_row(
                offer.conversation_id,
                "declined",
                now,
                reason="the agent declined the offer",
                queue_id=offer.queue_id,
                queue_name=queue_name,
                agent_id=me,
                waited_seconds=waited,
                offer_id=offer.id,
            )
        )
    )
    await session.flush()
    await forward(session, "conversation", conversation_id=offer.conversation_id)
    publish_after_commit(
        session,
        f"user:{me}",
        EVENT_OFFER_WITHDRAWN,
        {"offer_id": str(offer.id), "conversation_id": str(offer.conversation_id), "reason": "you declined it"},
    )
    return (await _offer_views(session, [offer], now))[0]


# -- capacity shifts and the queue state -----------------------------------------------------


def shift_view(shift: CapacityShift, queue_name: str | None = None) -> s.ShiftOut:
    return s.ShiftOut(
        id=shift.id,
        queue_id=shift.queue_id,
        queue_name=queue_name,
        direction=shift.direction,
        channels=list(shift.channels or []),
        agent_ids=[uuid.UUID(str(a)) for a in shift.agent_ids or []],
        projected_service_level=shift.projected_service_level,
        target=shift.target,
        reason=shift.reason,
        at=shift.at,
    )


async def list_shifts(session: AsyncSession, queue_id: uuid.UUID | None, limit: int) -> list[s.ShiftOut]:
    stmt = select(CapacityShift, Queue.name).join(Queue, Queue.id == CapacityShift.queue_id)
    if queue_id is not None:
        stmt = stmt.where(CapacityShift.queue_id == queue_id)
    rows = await session.execute(stmt.order_by(CapacityShift.at.desc(), CapacityShift.id.desc()).limit(limit))
    return [shift_view(sh, name) for sh, name in rows]


async def shifts_in_effect(session: AsyncSession) -> dict[uuid.UUID, CapacityShift]:
    """The latest shift per queue, where that is a shift ``to`` the queue (not yet returned)."""
    latest: dict[uuid.UUID, CapacityShift] = {}
    for sh in (await session.scalars(select(CapacityShift).order_by(CapacityShift.at, CapacityShift.id))).all():
        latest[sh.queue_id] = sh
    return {qid: sh for qid, sh in latest.items() if sh.direction == "to"}


@dataclass
class AgentConfig:
    """What routing knows of an agent (for the leader and the state view)."""

    user_id: uuid.UUID
    name: str
    skills: dict[str, int]
    teams: frozenset[str]
    max_per_channel: dict[str, int]
    budget: int
    cost: dict[str, int]
    blocks: dict[str, list[str]]
    after_call_work_seconds: int
    presence: str
    since: datetime | None
    until: datetime | None
    missed_offers: int


async def agent_configs(session: AsyncSession, user_ids: Iterable[uuid.UUID] | None = None) -> list[AgentConfig]:
    """Every active user (or those of ``user_ids``, active or not) with skills, teams, profile and presence."""
    stmt = select(User.id, User.name, User.is_active)
    if user_ids is None:
        stmt = stmt.where(User.is_active.is_(True))
    else:
        ids = list(user_ids)
        if not ids:
            return []
        stmt = stmt.where(User.id.in_(ids))
    users = (await session.execute(stmt.order_by(User.id))).all()
    if not users:
        return []
    uids = [u[0] for u in users]
    many = len(uids) > 500  # then read whole tables instead of a long IN list

    def scope(column: Any) -> Any:
        return true() if many else column.in_(uids)

    skills: dict[uuid.UUID, dict[str, int]] = defaultdict(dict)
    for uid, sid, level in await session.execute(
        select(AgentSkill.user_id, AgentSkill.skill_id, AgentSkill.level).where(scope(AgentSkill.user_id))
    ):
        skills[uid][str(sid)] = level
    teams: dict[uuid.UUID, set[str]] = defaultdict(set)
    for tid, uid in await session.execute(
        select(TeamMember.team_id, TeamMember.user_id).where(scope(TeamMember.user_id))
    ):
        teams[uid].add(str(tid))
    profiles = {
        p.user_id: p for p in (await session.scalars(select(RoutingProfile).where(scope(RoutingProfile.user_id)))).all()
    }
    presence = {
        p.user_id: p for p in (await session.scalars(select(AgentPresence).where(scope(AgentPresence.user_id)))).all()
    }
    out = []
    for uid, name, active in users:
        p = profiles.get(uid)
        pr = presence.get(uid)
        out.append(
            AgentConfig(
                user_id=uid,
                name=name,
                skills=skills.get(uid, {}),
                teams=frozenset(teams.get(uid, set())),
                max_per_channel=dict(p.max_per_channel if p else DEFAULT_PROFILE["max_per_channel"]),
                budget=p.budget if p else DEFAULT_PROFILE["budget"],
                cost=dict(p.cost if p else DEFAULT_PROFILE["cost"]),
                blocks={k: list(v) for k, v in (p.blocks if p else DEFAULT_PROFILE["blocks"]).items()},
                after_call_work_seconds=p.after_call_work_seconds if p else DEFAULT_PROFILE["after_call_work_seconds"],
                presence=(pr.status if pr and active else PresenceStatus.offline.value),
                since=pr.since if pr else None,
                until=pr.until if pr else None,
                missed_offers=pr.missed_offers if pr else 0,
            )
        )
    return out


async def queue_requirements(session: AsyncSession) -> dict[uuid.UUID, dict[str, int]]:
    out: dict[uuid.UUID, dict[str, int]] = defaultdict(dict)
    for qid, sid, level in await session.execute(
        select(QueueSkill.queue_id, QueueSkill.skill_id, QueueSkill.min_level)
    ):
        out[qid][str(sid)] = level
    return out


def able_for(queue: Queue, required: dict[str, int], agent: AgentConfig) -> bool:
    """The agent meets the queue's own requirements (bullseye ring 0) on one of its channels."""
    if not any(agent.max_per_channel.get(c, 0) > 0 for c in queue_channels(queue)):
        return False
    teams = {str(t) for t in queue.team_ids or []}
    if teams and not agent.teams & teams:
        return False
    return all(agent.skills.get(k, 0) >= v for k, v in required.items())


ITEMS_PER_QUEUE = 100


async def routing_state(session: AsyncSession) -> s.RoutingStateOut:
    now = clock.now()
    queues = await list_queues(session)
    required = await queue_requirements(session)
    shifts = await shifts_in_effect(session)
    status = {r.queue_id: r for r in (await session.scalars(select(RoutingQueueStatus))).all()}
    leader = await session.get(RoutingLeadership, 1)
    counts: dict[tuple[uuid.UUID, str], int] = {}
    oldest: dict[uuid.UUID, datetime] = {}
    for qid, state, n, first in await session.execute(
        select(RoutingItem.queue_id, RoutingItem.state, func.count(), func.min(RoutingItem.arrived_at))
        .where(RoutingItem.state.in_(LIVE_STATES))
        .group_by(RoutingItem.queue_id, RoutingItem.state)
    ):
        if qid is None:
            continue
        counts[(qid, state)] = n
        if state == "waiting" and first is not None:
            oldest[qid] = first
    agents = [
        a for a in await agent_configs(session) if a.presence != PresenceStatus.offline.value or a.since is not None
    ]
    load: dict[Any, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for uid, channel, n in await session.execute(
        select(Conversation.assignee_id, Conversation.channel, func.count())
        .where(Conversation.status == "open", Conversation.assignee_id.is_not(None))
        .group_by(Conversation.assignee_id, Conversation.channel)
    ):
        load[uid][channel] += n
    for uid, channel, n in await session.execute(
        select(RoutingItem.agent_id, RoutingItem.channel, func.count())
        .where(RoutingItem.state == "offered", RoutingItem.agent_id.is_not(None))
        .group_by(RoutingItem.agent_id, RoutingItem.channel)
    ):
        load[uid][channel] += n
    paused: dict[uuid.UUID, set[str]] = defaultdict(set)
    for sh in shifts.values():
        for aid in sh.agent_ids or []:
            paused[uuid.UUID(str(aid))].update(sh.channels or [])
    agent_out = []
    able_count: dict[uuid.UUID, int] = defaultdict(int)
    available_count: dict[uuid.UUID, int] = defaultdict(int)
    for a in agents:
        qids = [q.id for q in queues if able_for(q, required.get(q.id, {}), a)]
        for qid in qids:
            able_count[qid] += 1
            if a.presence == PresenceStatus.available.value:
                available_count[qid] += 1
        agent_load = {c: n for c, n in load.get(a.user_id, {}).items() if n}
        agent_out.append(
            s.AgentStateOut(
                user_id=a.user_id,
                name=a.name,
                status=a.presence,
                since=a.since,
                until=a.until,
                load=agent_load,
                budget_used=sum(a.cost.get(c, 0) * n for c, n in agent_load.items()),
                budget=a.budget,
                paused_channels=sorted(paused.get(a.user_id, set())),
                queue_ids=qids,
            )
        )
    qnames = {q.id: q.name for q in queues}
    queue_out = []
    for q in queues:
        rows = (
            await session.scalars(
                select(RoutingItem)
                .where(RoutingItem.queue_id == q.id, RoutingItem.state.in_(LIVE_STATES))
                .order_by(RoutingItem.first_in_line.desc(), RoutingItem.priority.desc(), RoutingItem.arrived_at)
                .limit(ITEMS_PER_QUEUE)
            )
        ).all()
        st = status.get(q.id)
        in_effect = shifts.get(q.id)
        queue_out.append(
            s.QueueStateOut(
                id=q.id,
                name=q.name,
                channels=queue_channels(q),
                priority=q.priority,
                service_level_percent=q.service_level_percent,
                service_level_seconds=q.service_level_seconds,
                waiting=counts.get((q.id, "waiting"), 0),
                offered=counts.get((q.id, "offered"), 0),
                oldest_wait_seconds=round((now - oldest[q.id]).total_seconds(), 3) if q.id in oldest else 0.0,
                projected_service_level=st.projected_service_level if st else None,
                able_agents=able_count.get(q.id, 0),
                available_agents=available_count.get(q.id, 0),
                shift=shift_view(in_effect, q.name) if in_effect else None,
                items=[
                    s.WaitingItemOut(
                        conversation_id=i.conversation_id,
                        channel=i.channel,
                        state=i.state,
                        priority=i.priority,
                        vip=i.vip,
                        at_risk=i.at_risk,
                        sla_breach_soon=i.sla_breach_soon,
                        first_in_line=i.first_in_line,
                        arrived_at=i.arrived_at,
                        waited_seconds=round(max(0.0, (now - i.arrived_at).total_seconds()), 3),
                        agent_id=i.agent_id,
                        customer_name=i.customer_name,
                        rule=i.rule,
                    )
                    for i in rows
                ],
            )
        )
    return s.RoutingStateOut(
        at=now,
        leader=(
            s.LeaderOut(
                holder=leader.holder,
                epoch=leader.epoch,
                acquired_at=leader.acquired_at,
                heartbeat_at=leader.heartbeat_at,
            )
            if leader is not None
            else None
        ),
        queues=queue_out,
        agents=agent_out,
        shifts=[shift_view(sh, qnames.get(sh.queue_id)) for sh in shifts.values()],
    )
