"""The routing decision core: pure, in memory, time passed in.

State in, decisions out. Nothing here reads a clock, touches a database or imports another
Frontdesk package; the routing leader feeds events in (``add_item``, ``agent_presence``, ``accept``,
``tick`` ...) and persists what comes out (:class:`Offer`, :class:`CapacityShift`,
:class:`RoutingEvent`). ``now`` is always a float in seconds (the leader passes epoch seconds).

Indexes (so one decision costs O(log n), never O(agents x items)):

* waiting items live in one heap per *bucket* ``(queue, channel, ring)``; every item of a bucket has
  the same eligible pool, so a bucket whose head finds no agent is blocked for the rest of the cycle.
  Heap keys are static (``priority + boosts - ageing_rate * arrived_at``): ordering at any ``now``
  equals ordering by effective priority, so ageing needs no re-sorting. A second heap per bucket by
  arrival time moves items to a wider bullseye ring when their wait crosses a ring threshold.
* agents live in one heap per *pool* ``(queue, ring, channel)`` holding the statically eligible
  agents (skills, teams, channel) ranked by skill, then longest idle / least occupied. Entries are
  versioned; an agent is (re)pushed only while it can take that channel right now, so a pop is
  almost always a hit.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

Selection = Literal["longest_idle", "least_occupied"]


class Presence(StrEnum):
    available = "available"
    busy = "busy"
    away = "away"
    after_call_work = "after_call_work"
    offline = "offline"


class ItemState(StrEnum):
    waiting = "waiting"
    offered = "offered"
    assigned = "assigned"


STAFFED = frozenset({Presence.available, Presence.busy, Presence.after_call_work})

# Priority points added by an item's boosts, and per minute of waiting (ageing).
BOOST_VIP = 10.0
BOOST_AT_RISK = 10.0
BOOST_SLA_BREACH_SOON = 20.0

# Lower rank = paused first when capacity moves to a spiking queue ("email, then chat").
DEFAULT_CHANNEL_RANK: dict[str, int] = {
    "voice": 3,
    "webchat": 2,
    "whatsapp": 2,
    "telegram": 2,
    "sms": 2,
    "api": 1,
    "email": 1,
}


class RoutingError(ValueError):
    """An event that does not fit the current state (unknown id, offer not to this agent...)."""


# -- data -----------------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class Ring:
    """One bullseye ring: after ``after_seconds`` of waiting the pool widens (cumulatively)."""

    after_seconds: float
    level_drop: int = 0  # required skill levels lowered by this much (never below 1)
    add_teams: frozenset[str] = frozenset()  # a backup team joins the pool
    any_agent: bool = False  # any agent with the channel


@dataclass(slots=True)
class Queue:
    id: str
    channels: frozenset[str]
    required_skills: dict[str, int] = field(default_factory=dict)  # skill -> minimum level
    priority: int = 50  # 1..99, higher is more urgent
    sl_target: tuple[float, float] = (0.8, 20.0)  # (fraction, seconds): 80 % answered in 20 s
    selection: Selection = "longest_idle"
    sticky_wait: float = 0.0  # seconds an item waits for its last agent
    rings: list[Ring] = field(default_factory=list)
    auto_accept: bool = False
    offer_timeout: float = 30.0
    teams: frozenset[str] = frozenset()  # empty: any team
    ageing_per_minute: float = 1.0  # priority points gained per minute of waiting
    handle_time: float = 300.0  # average seconds per item, for the service-level projection
    redecline_after: float = 60.0  # an agent who declined/missed is not offered the item again for this long

    def __post_init__(self) -> None:
        if not 1 <= self.priority <= 99:
            raise RoutingError(f"queue {self.id}: priority must be 1..99")
        if not self.channels:
            raise RoutingError(f"queue {self.id}: at least one channel")
        self.rings = sorted(self.rings, key=lambda r: r.after_seconds)


@dataclass(slots=True)
class Capacity:
    """Per-channel maximum AND a shared budget with a cost per channel.

    ``blocks[active]`` lists the channels never offered while ``active`` has work (no chat during
    a call). A channel missing from ``max_per_channel`` is not served at all.
    """

    max_per_channel: dict[str, int]
    budget: int = 100
    cost: dict[str, int] = field(default_factory=dict)
    blocks: dict[str, frozenset[str]] = field(default_factory=dict)

    def slots(self, channel: str) -> int:
        """How many items of ``channel`` alone fit (for the throughput projection)."""
        cost = self.cost.get(channel, 0)
        most = self.max_per_channel.get(channel, 0)
        return most if cost <= 0 else min(most, self.budget // cost)


@dataclass(slots=True)
class Agent:
    id: str
    skills: dict[str, int]
    capacity: Capacity
    teams: frozenset[str] = frozenset()
    presence: Presence = Presence.offline
    load: dict[str, int] = field(default_factory=dict)  # channel -> offered + assigned items
    idle_since: float = 0.0  # last offer or completion; smallest is "longest idle"
    missed_offers: int = 0
    paused: dict[str, frozenset[str]] = field(default_factory=dict)  # spiking queue -> paused channels
    offered: set[str] = field(default_factory=set)  # items offered, not yet answered
    # internal
    ver: int = 0
    pools: list[Pool] = field(default_factory=list, repr=False)

    def used_budget(self) -> int:
        cost = self.capacity.cost
        return sum(cost.get(c, 0) * n for c, n in self.load.items())

    def paused_channels(self) -> set[str]:
        out: set[str] = set()
        for chans in self.paused.values():
            out |= chans
        return out

    def can_take(self, channel: str) -> bool:
        """Available, channel not paused, per-channel max, shared budget and interrupt rules."""
        if self.presence is not Presence.available:
            return False
        cap = self.capacity
        most = cap.max_per_channel.get(channel, 0)
        load = self.load
        if load.get(channel, 0) >= most:
            return False
        if self.used_budget() + cap.cost.get(channel, 0) > cap.budget:
            return False
        if cap.blocks:
            for active, n in load.items():
                if n > 0 and channel in cap.blocks.get(active, ()):
                    return False
        return not (self.paused and any(channel in p for p in self.paused.values()))


@dataclass(slots=True)
class Item:
    id: str
    queue: str
    channel: str
    arrived_at: float
    priority: int | None = None  # None: the queue's priority
    vip: bool = False
    at_risk: bool = False
    sla_breach_soon: bool = False
    last_agent_id: str | None = None
    state: ItemState = ItemState.waiting
    offered_to: str | None = None
    offer_expires_at: float | None = None
    first_in_line: bool = False  # returned by an agent who left: ahead of everything in its queue
    # internal
    ver: int = 0
    excluded: dict[str, float] = field(default_factory=dict)  # agent -> until (declined / missed)
    ring: int = 0
    offered_at: float | None = None


@dataclass(slots=True, frozen=True)
class Reason:
    """Why an item went to an agent — what the decision log stores."""

    rule: str  # "sticky" | "best_skill_longest_idle" | "best_skill_least_occupied"
    ring: int  # bullseye ring used (0 = the queue's own requirements)
    waited_s: float
    effective_priority: float
    skill_score: int
    detail: str


@dataclass(slots=True, frozen=True)
class Offer:
    item_id: str
    agent_id: str
    queue_id: str
    channel: str
    at: float
    expires_at: float | None  # None when auto-accepted
    auto_accepted: bool
    reason: Reason


@dataclass(slots=True, frozen=True)
class CapacityShift:
    """Blended agents stop (``kind="shift"``) or resume (``kind="return"``) lower-ranked channels."""

    kind: Literal["shift", "return"]
    queue_id: str
    channels: frozenset[str]
    agent_ids: tuple[str, ...]
    projected_sl: float
    target: float
    at: float
    reason: str


@dataclass(slots=True, frozen=True)
class RoutingEvent:
    """Offer expired / declined, agent set away, items returned to the queue."""

    kind: Literal["offer.expired", "offer.declined", "agent.away", "item.returned"]
    at: float
    item_id: str | None = None
    agent_id: str | None = None
    detail: str = ""


@dataclass(slots=True)
class Cycle:
    """What one ``assign(now)`` decided."""

    offers: list[Offer] = field(default_factory=list)
    shifts: list[CapacityShift] = field(default_factory=list)


# -- internal indexes ----------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class Pool:
    """Statically eligible agents for (queue, ring, channel), ranked; a lazy versioned heap."""

    queue: Queue
    ring: int
    channel: str
    scores: dict[str, int] = field(default_factory=dict)  # agent -> skill score (members)
    heap: list[tuple[int, float, float, str, int]] = field(default_factory=list)

    def push(self, agent: Agent) -> None:
        score = self.scores[agent.id]
        if self.queue.selection == "least_occupied":
            occ = agent.used_budget() / agent.capacity.budget if agent.capacity.budget else 0.0
            heapq.heappush(self.heap, (-score, occ, agent.idle_since, agent.id, agent.ver))
        else:
            heapq.heappush(self.heap, (-score, agent.idle_since, 0.0, agent.id, agent.ver))


@dataclass(slots=True, eq=False)
class Bucket:
    """Waiting items of one (queue, channel, ring): by priority, and by arrival for ring moves."""

    queue: Queue
    channel: str
    ring: int
    pool: Pool
    by_priority: list[tuple[int, float, float, int, str, int]] = field(default_factory=list)
    by_arrival: list[tuple[float, str, int]] = field(default_factory=list)


@dataclass(slots=True)
class _QueueState:
    queue: Queue
    waiting: int = 0
    throughput: float = 0.0  # items/s the staffed, able agents can clear
    able: set[str] = field(default_factory=set)  # agents statically able at ring 0
    shifted: frozenset[str] = frozenset()  # channels currently paused for this queue
    shifted_agents: tuple[str, ...] = ()


def _ring_requirements(queue: Queue, ring: int) -> tuple[dict[str, int], frozenset[str] | None]:
    """Required levels and allowed teams (None: any) at ``ring``; ring 0 is the queue itself."""
    drop = 0
    teams = set(queue.teams)
    for r in queue.rings[:ring]:
        if r.any_agent:
            return {}, None
        drop = max(drop, r.level_drop)
        teams |= r.add_teams
    levels = {s: max(1, lvl - drop) for s, lvl in queue.required_skills.items()}
    return levels, (frozenset(teams) if teams else None)


def _eligible(agent: Agent, levels: dict[str, int], teams: frozenset[str] | None, channel: str) -> bool:
    if agent.capacity.max_per_channel.get(channel, 0) <= 0:
        return False
    if teams is not None and not (agent.teams & teams):
        return False
    return all(agent.skills.get(s, 0) >= lvl for s, lvl in levels.items())


# -- the router ----------------------------------------------------------------------------


class Router:
    """All routing state in memory; every method takes ``now`` and returns what it decided."""

    def __init__(
        self,
        *,
        max_missed_offers: int = 3,
        channel_rank: dict[str, int] | None = None,
        deep_breach_margin: float = 0.2,
        shift_check_interval: float = 1.0,
    ) -> None:
        self.queues: dict[str, _QueueState] = {}
        self.agents: dict[str, Agent] = {}
        self.items: dict[str, Item] = {}
        self.max_missed_offers = max_missed_offers
        self.channel_rank = dict(DEFAULT_CHANNEL_RANK if channel_rank is None else channel_rank)
        self.deep_breach_margin = deep_breach_margin
        self.shift_check_interval = shift_check_interval
        self._buckets: dict[tuple[str, str, int], Bucket] = {}
        self._pools: dict[tuple[str, int, str], Pool] = {}
        self._expiries: list[tuple[float, str, int]] = []
        self._seq = itertools.count()
        self._next_shift_check = -math.inf
        self._pushes = 0

    # -- configuration ------------------------------------------------------------------

    def add_queue(self, queue: Queue) -> None:
        if queue.id in self.queues:
            raise RoutingError(f"queue {queue.id} exists")
        self.queues[queue.id] = _QueueState(queue)
        for ring in range(len(queue.rings) + 1):
            levels, teams = _ring_requirements(queue, ring)
            for channel in sorted(queue.channels):
                pool = Pool(queue, ring, channel)
                self._pools[(queue.id, ring, channel)] = pool
                self._buckets[(queue.id, channel, ring)] = Bucket(queue, channel, ring, pool)
                for agent in self.agents.values():
                    self._join(agent, pool, levels, teams)
        for agent in self.agents.values():
            self._refresh(agent)

    def add_agent(self, agent: Agent, now: float) -> None:
        if agent.id in self.agents:
            raise RoutingError(f"agent {agent.id} exists")
        agent.pools = []
        agent.idle_since = now
        self.agents[agent.id] = agent
        for (qid, ring, _channel), pool in self._pools.items():
            levels, teams = _ring_requirements(self.queues[qid].queue, ring)
            self._join(agent, pool, levels, teams)  # counts a staffed agent's throughput
        self._refresh(agent)

    def _join(self, agent: Agent, pool: Pool, levels: dict[str, int], teams: frozenset[str] | None) -> None:
        if not _eligible(agent, levels, teams, pool.channel):
            return
        q = pool.queue
        pool.scores[agent.id] = sum(agent.skills.get(s, 0) for s in q.required_skills)
        agent.pools.append(pool)
        if pool.ring == 0:
            qs = self.queues[q.id]
            if agent.id not in qs.able:
                qs.able.add(agent.id)
                if agent.presence in STAFFED:
                    qs.throughput += self._rate(agent, q)

    @staticmethod
    def _rate(agent: Agent, queue: Queue) -> float:
        slots = max((agent.capacity.slots(c) for c in queue.channels), default=0)
        return slots / max(queue.handle_time, 1e-9)

    def _staff(self, agent: Agent, sign: int) -> None:
        for qs in self.queues.values():
            if agent.id in qs.able:
                qs.throughput = max(0.0, qs.throughput + sign * self._rate(agent, qs.queue))

    def _refresh(self, agent: Agent) -> None:
        """Agent state changed: new version, pushed into every pool whose channel it can take now."""
        agent.ver += 1
        if agent.presence is not Presence.available:
            return
        takes: dict[str, bool] = {}
        for pool in agent.pools:
            ok = takes.get(pool.channel)
            if ok is None:
                ok = takes[pool.channel] = agent.can_take(pool.channel)
            if ok:
                pool.push(agent)
                if len(pool.heap) > 4 * len(pool.scores) + 64:
                    self._compact(pool)

    def _compact(self, pool: Pool) -> None:
        pool.heap = [e for e in pool.heap if self.agents[e[3]].ver == e[4]]
        heapq.heapify(pool.heap)

    # -- items ----------------------------------------------------------------------------

    def add_item(self, item: Item, now: float) -> None:
        """A new waiting item (or one rebuilt from the database: state waiting)."""
        if item.id in self.items:
            raise RoutingError(f"item {item.id} exists")
        qs = self.queues.get(item.queue)
        if qs is None:
            raise RoutingError(f"unknown queue {item.queue}")
        if item.channel not in qs.queue.channels:
            raise RoutingError(f"queue {item.queue} does not serve {item.channel}")
        item.state = ItemState.waiting
        item.offered_to = None
        item.offer_expires_at = None
        self.items[item.id] = item
        self._enqueue(item, now)

    def remove_item(self, item_id: str, now: float) -> Item:
        """The item left (abandoned, resolved, moved): frees its agent's capacity if it held any."""
        item = self._item(item_id)
        if item.state is ItemState.waiting:
            self.queues[item.queue].waiting -= 1
        elif item.offered_to is not None:
            self._forget_offer(item)
            self._release(item.offered_to, item.channel, now)
        item.ver += 1
        del self.items[item_id]
        return item

    def complete(self, item_id: str, now: float) -> Item:
        """The agent finished an assigned item."""
        item = self._item(item_id)
        if item.state is not ItemState.assigned:
            raise RoutingError(f"item {item_id} is not assigned")
        return self.remove_item(item_id, now)

    def set_boosts(
        self,
        item_id: str,
        now: float,
        *,
        vip: bool | None = None,
        at_risk: bool | None = None,
        sla_breach_soon: bool | None = None,
    ) -> None:
        item = self._item(item_id)
        if vip is not None:
            item.vip = vip
        if at_risk is not None:
            item.at_risk = at_risk
        if sla_breach_soon is not None:
            item.sla_breach_soon = sla_breach_soon
        if item.state is ItemState.waiting:
            self.queues[item.queue].waiting -= 1
            self._enqueue(item, now)

    def requeue(self, item_id: str, now: float) -> Item:
        """Take an offered/assigned item back from its agent; it goes first in line."""
        item = self._item(item_id)
        if item.state is ItemState.waiting:
            return item
        agent_id = item.offered_to
        assert agent_id is not None
        self._release(agent_id, item.channel, now)
        item.first_in_line = True
        item.last_agent_id = None
        self._back_to_queue(item, now)
        return item

    def effective_priority(self, item: Item, now: float) -> float:
        q = self.queues[item.queue].queue
        return self._static_priority(item, q) + q.ageing_per_minute * now / 60.0

    @staticmethod
    def _static_priority(item: Item, q: Queue) -> float:
        base = float(q.priority if item.priority is None else item.priority)
        if item.vip:
            base += BOOST_VIP
        if item.at_risk:
            base += BOOST_AT_RISK
        if item.sla_breach_soon:
            base += BOOST_SLA_BREACH_SOON
        return base - q.ageing_per_minute * item.arrived_at / 60.0

    def _ring_for(self, q: Queue, waited: float) -> int:
        ring = 0
        for i, r in enumerate(q.rings):
            if waited >= r.after_seconds:
                ring = i + 1
        return ring

    def _enqueue(self, item: Item, now: float) -> None:
        q = self.queues[item.queue].queue
        item.ver += 1
        item.state = ItemState.waiting
        item.ring = self._ring_for(q, now - item.arrived_at)
        self.queues[item.queue].waiting += 1
        self._push_bucket(item, q)

    def _push_bucket(self, item: Item, q: Queue) -> None:
        b = self._buckets[(q.id, item.channel, item.ring)]
        tier = 0 if item.first_in_line else 1
        heapq.heappush(
            b.by_priority,
            (tier, -self._static_priority(item, q), item.arrived_at, next(self._seq), item.id, item.ver),
        )
        heapq.heappush(b.by_arrival, (item.arrived_at, item.id, item.ver))
        self._pushes += 1

    def _live(self, item_id: str, ver: int) -> Item | None:
        item = self.items.get(item_id)
        if item is None or item.ver != ver or item.state is not ItemState.waiting:
            return None
        return item

    def _widen(self, now: float) -> None:
        """Move items whose wait crossed a ring threshold into the wider ring's bucket."""
        for b in self._buckets.values():
            q = b.queue
            if b.ring >= len(q.rings):
                continue
            after = q.rings[b.ring].after_seconds
            arr = b.by_arrival
            while arr and now - arr[0][0] >= after:  # the same float test as ``_ring_for``
                _, item_id, ver = heapq.heappop(arr)
                item = self._live(item_id, ver)
                if item is None or item.ring != b.ring:
                    continue
                item.ver += 1
                item.ring = self._ring_for(q, now - item.arrived_at)
                self._push_bucket(item, q)

    # -- agents ---------------------------------------------------------------------------

    def agent_presence(self, agent_id: str, presence: Presence | str, now: float) -> list[RoutingEvent]:
        """Presence change. Going offline returns the agent's unanswered offers, first in line."""
        agent = self._agent(agent_id)
        presence = Presence(presence)
        events: list[RoutingEvent] = []
        was_staffed = agent.presence in STAFFED
        if presence is Presence.available and agent.presence is not Presence.available:
            agent.idle_since = now
            agent.missed_offers = 0
        agent.presence = presence
        if was_staffed != (presence in STAFFED):
            self._staff(agent, +1 if presence in STAFFED else -1)
        if presence is Presence.offline:
            for item_id in sorted(agent.offered):
                item = self.items[item_id]
                self._release(agent_id, item.channel, now, refresh=False)
                item.first_in_line = True
                self._back_to_queue(item, now)
                events.append(RoutingEvent("item.returned", now, item.id, agent_id, "agent went offline"))
        self._refresh(agent)
        return events

    def agent_freed(self, agent_id: str, channel: str, now: float) -> None:
        """One unit of ``channel`` work the core does not track ended (capacity given back)."""
        self._release(agent_id, channel, now)

    def hold(self, agent_id: str, channel: str, now: float) -> None:
        """One unit of ``channel`` work the core does not track started (a conversation assigned by
        a person, or one handed over with :meth:`detach`); :meth:`agent_freed` ends it. No capacity
        check: a person may assign beyond the profile."""
        agent = self._agent(agent_id)
        agent.load[channel] = agent.load.get(channel, 0) + 1
        self._refresh(agent)

    def update_agent(self, agent_id: str, *, skills: dict[str, int], capacity: Capacity, teams: frozenset[str]) -> None:
        """Skills, capacity profile or teams changed: re-join the pools (presence, load and offers stay)."""
        agent = self._agent(agent_id)
        staffed = agent.presence in STAFFED
        for qs in self.queues.values():
            if agent.id in qs.able:
                if staffed:
                    qs.throughput = max(0.0, qs.throughput - self._rate(agent, qs.queue))
                qs.able.discard(agent.id)
        for pool in agent.pools:
            pool.scores.pop(agent.id, None)
        agent.pools = []
        agent.skills = dict(skills)
        agent.capacity = capacity
        agent.teams = frozenset(teams)
        for (qid, ring, _channel), pool in self._pools.items():
            levels, allowed = _ring_requirements(self.queues[qid].queue, ring)
            self._join(agent, pool, levels, allowed)
        for qid in list(agent.paused):  # a shift holds only the queue's able agents
            if agent.id not in self.queues[qid].able:
                del agent.paused[qid]
        for qs in self.queues.values():
            if qs.shifted and agent.id in qs.able:
                agent.paused[qs.queue.id] = qs.shifted - qs.queue.channels
        self._refresh(agent)

    def _release(self, agent_id: str, channel: str, now: float, *, refresh: bool = True) -> None:
        agent = self.agents.get(agent_id)
        if agent is None:
            return
        n = agent.load.get(channel, 0)
        if n <= 1:
            agent.load.pop(channel, None)
        else:
            agent.load[channel] = n - 1
        agent.idle_since = now
        if refresh:
            self._refresh(agent)

    # -- offers ---------------------------------------------------------------------------

    def accept(self, item_id: str, agent_id: str, now: float) -> Item:
        item = self._item(item_id)
        if item.state is not ItemState.offered or item.offered_to != agent_id:
            raise RoutingError(f"item {item_id} is not offered to {agent_id}")
        self._forget_offer(item)
        item.state = ItemState.assigned
        item.offer_expires_at = None
        item.last_agent_id = agent_id
        item.first_in_line = False
        item.excluded.clear()
        item.ver += 1
        self._agent(agent_id).missed_offers = 0
        return item

    def detach(self, item_id: str) -> Item:
        """Stop tracking an assigned item but keep its agent's load: the caller now holds that work
        (as after :meth:`hold`) and ends it with :meth:`agent_freed`."""
        item = self._item(item_id)
        if item.state is not ItemState.assigned:
            raise RoutingError(f"item {item_id} is not assigned")
        item.ver += 1
        del self.items[item_id]
        return item

    def restore_offer(self, item_id: str, agent_id: str, offered_at: float, expires_at: float) -> None:
        """Re-apply an offer read back from the database (rebuild): the waiting item is offered to
        ``agent_id`` until ``expires_at``, holding the agent's capacity as the original offer did."""
        item = self._item(item_id)
        if item.state is not ItemState.waiting:
            raise RoutingError(f"item {item_id} is not waiting")
        agent = self._agent(agent_id)
        self.queues[item.queue].waiting -= 1
        item.ver += 1
        item.state = ItemState.offered
        item.offered_to = agent_id
        item.offered_at = offered_at
        item.offer_expires_at = expires_at
        agent.load[item.channel] = agent.load.get(item.channel, 0) + 1
        agent.offered.add(item_id)
        heapq.heappush(self._expiries, (expires_at, item_id, item.ver))
        self._refresh(agent)

    def offers_due(self, now: float) -> list[tuple[str, str]]:
        """``(item, agent)`` of the offers :meth:`tick` would expire at ``now``, without expiring them."""
        if not self._expiries or self._expiries[0][0] > now:  # a heap: its first entry is the earliest
            return []
        due: list[tuple[str, str]] = []
        for at, item_id, ver in self._expiries:
            if at > now:
                continue
            item = self.items.get(item_id)
            if item is not None and item.ver == ver and item.state is ItemState.offered and item.offered_to:
                due.append((item_id, item.offered_to))
        return due

    def decline(self, item_id: str, agent_id: str, now: float) -> RoutingEvent:
        item = self._item(item_id)
        if item.state is not ItemState.offered or item.offered_to != agent_id:
            raise RoutingError(f"item {item_id} is not offered to {agent_id}")
        self._pass_on(item, agent_id, now)
        return RoutingEvent("offer.declined", now, item_id, agent_id)

    def _pass_on(self, item: Item, agent_id: str, now: float) -> None:
        q = self.queues[item.queue].queue
        item.excluded[agent_id] = now + q.redecline_after
        self._release(agent_id, item.channel, now)
        self._back_to_queue(item, now)

    def _back_to_queue(self, item: Item, now: float) -> None:
        self._forget_offer(item)
        item.offered_to = None
        item.offer_expires_at = None
        item.offered_at = None
        self._enqueue(item, now)

    def tick(self, now: float) -> list[RoutingEvent]:
        """Expire offers (the item goes on to the next agent); repeated misses set the agent away."""
        events: list[RoutingEvent] = []
        exp = self._expiries
        while exp and exp[0][0] <= now:
            _, item_id, ver = heapq.heappop(exp)
            item = self.items.get(item_id)
            if item is None or item.ver != ver or item.state is not ItemState.offered:
                continue
            agent_id = item.offered_to
            assert agent_id is not None
            events.append(RoutingEvent("offer.expired", now, item_id, agent_id))
            self._pass_on(item, agent_id, now)
            agent = self.agents.get(agent_id)
            if agent is not None:
                agent.missed_offers += 1
                if agent.missed_offers >= self.max_missed_offers and agent.presence is Presence.available:
                    self.agent_presence(agent_id, Presence.away, now)
                    events.append(
                        RoutingEvent("agent.away", now, None, agent_id, f"missed {agent.missed_offers} offers in a row")
                    )
        return events

    # -- the decision cycle ---------------------------------------------------------------

    def assign(self, now: float) -> Cycle:
        """One decision cycle: every waiting item that can go to an agent now gets an offer."""
        cycle = Cycle()
        if self._pushes > 2 * len(self.items) + 10_000:
            self._compact_buckets()
        if now >= self._next_shift_check:
            self._next_shift_check = now + self.shift_check_interval
            cycle.shifts = self._move_capacity(now)
        self._widen(now)
        heads: list[tuple[int, float, int, Bucket]] = []
        for b in self._buckets.values():
            if not self._pool_ready(b.pool):
                continue  # nobody can take this channel now: skip the bucket without touching items
            head = self._head(b)
            if head is not None:
                heads.append(self._rank(b, head, now))
        heapq.heapify(heads)
        held: list[tuple[Bucket, tuple[int, float, float, int, str, int]]] = []
        while heads:
            _, _, _, b = heapq.heappop(heads)
            # Re-check the pool now: higher-ranked buckets may have taken its agents this cycle.
            # A bucket with nobody left is dropped WITHOUT touching its items (no pop, no decide).
            if not self._pool_ready(b.pool):
                continue
            item = self._head(b)
            if item is None:
                continue
            entry = heapq.heappop(b.by_priority)  # the head (``_head`` left it on top)
            offer = self._decide(item, b, now)
            if offer is None:
                held.append((b, entry))  # sticky hold or excluded agents: try the next item
            else:
                cycle.offers.append(offer)
                self._trim_arrivals(b)
            head = self._head(b)
            if head is not None:
                heapq.heappush(heads, self._rank(b, head, now))
        for b, entry in held:
            heapq.heappush(b.by_priority, entry)
        return cycle

    def _trim_arrivals(self, b: Bucket) -> None:
        """Drop stale tops of the arrival heap as items leave it, so the periodic service-level
        check (``_oldest_wait``) never meets a backlog of them (that made every shift check slow)."""
        arr = b.by_arrival
        while arr and self._live(arr[0][1], arr[0][2]) is None:
            heapq.heappop(arr)

    def _compact_buckets(self) -> None:
        """Drop stale entries (offered, removed, moved items) so the heaps stay O(waiting)."""
        for b in self._buckets.values():
            b.by_priority = [e for e in b.by_priority if self._live(e[4], e[5]) is not None]
            heapq.heapify(b.by_priority)
            b.by_arrival = [e for e in b.by_arrival if self._live(e[1], e[2]) is not None]
            heapq.heapify(b.by_arrival)
        self._pushes = 0

    def _rank(self, b: Bucket, head: Item, now: float) -> tuple[int, float, int, Bucket]:
        return (0 if head.first_in_line else 1, -self.effective_priority(head, now), next(self._seq), b)

    def _head(self, b: Bucket) -> Item | None:
        h = b.by_priority
        while h:
            e = h[0]
            item = self._live(e[4], e[5])
            if item is not None:
                return item
            heapq.heappop(h)
        return None

    def _pool_ready(self, pool: Pool) -> bool:
        """Drop stale tops; True when some agent of the pool can take its channel right now.

        Only the version is checked: every change to what an agent can take (presence, load,
        pauses) bumps ``ver`` and re-pushes it only where ``can_take`` holds, so a current entry
        can take the channel (``_decide`` still checks ``can_take`` before it offers)."""
        heap = pool.heap
        agents = self.agents
        while heap:
            e = heap[0]
            agent = agents.get(e[3])
            if agent is not None and agent.ver == e[4]:
                return True
            heapq.heappop(heap)
        return False

    def _sticky_agent(self, item: Item, q: Queue, now: float) -> Agent | None:
        if item.last_agent_id is None or now - item.arrived_at >= q.sticky_wait:
            return None
        return self.agents.get(item.last_agent_id)

    def _decide(self, item: Item, b: Bucket, now: float) -> Offer | None:
        q = b.queue
        sticky = self._sticky_agent(item, q, now)
        if sticky is not None:
            pool = b.pool
            if sticky.id in pool.scores and sticky.can_take(item.channel) and not self._is_excluded(item, sticky, now):
                return self._offer(item, sticky, now, "sticky", pool.scores[sticky.id], "the customer's last agent")
            if sticky.presence is not Presence.offline:
                return None  # hold for the last agent until sticky_wait runs out
        pool = b.pool
        heap = pool.heap
        skipped: list[tuple[int, float, float, str, int]] = []
        chosen: Agent | None = None
        while heap:
            e = heap[0]
            agent = self.agents.get(e[3])
            if agent is None or agent.ver != e[4] or not agent.can_take(pool.channel):
                heapq.heappop(heap)
                continue
            if item.excluded and self._is_excluded(item, agent, now):
                skipped.append(heapq.heappop(heap))
                continue
            chosen = agent
            break
        for e in skipped:
            heapq.heappush(heap, e)
        if chosen is None:
            return None
        rule = "best_skill_least_occupied" if q.selection == "least_occupied" else "best_skill_longest_idle"
        detail = f"{len(skipped)} excluded agent(s) skipped" if skipped else ""
        return self._offer(item, chosen, now, rule, pool.scores[chosen.id], detail)

    @staticmethod
    def _is_excluded(item: Item, agent: Agent, now: float) -> bool:
        until = item.excluded.get(agent.id)
        if until is None:
            return False
        if now >= until:
            del item.excluded[agent.id]
            return False
        return True

    def _offer(self, item: Item, agent: Agent, now: float, rule: str, score: int, detail: str) -> Offer:
        q = self.queues[item.queue]
        queue = q.queue
        reason = Reason(
            rule=rule,
            ring=item.ring,
            waited_s=now - item.arrived_at,
            effective_priority=self.effective_priority(item, now),
            skill_score=score,
            detail=detail,
        )
        q.waiting -= 1
        item.ver += 1
        item.offered_to = agent.id
        item.offered_at = now
        agent.load[item.channel] = agent.load.get(item.channel, 0) + 1
        agent.idle_since = now
        if queue.auto_accept:
            item.state = ItemState.assigned
            item.offer_expires_at = None
            item.last_agent_id = agent.id
            item.first_in_line = False
            item.excluded.clear()
        else:
            item.state = ItemState.offered
            agent.offered.add(item.id)
            item.offer_expires_at = now + queue.offer_timeout
            heapq.heappush(self._expiries, (item.offer_expires_at, item.id, item.ver))
        self._refresh(agent)
        return Offer(item.id, agent.id, queue.id, item.channel, now, item.offer_expires_at, queue.auto_accept, reason)

    # -- moving capacity with the load ----------------------------------------------------

    def projected_service_level(self, queue_id: str, now: float) -> float:
        """Share of the waiting items projected to be answered within the target time.

        A deliberately simple projection (no Erlang C): the staffed agents able to serve the queue
        clear ``mu`` items/s (sum of their slots / handle time); waiting items are assumed spread
        evenly between the oldest arrival (age ``A``) and now, answered oldest first, so the k-th
        (0 = oldest) is answered at age ``A*(1 - k/W) + k/mu``. The result is the share of
        ``k in [0, W)`` for which that is within the target ``T``. No waiting items: 1.0.
        """
        qs = self.queues[queue_id]
        w = qs.waiting
        if w <= 0:
            return 1.0
        target = qs.queue.sl_target[1]
        oldest = self._oldest_wait(qs.queue, now)
        mu = qs.throughput
        if mu <= 0:
            return 0.0  # nobody staffed can answer them
        return _share(oldest, 1.0 / mu, w, target)

    def _oldest_wait(self, q: Queue, now: float) -> float:
        oldest = now
        for channel in q.channels:
            for ring in range(len(q.rings) + 1):
                arr = self._buckets[(q.id, channel, ring)].by_arrival
                while arr and self._live(arr[0][1], arr[0][2]) is None:
                    heapq.heappop(arr)
                if arr:
                    oldest = min(oldest, arr[0][0])
        return max(0.0, now - oldest)

    def restore_shift(self, queue_id: str, channels: Iterable[str]) -> None:
        """Re-apply a capacity shift read back from the database (rebuild): the queue's able agents
        pause ``channels`` until the queue is back at target (then the usual ``return`` follows)."""
        qs = self.queues[queue_id]
        want = frozenset(channels)
        agents = tuple(sorted(a for a in qs.able if a in self.agents))
        for agent_id in agents:
            agent = self.agents[agent_id]
            agent.paused[queue_id] = want - qs.queue.channels
            self._refresh(agent)
        qs.shifted = want
        qs.shifted_agents = agents

    def able_agents(self, queue_id: str) -> int:
        return len(self.queues[queue_id].able)

    def _move_capacity(self, now: float) -> list[CapacityShift]:
        shifts: list[CapacityShift] = []
        served = {c for qs in self.queues.values() for c in qs.queue.channels}
        for qs in self.queues.values():
            q = qs.queue
            frac = q.sl_target[0]
            sl = self.projected_service_level(q.id, now)
            rank = max(self.channel_rank.get(c, 0) for c in q.channels)
            if sl < frac - self.deep_breach_margin:
                want = frozenset(c for c, r in self.channel_rank.items() if r < rank and c in served)
            elif sl < frac:
                ranks = [r for c, r in self.channel_rank.items() if r < rank and c in served]
                lowest = min(ranks, default=None)
                want = frozenset(c for c, r in self.channel_rank.items() if r == lowest and c in served)
            else:
                want = frozenset()
            if want == qs.shifted or not qs.able:
                continue
            if want and qs.shifted and want < qs.shifted:
                continue  # partial recovery: keep the wider shift until the target is met again
            agents = tuple(sorted(a for a in qs.able if a in self.agents))
            for agent_id in agents:
                agent = self.agents[agent_id]
                if want:
                    agent.paused[q.id] = want - q.channels
                else:
                    agent.paused.pop(q.id, None)
                self._refresh(agent)
            if want:
                kind: Literal["shift", "return"] = "shift"
                chans = want
                reason = f"projected service level {sl:.0%} below target {frac:.0%} in {q.sl_target[1]:g}s"
            else:
                kind = "return"
                chans = qs.shifted
                reason = f"projected service level {sl:.0%} back at target {frac:.0%}"
            qs.shifted = want
            qs.shifted_agents = agents if want else ()
            shifts.append(CapacityShift(kind, q.id, chans, agents, sl, frac, now, reason))
        return shifts

    # -- helpers --------------------------------------------------------------------------

    def _forget_offer(self, item: Item) -> None:
        if item.offered_to is not None:
            agent = self.agents.get(item.offered_to)
            if agent is not None:
                agent.offered.discard(item.id)

    def _item(self, item_id: str) -> Item:
        item = self.items.get(item_id)
        if item is None:
            raise RoutingError(f"unknown item {item_id}")
        return item

    def _agent(self, agent_id: str) -> Agent:
        agent = self.agents.get(agent_id)
        if agent is None:
            raise RoutingError(f"unknown agent {agent_id}")
        return agent

    def waiting(self, queue_id: str | None = None) -> list[Item]:
        """Waiting items (for tests and snapshots; O(items))."""
        return [
            i for i in self.items.values() if i.state is ItemState.waiting and (queue_id is None or i.queue == queue_id)
        ]

    def add_agents(self, agents: Iterable[Agent], now: float) -> None:
        for a in agents:
            self.add_agent(a, now)


def _share(oldest: float, per_item: float, w: int, target: float) -> float:
    """Share of k in [0, w) with ``oldest*(1 - k/w) + k*per_item <= target`` (linear in k)."""
    slope = per_item - oldest / w
    if slope == 0:
        return 1.0 if oldest <= target else 0.0
    k_star = (target - oldest) / slope  # the boundary
    if slope < 0:  # later items wait less: k >= k_star are in target
        return (w - min(w, max(0, math.ceil(k_star)))) / w
    # later items wait longer: k <= k_star are in target
    return (0 if k_star < 0 else min(w, math.floor(k_star) + 1)) / w
