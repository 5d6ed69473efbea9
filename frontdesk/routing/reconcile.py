"""Reconciling: bringing the core in line with the database, one conversation or agent at a time.

An inbox row only says "look at conversation X / agent Y"; the leader reads the row and brings
the core in line, so duplicate, late or reordered events are harmless. For a conversation, in
order: answers the API already committed (accept, decline) are applied first; closed, pending,
snoozed or deleted ones leave routing and free their agent (a resolved call starts after-call
work); assigned ones (by routing or a person) are held by their agent; open and unassigned ones
are queued (``queueing.py``) or follow a transfer or priority change. For an agent: skills,
teams, capacity and presence (going offline returns their unanswered offers, first in line).
"""

from __future__ import annotations

import heapq
import logging
import uuid
from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.db import among
from frontdesk.models import Conversation, ConversationTag, Customer
from frontdesk.models.routing import RoutingItem, RoutingOffer
from frontdesk.routing import core, names, profiles, rules
from frontdesk.routing.memory import _ts
from frontdesk.routing.persistence import Writes
from frontdesk.routing.queueing import Queueing
from frontdesk.routing.rebuild import core_capacity

log = logging.getLogger(__name__)


class Reconcile(Queueing):
    """Applying what the database says about conversations and agents to the core."""

    async def _repair(self, session: AsyncSession, cids: list[str], now: datetime) -> None:
        """Rows the rebuild could not take as they were (their agent or queue is gone): withdraw
        their offer; wait again (in the core) or leave routing (then re-checked)."""
        router = self.router
        assert router is not None
        ids = [uuid.UUID(c) for c in cids]
        await session.execute(
            update(RoutingOffer)
            .where(RoutingOffer.conversation_id.in_(ids), RoutingOffer.status == "pending")
            .values(status="withdrawn", answered_at=now)
            .execution_options(synchronize_session=False)
        )
        for cid in cids:
            state = "waiting" if cid in router.items else "done"
            await session.execute(
                update(RoutingItem)
                .where(RoutingItem.conversation_id == uuid.UUID(cid), RoutingItem.state.in_(names.LIVE_STATES))
                .values(state=state, agent_id=None, offer_id=None, updated_at=now)
                .execution_options(synchronize_session=False)
            )

    # -- reconciling agents ---------------------------------------------------------------

    async def _reconcile_agents(self, session: AsyncSession, uids: list[str], w: Writes, now: datetime) -> None:
        if not uids:
            return
        router = self.router
        assert router is not None
        t = now.timestamp()
        for a in await profiles.agent_configs(session, [uuid.UUID(u) for u in uids]):
            aid = str(a.user_id)
            agent = router.agents.get(aid)
            if agent is None:
                self._add_agent(router, a, t)
                continue
            self.acw_seconds[aid] = a.after_call_work_seconds
            capacity = core_capacity(a)
            if agent.skills != a.skills or agent.capacity != capacity or agent.teams != a.teams:
                router.update_agent(aid, skills=dict(a.skills), capacity=capacity, teams=frozenset(a.teams))
            try:
                presence = core.Presence(a.presence)
            except ValueError:
                presence = core.Presence.offline
            if presence is core.Presence.after_call_work and a.until is not None:
                heapq.heappush(self._acw, (_ts(a.until), aid))
            if presence is not agent.presence:
                # Idle since the moment they became available (not since the leader heard of it).
                since = _ts(a.since) if a.since is not None else now.timestamp()
                await self._set_core_presence(
                    session, aid, presence, "the agent went offline", w, now, at=min(since, now.timestamp())
                )

    async def _set_core_presence(
        self,
        session: AsyncSession,
        aid: str,
        presence: core.Presence,
        why: str,
        w: Writes,
        now: datetime,
        *,
        at: float | None = None,
    ) -> None:
        """Apply a presence change; going offline returns the agent's unanswered offers, first in line."""
        router = self.router
        assert router is not None
        agent = router.agents[aid]
        if presence is core.Presence.offline and agent.offered:
            cids = sorted(agent.offered)
            claimed = await self._claim(session, cids, "withdrawn", now)
            late = [c for c in cids if c not in claimed]
            if late:  # answered just before: apply those answers first
                await self._reconcile_conversations(session, late, {}, w, now)
        for ev in router.agent_presence(aid, presence, now.timestamp() if at is None else at):
            if ev.kind == "item.returned" and ev.item_id is not None:
                cid = ev.item_id
                meta = self.meta[cid]
                offer_id = meta.offer_id
                meta.offer_id = None
                self._item_row(w, cid, now)
                self._decide(
                    w,
                    cid,
                    "returned",
                    now,
                    reason=f"{why}: back to the queue, first in line",
                    agent=aid,
                    offer_id=offer_id,
                )
                self._withdrawn(w, aid, cid, offer_id, why)

    # -- reconciling conversations ---------------------------------------------------------

    async def _reconcile_conversations(
        self, session: AsyncSession, cids: list[str], arrivals: dict[str, datetime], w: Writes, now: datetime
    ) -> None:
        if not cids:
            return
        ids = [uuid.UUID(c) for c in cids]
        convs = {
            str(r.id): r
            for r in (
                await session.execute(
                    select(
                        Conversation.id,
                        Conversation.status,
                        Conversation.assignee_id,
                        Conversation.queue_id,
                        Conversation.channel,
                        Conversation.inbox_id,
                        Conversation.priority,
                        Conversation.customer_id,
                        Customer.name,
                        Customer.locale,
                        Customer.attributes,
                        Customer.satisfaction_tier,
                    )
                    .join(Customer, Customer.id == Conversation.customer_id)
                    .where(among(self.db.dialect, Conversation.id, ids))
                )
            ).all()
        }
        items = {
            str(i.conversation_id): i
            for i in (
                await session.scalars(
                    select(RoutingItem)
                    .where(among(self.db.dialect, RoutingItem.conversation_id, ids))
                    .execution_options(populate_existing=True)
                )
            ).all()
        }
        offer_ids = [i.offer_id for i in items.values() if i.offer_id]
        offer_status = (
            dict(
                (
                    await session.execute(
                        select(RoutingOffer.id, RoutingOffer.status).where(
                            among(self.db.dialect, RoutingOffer.id, offer_ids)
                        )
                    )
                ).all()
            )
            if offer_ids
            else {}
        )
        router = self.router
        assert router is not None
        fresh = [
            c
            for c in cids
            if c not in router.items and c in convs and convs[c].status == "open" and convs[c].assignee_id is None
        ]
        tags: dict[str, set[str]] = defaultdict(set)
        last_agent: dict[uuid.UUID, str] = {}
        if fresh:
            fresh_ids = [uuid.UUID(c) for c in fresh]
            for tag_conv, tag in await session.execute(
                select(ConversationTag.conversation_id, ConversationTag.tag).where(
                    among(self.db.dialect, ConversationTag.conversation_id, fresh_ids)
                )
            ):
                tags[str(tag_conv)].add(tag)
            customers = {convs[c].customer_id for c in fresh}
            for customer_id, assignee in await session.execute(
                select(Conversation.customer_id, Conversation.assignee_id)
                .where(
                    among(self.db.dialect, Conversation.customer_id, customers),
                    Conversation.assignee_id.is_not(None),
                    Conversation.id.not_in(fresh_ids),
                )
                .order_by(Conversation.updated_at.desc())
                .limit(10 * len(customers))
            ):
                last_agent.setdefault(customer_id, str(assignee))
        for cid in cids:
            try:
                await self._reconcile_one(
                    session,
                    cid,
                    convs.get(cid),
                    items.get(cid),
                    offer_status,
                    tags.get(cid, set()),
                    last_agent,
                    arrivals.get(cid, now),
                    w,
                    now,
                )
            except core.RoutingError:
                log.exception("routing: conversation %s could not be reconciled", cid)

    async def _reconcile_one(
        self,
        session: AsyncSession,
        cid: str,
        c: Any,
        db_item: RoutingItem | None,
        offer_status: dict[uuid.UUID, str],
        tags: set[str],
        last_agent: dict[uuid.UUID, str],
        arrived: datetime,
        w: Writes,
        now: datetime,
    ) -> None:
        router = self.router
        assert router is not None
        t = now.timestamp()
        item = router.items.get(cid)
        meta = self.meta.get(cid)
        # 1. Answers the API already committed (accept / decline) are applied to the core first.
        if item is not None and item.state is core.ItemState.offered and meta is not None and db_item is not None:
            agent = item.offered_to
            assert agent is not None
            status = offer_status.get(meta.offer_id) if meta.offer_id else None
            if status == "accepted" or (db_item.state == "assigned" and str(db_item.agent_id) == agent):
                router.accept(cid, agent, t)
                router.detach(cid)
                self.held[cid] = (agent, item.channel)
                del self.meta[cid]
                item, meta = None, None
            elif status in ("declined", "withdrawn", "timed_out") or db_item.state == "waiting":
                router.decline(cid, agent, t)
                meta.offer_id = None
        held = self.held.get(cid)
        # 2. Closed, pending, snoozed or gone: it leaves routing and frees its agent.
        if c is None or c.status != "open":
            why = "the conversation was deleted" if c is None else f"the conversation is {c.status}"
            if not await self._leave(session, cid, why, w, now, claim=c is not None):
                return
            if held is not None:
                router.agent_freed(held[0], held[1], t)
                del self.held[cid]
                if c is not None and c.status == "resolved" and held[1] == "voice":
                    self._after_call_work(held[0], w, now)
            if db_item is not None and db_item.state in ("waiting", "offered", "assigned", "unrouted"):
                w.items[cid] = {"state": "done", "agent_id": db_item.agent_id, "offer_id": None, "updated_at": now}
            return
        assignee = str(c.assignee_id) if c.assignee_id else None
        # 3. Assigned (by routing or by a person): the agent holds it.
        if assignee is not None:
            if held == (assignee, c.channel):
                return
            if held is not None:
                router.agent_freed(held[0], held[1], t)
                del self.held[cid]
            if item is not None:
                waited = t - item.arrived_at
                queue_id = item.queue
                if not await self._leave(session, cid, "assigned by a person", w, now, decide=False):
                    return
                self._decide(
                    w,
                    cid,
                    "assigned",
                    now,
                    reason="assigned by a person",
                    agent=assignee,
                    rule="manual",
                    queue=queue_id,
                    waited=waited,
                )
            if assignee in router.agents:
                router.hold(assignee, c.channel, t)
                self.held[cid] = (assignee, c.channel)
            if db_item is not None and (db_item.state != "assigned" or str(db_item.agent_id) != assignee):
                w.items[cid] = {"state": "assigned", "agent_id": c.assignee_id, "offer_id": None, "updated_at": now}
            return
        # 4. Open and unassigned.
        if held is not None:  # an agent gave it back
            router.agent_freed(held[0], held[1], t)
            del self.held[cid]
            self._decide(w, cid, "returned", now, reason="unassigned: routed again", agent=held[0])
        if item is not None and meta is not None:
            wanted = str(c.queue_id) if c.queue_id else None
            if wanted is not None and wanted != item.queue and wanted in self.queues:
                if c.channel in self.queues[wanted].channels:
                    await self._move(session, cid, wanted, "requeued", "transferred by a person", w, now)
                return
            base = self._base_priority(meta, item.queue)
            priority = rules.item_priority(base, c.priority)
            meta.priority = c.priority
            if item.priority != priority:
                item.priority = priority
                router.set_boosts(cid, t)
                self._item_row(w, cid, now)
            return
        await self._route_new(cid, c, tags, last_agent, arrived, db_item, w, now)
