"""Rebuilding the leader's state from the database: the database is the truth, memory a copy.

On taking over (``leadership.py``), on a ``config`` inbox row and after any failed step, the
leader reads back into a fresh core: queues (and their skills), routing rules, every active agent
(skills, teams, profile, presence, missed offers; idle since their presence or their last offer),
the open assigned conversations (load), the ``waiting`` and ``offered`` items with their pending
offers (original deadlines), declines and time-outs still inside the re-decline window, and the
capacity shifts in effect. Items whose queue or agent is gone are repaired by the next step
(``reconcile._repair``). Timers are set again from the items (``leader_timers._schedule``).
"""

from __future__ import annotations

import heapq
import uuid
from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk import clock
from frontdesk.models import Conversation, Queue
from frontdesk.models.routing import RoutingDecision, RoutingItem, RoutingOffer, RoutingRule
from frontdesk.routing import config, core, names, profiles, rules, state
from frontdesk.routing.leader_timers import LeaderTimers
from frontdesk.routing.memory import Meta, QueueSpec, _ts


def core_queue(q: Queue, required: dict[str, int]) -> core.Queue:
    rings = [
        core.Ring(
            after_seconds=float(r.get("after_seconds", 0)),
            level_drop=int(r.get("level_drop", 0)),
            add_teams=frozenset(str(t) for t in r.get("add_team_ids") or []),
            any_agent=bool(r.get("any_agent")),
        )
        for r in q.bullseye or []
    ]
    return core.Queue(
        id=str(q.id),
        channels=frozenset(config.queue_channels(q)),
        required_skills=dict(required),
        priority=q.priority,
        sl_target=(q.service_level_percent / 100.0, float(q.service_level_seconds)),
        selection="least_occupied" if q.selection == "least_occupied" else "longest_idle",
        sticky_wait=float(q.sticky_wait_seconds),
        rings=rings,
        auto_accept=q.auto_accept,
        offer_timeout=float(q.offer_timeout_seconds),
        teams=frozenset(str(t) for t in q.team_ids or []),
        ageing_per_minute=float(q.ageing_per_minute),
        handle_time=float(q.handle_time_seconds),
        redecline_after=float(q.redecline_after_seconds),
    )


def core_capacity(a: profiles.AgentConfig) -> core.Capacity:
    return core.Capacity(
        max_per_channel={k: int(v) for k, v in a.max_per_channel.items()},
        budget=int(a.budget),
        cost={k: int(v) for k, v in a.cost.items()},
        blocks={k: frozenset(v) for k, v in a.blocks.items()},
    )


class Rebuild(LeaderTimers):
    """Reading the routing state back from the database."""

    async def _rebuild(self) -> None:
        """Read the whole routing state back from the database into a fresh core."""
        now = clock.now()
        t = now.timestamp()
        router = core.Router(max_missed_offers=self.max_missed)
        keep = (set(self._recheck), dict(self._sockets), dict(self._disconnects))
        self._reset()
        self._recheck, self._sockets, self._disconnects = keep  # what only this process heard
        async with self.db.sessionmaker() as session:
            queues = await config.list_queues(session)
            required = await config.queue_requirements(session)
            for q in queues:
                router.add_queue(core_queue(q, required.get(q.id, {})))
                self.queues[str(q.id)] = QueueSpec(
                    id=str(q.id),
                    name=q.name,
                    channels=config.queue_channels(q),
                    priority=q.priority,
                    sl_percent=q.service_level_percent,
                    sl_seconds=q.service_level_seconds,
                    auto_accept=q.auto_accept,
                    rings=list(q.bullseye or []),
                    overflow_to=str(q.overflow_queue_id) if q.overflow_queue_id else None,
                    overflow_after=q.overflow_after_seconds,
                )
            await self._load_rules(session)
            last_offer = dict(
                (
                    await session.execute(
                        select(RoutingOffer.agent_id, func.max(RoutingOffer.offered_at)).group_by(RoutingOffer.agent_id)
                    )
                ).all()
            )
            for a in await profiles.agent_configs(session):
                idle = max([_ts(x) for x in (a.since, last_offer.get(a.user_id)) if x is not None], default=t)
                self._add_agent(router, a, min(idle, t))
            for conv_id, assignee, channel in await session.execute(
                select(Conversation.id, Conversation.assignee_id, Conversation.channel).where(
                    Conversation.status == "open", Conversation.assignee_id.is_not(None)
                )
            ):
                aid = str(assignee)
                if aid in router.agents:
                    router.hold(aid, channel, t)
                    self.held[str(conv_id)] = (aid, channel)
            items = (await session.scalars(select(RoutingItem).where(RoutingItem.state.in_(names.LIVE_STATES)))).all()
            priorities = dict(
                (
                    await session.execute(
                        select(Conversation.id, Conversation.priority)
                        .join(RoutingItem, RoutingItem.conversation_id == Conversation.id)
                        .where(RoutingItem.state.in_(names.LIVE_STATES))
                    )
                ).all()
            )
            excluded = await self._recent_refusals(session, router, [i.conversation_id for i in items], now)
            offers = {
                o.id: o
                for o in (
                    await session.scalars(
                        select(RoutingOffer).where(RoutingOffer.id.in_([i.offer_id for i in items if i.offer_id]))
                    )
                ).all()
            }
            for it in items:
                cid = str(it.conversation_id)
                qid = str(it.queue_id) if it.queue_id else None
                if qid is None or qid not in router.queues or it.channel not in self.queues[qid].channels:
                    self._recheck.add(cid)  # its queue went away or changed: route it again
                    self._repairs.append(cid)
                    continue
                item = core.Item(
                    id=cid,
                    queue=qid,
                    channel=it.channel,
                    arrived_at=_ts(it.arrived_at),
                    priority=it.priority,
                    vip=it.vip,
                    at_risk=it.at_risk,
                    sla_breach_soon=it.sla_breach_soon,
                    last_agent_id=str(it.last_agent_id) if it.last_agent_id else None,
                    first_in_line=it.first_in_line,
                )
                item.excluded = dict(excluded.get(cid, {}))
                router.add_item(item, t)
                meta = Meta(
                    qid,
                    it.channel,
                    it.arrived_at,
                    it.rule,
                    it.customer_name,
                    priority=priorities.get(it.conversation_id, "normal"),
                )
                self.meta[cid] = meta
                offer = offers.get(it.offer_id) if it.offer_id else None
                aid = str(it.agent_id) if it.agent_id else ""
                if it.state == "offered":
                    if offer is not None and offer.status == "pending" and aid in router.agents:
                        expires = offer.expires_at or now
                        router.restore_offer(cid, aid, _ts(offer.offered_at), _ts(expires))
                        meta.offer_id = offer.id
                    else:
                        self._repairs.append(cid)  # its agent is gone: it waits again
                self._schedule(cid, item, t)
            for shifted_queue, sh in (await state.shifts_in_effect(session)).items():
                if str(shifted_queue) in router.queues:
                    router.restore_shift(str(shifted_queue), sh.channels or [])
        self.router = router

    def _add_agent(self, router: core.Router, a: profiles.AgentConfig, idle: float) -> None:
        aid = str(a.user_id)
        try:
            presence = core.Presence(a.presence)
        except ValueError:
            presence = core.Presence.offline
        router.add_agent(
            core.Agent(
                id=aid,
                skills=dict(a.skills),
                capacity=core_capacity(a),
                teams=frozenset(a.teams),
                presence=presence,
                missed_offers=a.missed_offers,
            ),
            idle,
        )
        self.acw_seconds[aid] = a.after_call_work_seconds
        if presence is core.Presence.after_call_work and a.until is not None:
            heapq.heappush(self._acw, (_ts(a.until), aid))

    async def _load_rules(self, session: AsyncSession) -> None:
        found = (
            await session.scalars(
                select(RoutingRule)
                .where(RoutingRule.enabled.is_(True))
                .order_by(RoutingRule.position, RoutingRule.created_at)
            )
        ).all()
        self.rules = [
            rules.RuleSpec(
                id=str(r.id),
                name=r.name,
                queue_id=str(r.queue_id),
                conditions=dict(r.conditions or {}),
                priority=r.priority,
                enabled=r.enabled,
            )
            for r in found
        ]
        self.rule_targets = {r.queue_id for r in self.rules}

    async def _recent_refusals(
        self, session: AsyncSession, router: core.Router, cids: list[uuid.UUID], now: datetime
    ) -> dict[str, dict[str, float]]:
        """Agents who declined or missed each item lately: not offered it again before ``redecline_after``."""
        if not cids:
            return {}
        redecline = {qid: qs.queue.redecline_after for qid, qs in router.queues.items()}
        since = now - timedelta(seconds=max(redecline.values(), default=60.0))
        out: dict[str, dict[str, float]] = defaultdict(dict)
        rows = await session.execute(
            select(
                RoutingDecision.conversation_id, RoutingDecision.agent_id, RoutingDecision.at, RoutingDecision.queue_id
            )
            .where(
                RoutingDecision.kind.in_(("declined", "timed_out")),
                RoutingDecision.at >= since,
                RoutingDecision.agent_id.is_not(None),
            )
            .order_by(RoutingDecision.at)
        )
        wanted = {str(c) for c in cids}
        for cid, aid, at, qid in rows:
            if str(cid) in wanted:
                out[str(cid)][str(aid)] = _ts(at) + redecline.get(str(qid), 60.0)
        return out
