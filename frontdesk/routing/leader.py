"""The routing leader: the one process that decides, feeding the pure core and persisting its decisions.

Every ``frontdesk serve`` process runs a :class:`RoutingLeader`; exactly one of them leads:

* PostgreSQL: ``pg_try_advisory_lock`` on a dedicated connection held for the leader's life (the
  lock dies with the connection, so a killed leader frees it at once); the others retry every
  ``lock_retry`` seconds. The leader also ``LISTEN``s on that connection for ``frontdesk_routing``.
* SQLite (embedded): an exclusive ``flock`` on ``<database file>.routing-lock``.

On taking over, the leader bumps ``routing_leadership.epoch`` (a fencing token) and rebuilds the
core from the database: queues, agents (skills, teams, profile, presence), the conversations they
hold, the waiting and offered items, recent declines, capacity shifts in effect. Then it loops:

1. read the ``routing_inbox`` (rows every process writes in the same transaction as a change);
2. reconcile each named conversation / agent against the database (idempotent: the row says what
   is true, the core is brought in line);
3. expire offers (claimed in the database first, so an accept that committed meanwhile wins);
4. its own timers: after-call work ending, bullseye rings, "about to breach", overflow, disconnects;
5. one decision cycle of the core (offers, capacity shifts);
6. write everything in ONE transaction that ends with ``SELECT epoch … FOR SHARE``: a leader that
   was replaced cannot commit. Pushes (``routing.offer``…) go out after the commit.

Any error in a step rolls it back and rebuilds the core from the database, so memory never drifts
from the truth. See docs/architecture/routing.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import heapq
import logging
import os
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk import clock
from frontdesk.bus import emit
from frontdesk.db import Database
from frontdesk.events import ConversationUpdated
from frontdesk.ids import new_id
from frontdesk.models import AgentPresence, Conversation, ConversationTag, Customer, Queue
from frontdesk.models.routing import (
    CapacityShift,
    RoutingDecision,
    RoutingInboxEvent,
    RoutingItem,
    RoutingLeadership,
    RoutingOffer,
    RoutingQueueStatus,
    RoutingRule,
)
from frontdesk.realtime import publish_after_commit
from frontdesk.routing import core, rules, service
from frontdesk.settings import Settings
from frontdesk.timers import worker_name

log = logging.getLogger(__name__)

LOCK_KEY = 0x46445F524F555445  # "FD_ROUTE": the advisory lock every process competes for
INBOX_BATCH = 500
SLA_SOON = 0.8  # an item that waited this share of its queue's target answer time gets the boost
STATUS_EVERY = 5.0  # seconds between queue status snapshots
HEARTBEAT_EVERY = 10.0

RULE_WORDS = {
    "sticky": "the customer's last agent",
    "best_skill_longest_idle": "highest skill, then longest idle",
    "best_skill_least_occupied": "highest skill, then least occupied",
}


class LeadershipLost(RuntimeError):
    """Another process leads now (its epoch is newer), or our lock connection died."""


def _ts(at: datetime) -> float:
    return clock.ensure_utc(at).timestamp()


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _uuid(value: str | None) -> uuid.UUID | None:
    return uuid.UUID(value) if value else None


@dataclass
class QueueSpec:
    id: str
    name: str
    channels: list[str]
    priority: int
    sl_percent: int
    sl_seconds: int
    auto_accept: bool
    rings: list[dict[str, Any]]
    overflow_to: str | None
    overflow_after: int | None


@dataclass
class Meta:
    """What the leader keeps about a live item besides the core's :class:`core.Item`."""

    queue_id: str
    channel: str
    arrived_at: datetime
    rule: str | None
    customer_name: str | None
    offer_id: uuid.UUID | None = None
    priority: str = "normal"  # the conversation's (low, normal, high, urgent)


@dataclass
class _Writes:
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
        channels=frozenset(service.queue_channels(q)),
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


def core_capacity(a: service.AgentConfig) -> core.Capacity:
    return core.Capacity(
        max_per_channel={k: int(v) for k, v in a.max_per_channel.items()},
        budget=int(a.budget),
        cost={k: int(v) for k, v in a.cost.items()},
        blocks={k: frozenset(v) for k, v in a.blocks.items()},
    )


def _ring_words(ring: dict[str, Any]) -> str:
    if ring.get("any_agent"):
        return "any agent who serves the channel"
    parts = []
    if ring.get("level_drop"):
        parts.append(f"skill levels lowered by {ring['level_drop']}")
    if ring.get("add_team_ids"):
        parts.append(f"{len(ring['add_team_ids'])} backup team(s) added")
    return ", ".join(parts) or "no change"


class RoutingLeader:
    """Competes for leadership; while it leads, runs :meth:`step` every ``tick`` seconds (or on a wake-up)."""

    def __init__(self, db: Database, settings: Settings, *, name: str | None = None) -> None:
        self.db = db
        self.name = name or worker_name()
        self.tick = settings.routing_tick_seconds
        self.lock_retry = settings.routing_lock_retry_seconds
        self.grace = settings.routing_disconnect_grace_seconds
        self.max_missed = settings.routing_max_missed_offers
        self.is_leader = False
        self.epoch = 0
        self.ready = asyncio.Event()
        self.router: core.Router | None = None
        self._failures = 0
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._pg: Any = None  # asyncpg connection holding the advisory lock
        self._lock_fd: int | None = None
        self._reset()

    def _reset(self) -> None:
        self.meta: dict[str, Meta] = {}
        self.held: dict[str, tuple[str, str]] = {}  # conversation -> (agent, channel)
        self.queues: dict[str, QueueSpec] = {}
        self.rules: list[rules.RuleSpec] = []
        self.rule_targets: set[str] = set()
        self.acw_seconds: dict[str, int] = {}
        # (due, conversation, ring number | -, queue): a timer set in one queue is void after a move
        self._rings: list[tuple[float, str, int, str]] = []
        self._sla: list[tuple[float, str, str]] = []
        self._overflow: list[tuple[float, str, str]] = []
        self._acw: list[tuple[float, str]] = []
        self._disconnects: dict[str, float] = {}
        self._sockets: dict[str, int] = {}  # open desk sockets per agent (as far as this leader heard)
        self._recheck: set[str] = set()
        self._repairs: list[str] = []
        self._status: dict[str, tuple[float, int, int]] = {}
        self._status_at = 0.0
        self._heartbeat_at = 0.0

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self._stopping = False
        service.register_wakeup(self.wake)
        self._task = asyncio.create_task(self._run(), name="routing-leader")

    async def stop(self, timeout: float = 10.0) -> None:
        self._stopping = True
        service.unregister_wakeup(self.wake)
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None
        await self._step_down()

    def wake(self) -> None:
        self._wake.set()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    async def _run(self) -> None:
        while not self._stopping:
            try:
                if not await self._acquire():
                    await self._sleep(self.lock_retry)
                    continue
                await self._take_over()
                checked = time.monotonic()
                while not self._stopping:
                    await self.step()
                    if time.monotonic() - checked > 2.0:
                        checked = time.monotonic()
                        await self._check_lock()
                    await self._sleep(self.tick)
            except asyncio.CancelledError:
                raise
            except LeadershipLost as exc:
                log.warning("routing: leadership lost (%s)", exc)
            except Exception:
                log.exception("routing leader failed; stepping down")
            await self._step_down()
            if not self._stopping:
                await self._sleep(self.lock_retry)

    # -- the lock -------------------------------------------------------------------------

    async def _acquire(self) -> bool:
        url = make_url(self.db.url)
        if url.get_backend_name() == "postgresql":
            import asyncpg

            if self._pg is None:
                self._pg = await asyncpg.connect(
                    host=url.host or "127.0.0.1",
                    port=url.port or 5432,
                    user=url.username or "postgres",
                    password=url.password,
                    database=url.database or "postgres",
                    server_settings={"application_name": f"frontdesk-routing {self.name}"[:63]},
                )
            got = bool(await self._pg.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY))
            if got:
                await self._pg.add_listener(service.NOTIFY_CHANNEL, self._notified)
            return got
        path = url.database
        if not path or path == ":memory:":
            return True
        fd = os.open(f"{path}.routing-lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    def _notified(self, *_args: Any) -> None:
        self._wake.set()

    async def _check_lock(self) -> None:
        if self._pg is None:
            return
        try:
            await asyncio.wait_for(self._pg.fetchval("SELECT 1"), 5.0)
        except Exception as exc:
            raise LeadershipLost(f"lock connection failed: {exc!r}") from exc

    async def _step_down(self) -> None:
        was = self.is_leader
        self.is_leader = False
        self.ready.clear()
        self.router = None
        if self._pg is not None:
            conn, self._pg = self._pg, None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 5.0)
            if not conn.is_closed():
                conn.terminate()
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                os.close(self._lock_fd)
            self._lock_fd = None
        if was:
            log.info("routing: %s stepped down", self.name)

    async def _take_over(self) -> None:
        now = clock.now()
        async with self.db.transaction() as session:
            row = await session.get(RoutingLeadership, 1, with_for_update=True)
            if row is None:
                row = RoutingLeadership(id=1, epoch=1, holder=self.name, acquired_at=now, heartbeat_at=now)
                session.add(row)
            else:
                row.epoch += 1
                row.holder = self.name
                row.acquired_at = now
                row.heartbeat_at = now
            await session.flush()
            self.epoch = row.epoch
        async with self._lock:
            await self._rebuild()
            self.is_leader = True
        self.ready.set()
        log.info("routing: %s leads (epoch %d, %d items)", self.name, self.epoch, len(self.meta))

    # -- rebuilding the core from the database ----------------------------------------------

    async def _rebuild(self) -> None:
        """Read the whole routing state back from the database into a fresh core."""
        now = clock.now()
        t = now.timestamp()
        router = core.Router(max_missed_offers=self.max_missed)
        keep = (set(self._recheck), dict(self._sockets), dict(self._disconnects))
        self._reset()
        self._recheck, self._sockets, self._disconnects = keep  # what only this process heard
        async with self.db.sessionmaker() as session:
            queues = await service.list_queues(session)
            required = await service.queue_requirements(session)
            for q in queues:
                router.add_queue(core_queue(q, required.get(q.id, {})))
                self.queues[str(q.id)] = QueueSpec(
                    id=str(q.id),
                    name=q.name,
                    channels=service.queue_channels(q),
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
            for a in await service.agent_configs(session):
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
            items = (await session.scalars(select(RoutingItem).where(RoutingItem.state.in_(service.LIVE_STATES)))).all()
            priorities = dict(
                (
                    await session.execute(
                        select(Conversation.id, Conversation.priority)
                        .join(RoutingItem, RoutingItem.conversation_id == Conversation.id)
                        .where(RoutingItem.state.in_(service.LIVE_STATES))
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
            for shifted_queue, sh in (await service.shifts_in_effect(session)).items():
                if str(shifted_queue) in router.queues:
                    router.restore_shift(str(shifted_queue), sh.channels or [])
        self.router = router

    def _add_agent(self, router: core.Router, a: service.AgentConfig, idle: float) -> None:
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
        async with self.db.sessionmaker() as session:
            events = (
                await session.scalars(select(RoutingInboxEvent).order_by(RoutingInboxEvent.id).limit(INBOX_BATCH))
            ).all()
        kinds = {e.kind for e in events}
        if "config" in kinds:
            await self._rebuild()
        elif "rules" in kinds:
            async with self.db.sessionmaker() as session:
                await self._load_rules(session)
        router = self.router
        assert router is not None
        w = _Writes(inbox_done=[e.id for e in events])
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
                .where(RoutingItem.conversation_id == uuid.UUID(cid), RoutingItem.state.in_(service.LIVE_STATES))
                .values(state=state, agent_id=None, offer_id=None, updated_at=now)
                .execution_options(synchronize_session=False)
            )

    # -- reconciling agents ---------------------------------------------------------------

    async def _reconcile_agents(self, session: AsyncSession, uids: list[str], w: _Writes, now: datetime) -> None:
        if not uids:
            return
        router = self.router
        assert router is not None
        t = now.timestamp()
        for a in await service.agent_configs(session, [uuid.UUID(u) for u in uids]):
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
        w: _Writes,
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
        self, session: AsyncSession, cids: list[str], arrivals: dict[str, datetime], w: _Writes, now: datetime
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
                    .where(Conversation.id.in_(ids))
                    .execution_options(populate_existing=True)
                )
            ).all()
        }
        items = {
            str(i.conversation_id): i
            for i in (
                await session.scalars(
                    select(RoutingItem)
                    .where(RoutingItem.conversation_id.in_(ids))
                    .execution_options(populate_existing=True)
                )
            ).all()
        }
        offer_ids = [i.offer_id for i in items.values() if i.offer_id]
        offer_status = (
            dict(
                (
                    await session.execute(
                        select(RoutingOffer.id, RoutingOffer.status).where(RoutingOffer.id.in_(offer_ids))
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
                    ConversationTag.conversation_id.in_(fresh_ids)
                )
            ):
                tags[str(tag_conv)].add(tag)
            customers = {convs[c].customer_id for c in fresh}
            for customer_id, assignee in await session.execute(
                select(Conversation.customer_id, Conversation.assignee_id)
                .where(
                    Conversation.customer_id.in_(customers),
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
        w: _Writes,
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
        w: _Writes,
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
        w: _Writes,
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
        self, session: AsyncSession, cid: str, queue_id: str, kind: str, why: str, w: _Writes, now: datetime
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

    # -- timers ---------------------------------------------------------------------------

    async def _timers(self, session: AsyncSession, w: _Writes, now: datetime) -> None:
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

    def _after_call_work(self, aid: str, w: _Writes, now: datetime) -> None:
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

    # -- offers expiring ------------------------------------------------------------------

    async def _expire(self, session: AsyncSession, w: _Writes, now: datetime) -> None:
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

    def _apply_cycle(self, cycle: core.Cycle, w: _Writes, now: datetime) -> None:
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
                    service.EVENT_OFFER,
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
                    service.DESK_TOPIC,
                    service.EVENT_CAPACITY_SHIFT,
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

    def _snapshot(self, w: _Writes, now: datetime) -> None:
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

    def _item_row(
        self,
        w: _Writes,
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
        w: _Writes,
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
            service.decision_row(
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

    def _withdrawn(self, w: _Writes, agent: str, cid: str, offer_id: uuid.UUID | None, reason: str) -> None:
        if offer_id is None:
            return
        w.publishes.append(
            (
                f"user:{agent}",
                service.EVENT_OFFER_WITHDRAWN,
                {"offer_id": str(offer_id), "conversation_id": cid, "reason": reason},
            )
        )

    def _presence_events(
        self, aid: str, status: str, since: datetime, reason: str | None
    ) -> list[tuple[str, str, dict[str, Any]]]:
        data = {"user_id": aid, "status": status, "since": since.isoformat(), "reason": reason}
        return [(service.DESK_TOPIC, service.EVENT_PRESENCE, data), (f"user:{aid}", service.EVENT_PRESENCE, data)]

    # -- the write ------------------------------------------------------------------------

    async def _write(self, session: AsyncSession, w: _Writes, now: datetime) -> None:
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
            await session.execute(delete(RoutingInboxEvent).where(RoutingInboxEvent.id.in_(w.inbox_done)))
        if w.heartbeat:
            await session.execute(
                update(RoutingLeadership)
                .where(RoutingLeadership.id == 1)
                .values(heartbeat_at=now)
                .execution_options(synchronize_session=False)
            )
        epoch = await session.scalar(
            select(RoutingLeadership.epoch).where(RoutingLeadership.id == 1).with_for_update(read=True)
        )
        if epoch != self.epoch:
            raise LeadershipLost(f"epoch {epoch} is not ours ({self.epoch})")
        for topic, type_, data in w.publishes:
            publish_after_commit(session, topic, type_, data)

    async def _write_conversations(self, session: AsyncSession, w: _Writes, now: datetime) -> None:
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
        for cid, (agent, qid) in w.assign.items():
            result: Any = await session.execute(
                update(Conversation)
                .where(
                    Conversation.id == uuid.UUID(cid),
                    Conversation.status == "open",
                    Conversation.assignee_id.is_(None),
                )
                .values(assignee_id=uuid.UUID(agent), queue_id=uuid.UUID(qid), updated_at=now)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount:
                changed[uuid.UUID(cid)] = ["assignee_id", "queue_id"]
            else:
                self._recheck.add(cid)  # assigned or closed meanwhile: the next step reconciles
        if not changed:
            return
        found = (
            await session.scalars(
                select(Conversation).where(Conversation.id.in_(list(changed))).execution_options(populate_existing=True)
            )
        ).all()
        for view in await conversations.conversation_views(session, found):
            emit(session, ConversationUpdated(conversation=view, changes=tuple(changed[view.id]), by="routing"))


@contextlib.asynccontextmanager
async def standalone(settings: Settings) -> AsyncIterator[RoutingLeader]:
    """A leader with a database pool and realtime hub of its own, for ``frontdesk worker``."""
    from frontdesk.realtime import make_hub

    db = Database(settings.effective_database_url)
    hub = make_hub(settings.redis_url, prefix=settings.redis_prefix)
    await hub.start()
    db.attach_hub(hub)
    leader = RoutingLeader(db, settings)
    await leader.start()
    try:
        yield leader
    finally:
        await leader.stop()
        await hub.close()
        await db.dispose()
