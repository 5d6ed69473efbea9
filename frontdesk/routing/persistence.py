"""Persistence: the outcome of one leader step, written in ONE fenced transaction.

A step collects everything it decided in a :class:`Writes` (item rows, offers, decisions, capacity
shifts, presence, missed-offer counts, the conversations' routed queue and auto-accepted
assignee, queue status snapshots, the inbox rows handled, the heartbeat) and :meth:`_write`
writes it with a few batched Core statements, the assignments through
``conversations.assignment.assign_routed``. The transaction ends with the fencing check
(``leadership.fence``: ``SELECT epoch … FOR SHARE``), so a leader that was replaced cannot
commit. Pushes (``routing.offer``, ``routing.offer_withdrawn``, ``routing.capacity_shift``,
``agent.presence``, ``conversation.updated``) are released only after the commit.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.bus import emit
from frontdesk.conversations import assignment
from frontdesk.db import among
from frontdesk.events import ConversationUpdated
from frontdesk.models import AgentPresence, Conversation
from frontdesk.models.routing import (
    CapacityShift,
    RoutingDecision,
    RoutingInboxEvent,
    RoutingItem,
    RoutingLeadership,
    RoutingOffer,
    RoutingQueueStatus,
)
from frontdesk.realtime import publish_after_commit
from frontdesk.routing import decisions, names
from frontdesk.routing.leadership import fence
from frontdesk.routing.memory import LeaderState, _uuid


@dataclass
class Writes:
    """Everything one step writes, in one transaction."""

    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    offers: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    shifts: list[dict[str, Any]] = field(default_factory=list)
    presence: dict[str, dict[str, Any]] = field(default_factory=dict)
    missed: dict[str, int] = field(default_factory=dict)
    conversation_queue: dict[str, str] = field(default_factory=dict)
    assign: dict[str, tuple[str, str]] = field(default_factory=dict)  # conversation -> (agent, queue)
    publishes: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    inbox_done: list[int] = field(default_factory=list)
    heartbeat: bool = False

    def any(self) -> bool:
        return bool(
            self.heartbeat
            or self.items
            or self.offers
            or self.decisions
            or self.shifts
            or self.presence
            or self.missed
            or self.conversation_queue
            or self.assign
            or self.statuses
            or self.inbox_done
            or self.publishes  # e.g. "available again" when after-call work ends: a push only after commit
        )


class Persistence(LeaderState):
    """Rows and pushes for a step's :class:`Writes`, and the write itself."""

    def _item_row(
        self,
        w: Writes,
        cid: str,
        now: datetime,
        *,
        state: str | None = None,
        agent: str | None = None,
        offer_id: uuid.UUID | None = None,
    ) -> None:
        """The ``routing_items`` row of a live item as the core now sees it."""
        router = self.router
        assert router is not None
        item = router.items[cid]
        meta = self.meta[cid]
        w.items[cid] = {
            "queue_id": uuid.UUID(item.queue),
            "channel": item.channel,
            "state": state or item.state.value,
            "priority": item.priority if item.priority is not None else self.queues[item.queue].priority,
            "vip": item.vip,
            "at_risk": item.at_risk,
            "sla_breach_soon": item.sla_breach_soon,
            "first_in_line": item.first_in_line,
            "arrived_at": meta.arrived_at,
            "agent_id": _uuid(agent or item.offered_to),
            "offer_id": offer_id or meta.offer_id,
            "last_agent_id": _uuid(item.last_agent_id),
            "rule": meta.rule,
            "customer_name": meta.customer_name,
            "updated_at": now,
        }

    def _decide(
        self,
        w: Writes,
        cid: str,
        kind: str,
        now: datetime,
        *,
        reason: str,
        agent: str | None = None,
        rule: str | None = None,
        queue: str | None = None,
        waited: float | None = None,
        offer_id: uuid.UUID | None = None,
    ) -> None:
        router = self.router
        if queue is None and router is not None and cid in router.items:
            queue = router.items[cid].queue
        if waited is None and router is not None and cid in router.items:
            waited = now.timestamp() - router.items[cid].arrived_at
        w.decisions.append(
            decisions.decision_row(
                uuid.UUID(cid),
                kind,
                now,
                reason=reason,
                queue_id=_uuid(queue),
                queue_name=self.queues[queue].name if queue in self.queues else None,
                agent_id=_uuid(agent),
                rule=rule,
                waited_seconds=waited,
                offer_id=offer_id,
            )
        )

    def _withdrawn(self, w: Writes, agent: str, cid: str, offer_id: uuid.UUID | None, reason: str) -> None:
        if offer_id is None:
            return
        w.publishes.append(
            (
                f"user:{agent}",
                names.EVENT_OFFER_WITHDRAWN,
                {"offer_id": str(offer_id), "conversation_id": cid, "reason": reason},
            )
        )

    def _presence_events(
        self, aid: str, status: str, since: datetime, reason: str | None
    ) -> list[tuple[str, str, dict[str, Any]]]:
        data = {"user_id": aid, "status": status, "since": since.isoformat(), "reason": reason}
        return [(names.DESK_TOPIC, names.EVENT_PRESENCE, data), (f"user:{aid}", names.EVENT_PRESENCE, data)]

    # -- the write ------------------------------------------------------------------------

    async def _write(self, session: AsyncSession, w: Writes, now: datetime) -> None:
        """Write one step's results, then check the fencing token under a share lock."""
        dialect = session.get_bind().dialect.name
        if w.items:
            table = RoutingItem.__table__
            rows = [{"conversation_id": uuid.UUID(cid), **values} for cid, values in w.items.items()]
            full = [r for r in rows if "queue_id" in r]
            partial = [r for r in rows if "queue_id" not in r]
            if full:
                ins: Any = (pg_insert if dialect == "postgresql" else sqlite_insert)(table)  # type: ignore[arg-type]
                cols = [c for c in full[0] if c != "conversation_id"]
                await session.execute(
                    ins.on_conflict_do_update(
                        index_elements=["conversation_id"], set_={c: ins.excluded[c] for c in cols}
                    ),
                    full,
                )
            for r in partial:
                cid = r.pop("conversation_id")
                await session.execute(
                    update(RoutingItem)
                    .where(RoutingItem.conversation_id == cid)
                    .values(**r)
                    .execution_options(synchronize_session=False)
                )
        if w.offers:
            await session.execute(insert(RoutingOffer), w.offers)
        if w.decisions:
            await session.execute(insert(RoutingDecision), w.decisions)
        if w.shifts:
            await session.execute(insert(CapacityShift), w.shifts)
        for aid, missed in w.missed.items():
            if aid not in w.presence:
                await session.execute(
                    update(AgentPresence)
                    .where(AgentPresence.user_id == uuid.UUID(aid))
                    .values(missed_offers=missed)
                    .execution_options(synchronize_session=False)
                )
        for aid, values in w.presence.items():
            values = {**values, "missed_offers": w.missed.get(aid, 0) if values["status"] == "away" else 0}
            await session.execute(
                update(AgentPresence)
                .where(AgentPresence.user_id == uuid.UUID(aid))
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            w.publishes.extend(self._presence_events(aid, values["status"], values["since"], values.get("reason")))
        if w.statuses:
            ins2: Any = (pg_insert if dialect == "postgresql" else sqlite_insert)(RoutingQueueStatus.__table__)  # type: ignore[arg-type]
            cols2 = ["projected_service_level", "waiting", "able_agents", "at"]
            await session.execute(
                ins2.on_conflict_do_update(index_elements=["queue_id"], set_={c: ins2.excluded[c] for c in cols2}),
                w.statuses,
            )
        await self._write_conversations(session, w, now)
        if w.inbox_done:
            await session.execute(
                delete(RoutingInboxEvent).where(among(self.db.dialect, RoutingInboxEvent.id, w.inbox_done))
            )
        if w.heartbeat:
            await session.execute(
                update(RoutingLeadership)
                .where(RoutingLeadership.id == 1)
                .values(heartbeat_at=now)
                .execution_options(synchronize_session=False)
            )
        await fence(session, self.epoch)
        for topic, type_, data in w.publishes:
            publish_after_commit(session, topic, type_, data)

    async def _write_conversations(self, session: AsyncSession, w: Writes, now: datetime) -> None:
        """Set the routed queue / the auto-accepted assignee on conversations, and tell the desks."""
        from frontdesk.conversations import service as conversations

        changed: dict[Any, list[str]] = {}
        if w.conversation_queue:
            rows = [
                {"c_id": uuid.UUID(cid), "c_queue": uuid.UUID(qid), "c_now": now}
                for cid, qid in w.conversation_queue.items()
                if cid not in w.assign
            ]
            if rows:
                table: Any = Conversation.__table__
                await session.execute(
                    update(table)  # Core: executemany, not the ORM's bulk update by primary key
                    .where(table.c.id == bindparam("c_id"))
                    .values(queue_id=bindparam("c_queue"), updated_at=bindparam("c_now")),
                    rows,
                )
                for r in rows:
                    changed[r["c_id"]] = ["queue_id"]
        taken = await assignment.assign_routed(
            session, {uuid.UUID(cid): (uuid.UUID(agent), uuid.UUID(qid)) for cid, (agent, qid) in w.assign.items()}, now
        )
        for cid in w.assign:
            if uuid.UUID(cid) in taken:
                changed[uuid.UUID(cid)] = ["assignee_id", "queue_id"]
            else:
                self._recheck.add(cid)  # assigned or closed meanwhile: the next step reconciles
        if not changed:
            return
        found = (
            await session.scalars(
                select(Conversation)
                .where(among(self.db.dialect, Conversation.id, changed))
                .execution_options(populate_existing=True)
            )
        ).all()
        for view in await conversations.conversation_views(session, found):
            emit(session, ConversationUpdated(conversation=view, changes=tuple(changed[view.id]), by="routing"))
