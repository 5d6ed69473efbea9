"""The leader's own timers: after-call work ending, bullseye rings, "about to breach", overflow,
and the disconnect grace.

They are heaps in memory, looked at in every step (``step.py``), and not rows of the shared
due-work table (``frontdesk/timers.py``): each is derived from state the leader already rebuilds
from the database (an item's arrival and its queue's settings, an agent's ``until``), its effect
is a change to the core's memory that must be written in the step's fenced transaction, and it
must fire within a tick (0.25 s). docs/architecture/routing.md, "The leader's timers", says why
in full.

* :meth:`_schedule` sets an item's ring, "about to breach" and overflow timers when it enters a
  queue (a timer set in one queue is void after a move: each carries its queue);
* :meth:`_after_call_work` starts an agent's after-call work when a call ends;
* :meth:`_timers` fires what is due: presence back to available, offline after the grace,
  a decision row per widened ring, the +20 boost, the move to the overflow queue.
"""

from __future__ import annotations

import heapq
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.models import AgentPresence
from frontdesk.routing import core
from frontdesk.routing.persistence import Persistence, Writes

SLA_SOON = 0.8  # an item that waited this share of its queue's target answer time gets the boost


def _ring_words(ring: dict[str, Any]) -> str:
    if ring.get("any_agent"):
        return "any agent who serves the channel"
    parts = []
    if ring.get("level_drop"):
        parts.append(f"skill levels lowered by {ring['level_drop']}")
    if ring.get("add_team_ids"):
        parts.append(f"{len(ring['add_team_ids'])} backup team(s) added")
    return ", ".join(parts) or "no change"


class LeaderTimers(Persistence):
    """Setting and firing the leader's timers."""

    def _schedule(self, cid: str, item: core.Item, t: float) -> None:
        spec = self.queues[item.queue]
        waited = t - item.arrived_at
        for i, ring in enumerate(spec.rings):
            due = item.arrived_at + float(ring.get("after_seconds", 0))
            if waited < float(ring.get("after_seconds", 0)):
                heapq.heappush(self._rings, (due, cid, i + 1, spec.id))
        if not item.sla_breach_soon:
            heapq.heappush(self._sla, (item.arrived_at + SLA_SOON * spec.sl_seconds, cid, spec.id))
        if spec.overflow_to and spec.overflow_after:
            heapq.heappush(self._overflow, (item.arrived_at + spec.overflow_after, cid, spec.id))

    # -- timers ---------------------------------------------------------------------------

    async def _timers(self, session: AsyncSession, w: Writes, now: datetime) -> None:
        router = self.router
        assert router is not None
        t = now.timestamp()
        while self._acw and self._acw[0][0] <= t:
            _, aid = heapq.heappop(self._acw)
            result: Any = await session.execute(
                update(AgentPresence)
                .where(
                    AgentPresence.user_id == uuid.UUID(aid),
                    AgentPresence.status == "after_call_work",
                    AgentPresence.until <= now,
                )
                .values(status="available", since=now, until=None, reason="after-call work ended", missed_offers=0)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount and aid in router.agents:
                router.agent_presence(aid, core.Presence.available, t)
                w.publishes.extend(self._presence_events(aid, "available", now, "after-call work ended"))
        for aid, due in list(self._disconnects.items()):
            if due > t:
                continue
            del self._disconnects[aid]
            agent = router.agents.get(aid)
            if agent is None or agent.presence is core.Presence.offline:
                continue
            w.presence[aid] = {"status": "offline", "since": now, "until": None, "reason": "disconnected"}
            await self._set_core_presence(session, aid, core.Presence.offline, "the agent disconnected", w, now)
        while self._rings and self._rings[0][0] <= t:
            _, cid, ring, qid = heapq.heappop(self._rings)
            item = router.items.get(cid)
            if item is None or item.queue != qid or item.state is not core.ItemState.waiting:
                continue
            spec = self.queues[item.queue]
            if ring > len(spec.rings):
                continue
            self._decide(
                w,
                cid,
                "expanded",
                now,
                reason=f"waited {t - item.arrived_at:.0f}s: bullseye ring {ring} ({_ring_words(spec.rings[ring - 1])})",
                queue=item.queue,
                waited=t - item.arrived_at,
            )
        while self._sla and self._sla[0][0] <= t:
            _, cid, qid = heapq.heappop(self._sla)
            item = router.items.get(cid)
            if item is None or item.queue != qid or item.sla_breach_soon:
                continue
            router.set_boosts(cid, t, sla_breach_soon=True)
            self._item_row(w, cid, now)
            spec = self.queues[item.queue]
            self._decide(
                w,
                cid,
                "priority_raised",
                now,
                reason=f"about to miss the {spec.sl_seconds}s service-level target: "
                f"+{core.BOOST_SLA_BREACH_SOON:g} priority",
                queue=item.queue,
                waited=t - item.arrived_at,
            )
        while self._overflow and self._overflow[0][0] <= t:
            due, cid, qid = heapq.heappop(self._overflow)
            item = router.items.get(cid)
            if item is None or item.queue != qid:
                continue
            if item.state is not core.ItemState.waiting:
                heapq.heappush(self._overflow, (t + 1.0, cid, qid))  # with an agent now; look again later
                break
            spec = self.queues[qid]
            target = spec.overflow_to
            if target is None or target not in self.queues or item.channel not in self.queues[target].channels:
                continue
            await self._move(
                session, cid, target, "overflowed", f"waited over {spec.overflow_after}s in {spec.name!r}", w, now
            )

    def _after_call_work(self, aid: str, w: Writes, now: datetime) -> None:
        """A call ended: the agent wraps up for their after-call work time before the next offer."""
        router = self.router
        assert router is not None
        agent = router.agents.get(aid)
        seconds = self.acw_seconds.get(aid, 0)
        if agent is None or seconds <= 0 or agent.presence is not core.Presence.available:
            return
        until = now + timedelta(seconds=seconds)
        router.agent_presence(aid, core.Presence.after_call_work, now.timestamp())
        heapq.heappush(self._acw, (until.timestamp(), aid))
        w.presence[aid] = {"status": "after_call_work", "since": now, "until": until, "reason": "call ended"}
