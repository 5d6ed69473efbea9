"""One step of the routing leader, every tick (0.25 s) or on a wake-up.

1. read the ``routing_inbox`` (rows every process writes in the same transaction as a change;
   ``inbox.py``); a ``config`` row rebuilds the core, a ``rules`` row re-reads the rules;
2. reconcile each named conversation / agent against the database (``reconcile.py``);
3. its own timers (``leader_timers.py``);
4. expire offers (claimed in the database first, so an accept that committed meanwhile wins);
5. one decision cycle of the core (``core.Router.assign``: offers, capacity shifts), turned into
   rows, decisions and pushes; every few seconds a snapshot of each queue's projected service
   level;
6. write everything in ONE fenced transaction (``persistence.py``).

Any error in a step rolls it back and rebuilds the core from the database, so memory never drifts
from the truth; a step that fails three times in a row sets the oldest inbox row aside.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk import clock
from frontdesk.ids import new_id
from frontdesk.models.routing import RoutingInboxEvent
from frontdesk.routing import core, names
from frontdesk.routing.leadership import LeadershipLost
from frontdesk.routing.memory import _dt, _ts
from frontdesk.routing.persistence import Writes
from frontdesk.routing.reconcile import Reconcile

log = logging.getLogger(__name__)

INBOX_BATCH = 500
STATUS_EVERY = 5.0  # seconds between queue status snapshots
HEARTBEAT_EVERY = 10.0

RULE_WORDS = {
    "sticky": "the customer's last agent",
    "best_skill_longest_idle": "highest skill, then longest idle",
    "best_skill_least_occupied": "highest skill, then least occupied",
}


class Step(Reconcile):
    """:meth:`step`: the inbox, timers, expiries and one decision cycle, written at once."""

    # -- one step -------------------------------------------------------------------------

    async def step(self) -> bool:
        """Handle the inbox, timers and one decision cycle; ``False`` if this process does not lead."""
        async with self._lock:
            if not self.is_leader or self.router is None:
                return False
            try:
                await self._step()
            except LeadershipLost:
                self.is_leader = False
                self.router = None
                raise
            except Exception:
                self._failures += 1
                log.exception("routing: step failed (%d in a row); rebuilding from the database", self._failures)
                if self._failures >= 3:
                    await self._drop_oldest_event()
                await self._rebuild()
            else:
                self._failures = 0
            return True

    async def _drop_oldest_event(self) -> None:
        """A step failed three times in a row: set the oldest inbox row aside so routing goes on
        (its conversation or agent is re-checked by the next event about it)."""
        self._failures = 0
        async with self.db.transaction() as session:
            event = await session.scalar(select(RoutingInboxEvent).order_by(RoutingInboxEvent.id).limit(1))
            if event is not None:
                log.error(
                    "routing: dropping inbox event %s (%s, conversation %s, user %s) after repeated failures",
                    event.id,
                    event.kind,
                    event.conversation_id,
                    event.user_id,
                )
                await session.delete(event)

    async def _step(self) -> None:
        assert self.router is not None
        now = clock.now()
        t = now.timestamp()
        async with self.db.engine.connect() as conn:  # plain rows: no ORM objects for a read-and-delete queue
            events = (
                await conn.execute(
                    select(
                        RoutingInboxEvent.id,
                        RoutingInboxEvent.kind,
                        RoutingInboxEvent.conversation_id,
                        RoutingInboxEvent.user_id,
                        RoutingInboxEvent.created_at,
                    )
                    .order_by(RoutingInboxEvent.id)
                    .limit(INBOX_BATCH)
                )
            ).all()
        kinds = {e.kind for e in events}
        if "config" in kinds:
            await self._rebuild()
        elif "rules" in kinds:
            async with self.db.sessionmaker() as session:
                await self._load_rules(session)
        router = self.router
        assert router is not None
        w = Writes(inbox_done=[e.id for e in events])
        arrivals: dict[str, datetime] = {}
        conversations: list[str] = []
        agents: list[str] = []
        for e in events:
            if e.kind == "conversation" and e.conversation_id is not None:
                cid = str(e.conversation_id)
                if cid not in arrivals:
                    conversations.append(cid)
                    arrivals[cid] = e.created_at
            elif e.kind == "agent" and e.user_id is not None:
                if str(e.user_id) not in agents:
                    agents.append(str(e.user_id))
            elif e.kind == "disconnected" and e.user_id is not None:
                uid = str(e.user_id)
                self._sockets[uid] = max(0, self._sockets.get(uid, 0) - 1)
                if not self._sockets[uid]:  # the last desk of this agent closed
                    self._disconnects[uid] = _ts(e.created_at) + self.grace
            elif e.kind == "connected" and e.user_id is not None:
                uid = str(e.user_id)
                self._sockets[uid] = self._sockets.get(uid, 0) + 1
                self._disconnects.pop(uid, None)
        for cid in self._recheck:
            if cid not in arrivals:
                conversations.append(cid)
        self._recheck = set()
        async with self.db.transaction() as session:
            if self._repairs:
                await self._repair(session, self._repairs, now)
                self._repairs = []
            await self._reconcile_agents(session, agents, w, now)
            await self._reconcile_conversations(session, conversations, arrivals, w, now)
            await self._timers(session, w, now)
            await self._expire(session, w, now)
            cycle = router.assign(t)
            self._apply_cycle(cycle, w, now)
            self._snapshot(w, now)
            mono = time.monotonic()
            if mono - self._heartbeat_at > HEARTBEAT_EVERY:
                self._heartbeat_at = mono
                w.heartbeat = True
            if w.any():
                await self._write(session, w, now)

    # -- offers expiring ------------------------------------------------------------------

    async def _expire(self, session: AsyncSession, w: Writes, now: datetime) -> None:
        router = self.router
        assert router is not None
        t = now.timestamp()
        due = router.offers_due(t)
        if not due:
            return
        cids = [cid for cid, _ in due]
        claimed = await self._claim(session, cids, "timed_out", now)
        late = [c for c in cids if c not in claimed]
        if late:  # accepted or declined just before they ran out: those answers stand
            await self._reconcile_conversations(session, late, {}, w, now)
        offer_of = {cid: self.meta[cid].offer_id for cid in cids if cid in self.meta}
        for ev in router.tick(t):
            if ev.kind == "offer.expired" and ev.item_id is not None and ev.agent_id is not None:
                cid = ev.item_id
                offer_id = offer_of.get(cid)
                if cid in self.meta:
                    self.meta[cid].offer_id = None
                self._item_row(w, cid, now)
                missed = router.agents[ev.agent_id].missed_offers if ev.agent_id in router.agents else 0
                w.missed[ev.agent_id] = missed
                self._decide(
                    w,
                    cid,
                    "timed_out",
                    now,
                    reason=f"not answered in time (missed {missed} in a row): offered to the next agent",
                    agent=ev.agent_id,
                    offer_id=offer_id,
                    waited=t - router.items[cid].arrived_at if cid in router.items else None,
                )
                self._withdrawn(w, ev.agent_id, cid, offer_id, "not answered in time")
            elif ev.kind == "agent.away" and ev.agent_id is not None:
                reason = f"missed {self.max_missed} offers in a row"
                w.presence[ev.agent_id] = {"status": "away", "since": now, "until": None, "reason": reason}
                w.missed[ev.agent_id] = router.agents[ev.agent_id].missed_offers

    # -- decisions out --------------------------------------------------------------------

    def _apply_cycle(self, cycle: core.Cycle, w: Writes, now: datetime) -> None:
        router = self.router
        assert router is not None
        for o in cycle.offers:
            cid = o.item_id
            meta = self.meta[cid]
            spec = self.queues[o.queue_id]
            offer_id = new_id()
            priority = max(1, min(999, round(o.reason.effective_priority)))
            words = RULE_WORDS.get(o.reason.rule, o.reason.rule)
            reason = (
                f"{words}: skill score {o.reason.skill_score}, effective priority {o.reason.effective_priority:.1f}"
            )
            if o.reason.ring:
                reason += f", bullseye ring {o.reason.ring}"
            if o.reason.detail:
                reason += f"; {o.reason.detail}"
            w.offers.append(
                {
                    "id": offer_id,
                    "conversation_id": uuid.UUID(cid),
                    "agent_id": uuid.UUID(o.agent_id),
                    "queue_id": uuid.UUID(o.queue_id),
                    "channel": o.channel,
                    "status": "auto_accepted" if o.auto_accepted else "pending",
                    "priority": priority,
                    "offered_at": now,
                    "expires_at": None if o.expires_at is None else _dt(o.expires_at),
                    "answered_at": now if o.auto_accepted else None,
                }
            )
            if o.auto_accepted:
                self._item_row(w, cid, now, state="assigned", agent=o.agent_id, offer_id=offer_id)
                router.detach(cid)
                self.held[cid] = (o.agent_id, o.channel)
                del self.meta[cid]
                w.assign[cid] = (o.agent_id, o.queue_id)
                self._decide(
                    w,
                    cid,
                    "assigned",
                    now,
                    reason=f"auto-accept queue; {reason}",
                    agent=o.agent_id,
                    rule=o.reason.rule,
                    queue=o.queue_id,
                    waited=o.reason.waited_s,
                    offer_id=offer_id,
                )
                continue
            meta.offer_id = offer_id
            self._item_row(w, cid, now)
            self._decide(
                w,
                cid,
                "offered",
                now,
                reason=reason,
                agent=o.agent_id,
                rule=o.reason.rule,
                queue=o.queue_id,
                waited=o.reason.waited_s,
                offer_id=offer_id,
            )
            assert o.expires_at is not None
            w.publishes.append(
                (
                    f"user:{o.agent_id}",
                    names.EVENT_OFFER,
                    {
                        "offer_id": str(offer_id),
                        "conversation_id": cid,
                        "channel": o.channel,
                        "queue_id": o.queue_id,
                        "queue_name": spec.name,
                        "customer_name": meta.customer_name,
                        "priority": meta.priority,
                        "effective_priority": priority,
                        "expires_at": _dt(o.expires_at).isoformat(),
                        "seconds": max(0, round(o.expires_at - o.at)),
                    },
                )
            )
        for sh in cycle.shifts:
            direction = "to" if sh.kind == "shift" else "back"
            row = {
                "id": new_id(),
                "queue_id": uuid.UUID(sh.queue_id),
                "direction": direction,
                "channels": sorted(sh.channels),
                "agent_ids": list(sh.agent_ids),
                "projected_service_level": round(sh.projected_sl, 4),
                "target": sh.target,
                "reason": sh.reason,
                "at": now,
            }
            w.shifts.append(row)
            w.publishes.append(
                (
                    names.DESK_TOPIC,
                    names.EVENT_CAPACITY_SHIFT,
                    {
                        "id": str(row["id"]),
                        "queue_id": sh.queue_id,
                        "queue_name": self.queues[sh.queue_id].name,
                        "direction": direction,
                        "channels": row["channels"],
                        "agent_ids": row["agent_ids"],
                        "reason": sh.reason,
                        "projected_service_level": row["projected_service_level"],
                        "target": sh.target,
                        "at": now.isoformat(),
                    },
                )
            )

    def _snapshot(self, w: Writes, now: datetime) -> None:
        """Every few seconds: each queue's projected service level, for the state API."""
        router = self.router
        assert router is not None
        mono = time.monotonic()
        if mono - self._status_at < STATUS_EVERY:
            return
        self._status_at = mono
        t = now.timestamp()
        for qid, qs in router.queues.items():
            value = (round(router.projected_service_level(qid, t), 4), qs.waiting, router.able_agents(qid))
            if self._status.get(qid) != value:
                self._status[qid] = value
                w.statuses.append(
                    {
                        "queue_id": uuid.UUID(qid),
                        "projected_service_level": value[0],
                        "waiting": value[1],
                        "able_agents": value[2],
                        "at": now,
                    }
                )
