"""What routing looks like now: capacity shifts and the state view (``GET /routing/state``).

Read from the rows the leader keeps up to date (``routing_items``, ``routing_queue_status``,
``routing_capacity_shifts``, ``routing_leadership``), never from its memory, so any process
answers.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk import clock
from frontdesk.models import Conversation, Queue
from frontdesk.models.enums import PresenceStatus
from frontdesk.models.routing import CapacityShift, RoutingItem, RoutingLeadership, RoutingQueueStatus
from frontdesk.routing import schemas as s
from frontdesk.routing.config import list_queues, queue_channels, queue_requirements
from frontdesk.routing.names import LIVE_STATES
from frontdesk.routing.profiles import AgentConfig, agent_configs

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
