"""Queueing: a conversation enters a queue, moves to another, or leaves routing.

* :meth:`_route_new` picks the queue (the conversation's own, the first matching rule, or the
  general queue for its channel; otherwise ``unrouted``), the item's priority and boosts, and logs
  why;
* :meth:`_move` moves a live item to another queue keeping its place in time (transfer, overflow);
* :meth:`_leave` takes it out, withdrawing its offer;
* :meth:`_claim` closes pending offers in the database first, so an answer that committed
  meanwhile wins over the leader.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.models.routing import RoutingItem, RoutingOffer
from frontdesk.routing import core, rules
from frontdesk.routing.memory import Meta, _dt, _ts
from frontdesk.routing.persistence import Writes
from frontdesk.routing.rebuild import Rebuild


class Queueing(Rebuild):
    """Putting items in queues, moving them and taking them out."""

    def _base_priority(self, meta: Meta, queue_id: str) -> int:
        for r in self.rules:
            if r.name == meta.rule and r.queue_id == queue_id and r.priority is not None:
                return r.priority
        return self.queues[queue_id].priority

    async def _route_new(
        self,
        cid: str,
        c: Any,
        tags: set[str],
        last_agent: dict[uuid.UUID, str],
        arrived: datetime,
        db_item: RoutingItem | None,
        w: Writes,
        now: datetime,
    ) -> None:
        router = self.router
        assert router is not None
        if not self.queues:
            return  # routing is not set up
        segments = rules.customer_segments(c.attributes, c.satisfaction_tier)
        subject = rules.Subject(
            channel=c.channel,
            inbox_id=str(c.inbox_id) if c.inbox_id else None,
            language=c.locale,
            tags=frozenset(tags),
            segments=segments,
            attributes=dict(c.attributes or {}),
        )
        serves = {qid: q.channels for qid, q in self.queues.items()}
        queue_id: str | None = None
        rule_name: str | None = None
        base = 50
        why = ""
        named = str(c.queue_id) if c.queue_id else None
        if named is not None and named in self.queues and c.channel in serves[named]:
            queue_id, rule_name, base = named, "the conversation's queue", self.queues[named].priority
            why = "the conversation names its queue"
        else:
            rule = rules.first_match(self.rules, subject, serves)
            if rule is not None:
                queue_id, rule_name = rule.queue_id, rule.name
                base = rule.priority if rule.priority is not None else self.queues[rule.queue_id].priority
                why = f"rule {rule.name!r} matched"
            else:
                general = sorted(
                    (q for q in self.queues.values() if q.id not in self.rule_targets and c.channel in q.channels),
                    key=lambda q: (-q.priority, q.name),
                )
                if general:
                    queue_id, rule_name, base = general[0].id, "general queue", general[0].priority
                    why = f"no rule matched; {general[0].name!r} is the general queue for {c.channel}"
        if queue_id is None:
            if db_item is None or db_item.state != "unrouted":
                w.items[cid] = self._unrouted_row(c, now)
                self._decide(
                    w, cid, "unrouted", now, reason=f"no routing rule matched and no general queue serves {c.channel}"
                )
            return
        priority = rules.item_priority(base, c.priority)
        sticky = last_agent.get(c.customer_id)
        item = core.Item(
            id=cid,
            queue=queue_id,
            channel=c.channel,
            arrived_at=min(_ts(arrived), now.timestamp()),
            priority=priority,
            vip="vip" in segments,
            at_risk="at_risk" in segments,
            last_agent_id=sticky if sticky in router.agents else None,
        )
        router.add_item(item, now.timestamp())
        self.meta[cid] = Meta(queue_id, c.channel, _dt(item.arrived_at), rule_name, c.name, priority=c.priority)
        self._schedule(cid, item, now.timestamp())
        self._item_row(w, cid, now)
        if str(c.queue_id) != queue_id:
            w.conversation_queue[cid] = queue_id
        boosts = [b for b, on in (("VIP", item.vip), ("at risk", item.at_risk)) if on]
        detail = f"; priority {priority}" + (f" + {' + '.join(boosts)} boost" if boosts else "")
        self._decide(w, cid, "queued", now, reason=why + detail, rule=rule_name, queue=queue_id, waited=0.0)

    @staticmethod
    def _unrouted_row(c: Any, now: datetime) -> dict[str, Any]:
        """A conversation no rule or general queue takes: recorded, waiting for a configuration change."""
        return {
            "queue_id": None,
            "channel": c.channel,
            "state": "unrouted",
            "priority": 50,
            "vip": False,
            "at_risk": False,
            "sla_breach_soon": False,
            "first_in_line": False,
            "arrived_at": now,
            "agent_id": None,
            "offer_id": None,
            "last_agent_id": None,
            "rule": None,
            "customer_name": c.name,
            "updated_at": now,
        }

    async def _leave(
        self,
        session: AsyncSession,
        cid: str,
        why: str,
        w: Writes,
        now: datetime,
        *,
        decide: bool = True,
        claim: bool = True,
    ) -> bool:
        """Take a live item out of routing (withdrawing its offer). ``False`` if its offer was
        answered meanwhile (re-checked on the next step). ``claim=False``: the conversation and its
        offers are gone from the database; only memory is cleaned up."""
        router = self.router
        assert router is not None
        item = router.items.get(cid)
        if item is None:
            return True
        meta = self.meta.get(cid)
        waited = now.timestamp() - item.arrived_at
        if item.state is core.ItemState.offered:
            offer_id = meta.offer_id if meta else None
            if claim and offer_id is not None and not await self._claim(session, [cid], "withdrawn", now):
                self._recheck.add(cid)
                return False
            agent = item.offered_to
            router.remove_item(cid, now.timestamp())
            if decide and claim:
                self._decide(
                    w,
                    cid,
                    "withdrawn",
                    now,
                    reason=f"{why}: offer withdrawn",
                    agent=agent,
                    queue=item.queue,
                    waited=waited,
                    offer_id=offer_id,
                )
            if agent is not None:
                self._withdrawn(w, agent, cid, offer_id, why)
        else:
            router.remove_item(cid, now.timestamp())
            if decide and claim:  # a deleted conversation has no log to write to
                self._decide(w, cid, "removed", now, reason=f"left the queue: {why}", queue=item.queue, waited=waited)
        self.meta.pop(cid, None)
        return True

    async def _move(
        self, session: AsyncSession, cid: str, queue_id: str, kind: str, why: str, w: Writes, now: datetime
    ) -> None:
        """Move a live item to another queue, keeping its place in time (arrival, boosts)."""
        router = self.router
        assert router is not None
        old = router.items[cid]
        meta = self.meta[cid]
        if old.state is core.ItemState.offered and not await self._leave(session, cid, why, w, now, decide=False):
            return
        if old.state is core.ItemState.waiting:
            router.remove_item(cid, now.timestamp())
        item = core.Item(
            id=cid,
            queue=queue_id,
            channel=old.channel,
            arrived_at=old.arrived_at,
            priority=old.priority,
            vip=old.vip,
            at_risk=old.at_risk,
            sla_breach_soon=old.sla_breach_soon,
            last_agent_id=old.last_agent_id,
            first_in_line=old.first_in_line,
        )
        router.add_item(item, now.timestamp())
        self.meta[cid] = Meta(
            queue_id, meta.channel, meta.arrived_at, meta.rule, meta.customer_name, priority=meta.priority
        )
        self._schedule(cid, item, now.timestamp())
        self._item_row(w, cid, now)
        w.conversation_queue[cid] = queue_id
        self._decide(
            w,
            cid,
            kind,
            now,
            reason=f"{why}: from {self.queues[old.queue].name!r}",
            queue=queue_id,
            waited=now.timestamp() - old.arrived_at,
        )

    async def _claim(self, session: AsyncSession, cids: Iterable[str], status: str, now: datetime) -> set[str]:
        """Close the pending offers of ``cids`` in the database; the conversations whose offer WE closed."""
        offer_ids = {m.offer_id: cid for cid in cids if (m := self.meta.get(cid)) is not None and m.offer_id}
        if not offer_ids:
            return set()
        result = await session.execute(
            update(RoutingOffer)
            .where(RoutingOffer.id.in_(list(offer_ids)), RoutingOffer.status == "pending")
            .values(status=status, answered_at=now)
            .returning(RoutingOffer.id)
            .execution_options(synchronize_session=False)
        )
        return {offer_ids[oid] for oid in result.scalars()}
