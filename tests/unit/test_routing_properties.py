"""Property-based tests of the routing core over random event sequences.

Random arrivals, presence changes, accepts, declines, completions and clock ticks; after every step
the invariants are checked, and at the end the world is driven to quiescence (everyone available,
every offer accepted, every item completed) to show nothing is stuck.

The oracles restate the rules independently (effective priority, bullseye ring, eligibility, free
capacity, who declined what, which items went back first in line) instead of asking the core, so a
broken core cannot vouch for itself. Each check was seen to fail against deliberately broken cores
(ignored budget / interrupt rule / pause, offers to away agents, items dropped on decline, lower
priority first, no ageing, no bullseye widening, re-offers to a decliner, offline agents keeping
their offers ...); see docs/architecture/routing-core.md.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from frontdesk.routing.core import (
    Agent,
    Capacity,
    Cycle,
    Item,
    ItemState,
    Presence,
    Queue,
    Ring,
    Router,
    RoutingEvent,
)

QUEUES = [
    Queue(
        "voice",
        frozenset({"voice"}),
        {"billing": 4},
        priority=80,
        sl_target=(0.8, 20),
        offer_timeout=15,
        rings=[Ring(30, level_drop=2), Ring(90, any_agent=True)],
        handle_time=120,
    ),
    Queue(
        "chat",
        frozenset({"webchat"}),
        {"billing": 2, "french": 2},
        priority=50,
        sl_target=(0.9, 60),
        sticky_wait=40,
        teams=frozenset({"fr"}),
        rings=[Ring(60, add_teams=frozenset({"backup"})), Ring(120, any_agent=True)],
        selection="least_occupied",
    ),
    Queue("email", frozenset({"email"}), {}, priority=10, sl_target=(0.95, 3600), auto_accept=True),
]


def capacity(voice_cost: int) -> Capacity:
    return Capacity(
        max_per_channel={"voice": 1, "webchat": 3, "email": 4},
        budget=100,
        cost={"voice": voice_cost, "webchat": 25, "email": 10},
        blocks={"voice": frozenset({"webchat", "email"}), "webchat": frozenset({"voice"})},
    )


def make_agents() -> list[Agent]:
    return [
        Agent("a0", {"billing": 5, "french": 3}, capacity(100), frozenset({"fr"})),
        Agent("a1", {"billing": 2}, capacity(60), frozenset({"backup"})),
        Agent("a2", {"billing": 3, "french": 2}, capacity(50), frozenset({"fr"})),
        Agent("a3", {}, capacity(100), frozenset()),
        # skilled for chat but outside its team until the backup ring opens
        Agent("a4", {"billing": 4, "french": 3}, capacity(60), frozenset({"backup"})),
        Agent("a5", {"billing": 4, "french": 2}, capacity(50), frozenset({"other"})),
    ]


AGENTS = len(make_agents())
BOOSTS = {"vip": 10.0, "at_risk": 10.0, "sla_breach_soon": 20.0}

PRESENCES = [Presence.available, Presence.busy, Presence.away, Presence.after_call_work, Presence.offline]

arrive = st.tuples(
    st.just("arrive"),
    st.integers(0, 2),
    st.integers(1, 99),
    st.booleans(),
    st.integers(-1, AGENTS - 1),
    st.integers(1, 5),  # a burst of this many items
)
ops = st.one_of(
    arrive,
    arrive,  # twice as likely: enough items to fill every agent
    st.tuples(st.just("presence"), st.integers(0, AGENTS - 1), st.sampled_from(PRESENCES)),
    st.tuples(st.just("accept"), st.integers(0, 50)),
    st.tuples(st.just("decline"), st.integers(0, 50)),
    st.tuples(st.just("complete"), st.integers(0, 50)),
    st.tuples(st.just("abandon"), st.integers(0, 50)),
    st.tuples(st.just("tick"), st.floats(0.5, 40)),
    st.tuples(st.just("assign")),
    st.tuples(st.just("assign")),
)


def required(queue: Queue, ring: int) -> tuple[dict[str, int], frozenset[str] | None]:
    """Independent restatement of the bullseye: levels and teams allowed at ``ring``."""
    if any(r.any_agent for r in queue.rings[:ring]):
        return {}, None
    drop = max((r.level_drop for r in queue.rings[:ring]), default=0)
    teams = set(queue.teams).union(*(r.add_teams for r in queue.rings[:ring]))
    return {s: max(1, v - drop) for s, v in queue.required_skills.items()}, (frozenset(teams) if teams else None)


def ring_of(queue: Queue, waited: float) -> int:
    """Independent restatement: how many bullseye rings an item that waited ``waited`` s has opened."""
    return sum(1 for r in queue.rings if waited >= r.after_seconds)


def effective(item: Item, queue: Queue, now: float) -> float:
    """Independent restatement of the effective priority (base + boosts + ageing)."""
    base = float(queue.priority if item.priority is None else item.priority)
    base += sum(points for flag, points in BOOSTS.items() if getattr(item, flag))
    return base + queue.ageing_per_minute * (now - item.arrived_at) / 60.0


def room_for(agent: Agent, load: dict[str, int], channel: str) -> bool:
    """Independent restatement of "can take one more item of ``channel`` now"."""
    cap = agent.capacity
    if agent.presence is not Presence.available or channel in agent.paused_channels():
        return False
    if load.get(channel, 0) + 1 > cap.max_per_channel.get(channel, 0):
        return False
    if sum(cap.cost.get(c, 0) * n for c, n in load.items()) + cap.cost.get(channel, 0) > cap.budget:
        return False
    return not any(n > 0 and channel in cap.blocks.get(active, ()) for active, n in load.items())


def eligible(agent: Agent, queue: Queue, ring: int, channel: str) -> bool:
    levels, teams = required(queue, ring)
    if agent.capacity.max_per_channel.get(channel, 0) <= 0:
        return False
    if teams is not None and not agent.teams & teams:
        return False
    return all(agent.skills.get(s, 0) >= v for s, v in levels.items())


class World:
    def __init__(self) -> None:
        self.r = Router(max_missed_offers=3)
        for q in QUEUES:
            self.r.add_queue(q)
        for a in make_agents():
            a.presence = Presence.available
            self.r.add_agent(a, 0.0)
        self.now = 0.0
        self.n = 0
        self.alive: set[str] = set()  # arrived, not completed or abandoned
        self.excluded: dict[tuple[str, str], float] = {}  # (item, agent) -> until: declined or missed
        self.returned: set[str] = set()  # returned by an agent who went offline, not accepted since

    def queue(self, item: Item) -> Queue:
        return next(q for q in QUEUES if q.id == item.queue)

    def held(self, state: ItemState) -> list[Item]:
        return sorted((i for i in self.r.items.values() if i.state is state), key=lambda i: i.id)

    def is_excluded(self, item_id: str, agent_id: str) -> bool:
        return self.excluded.get((item_id, agent_id), -1.0) > self.now

    def sticky_hold(self, item: Item) -> bool:
        """May wait for its last agent (logged in, within the queue's sticky wait)."""
        if item.last_agent_id is None or self.now - item.arrived_at >= self.queue(item).sticky_wait:
            return False
        last = self.r.agents.get(item.last_agent_id)
        return last is not None and last.presence is not Presence.offline

    def note_offer_answered(self, item_id: str) -> None:
        self.returned.discard(item_id)
        for key in [k for k in self.excluded if k[0] == item_id]:
            del self.excluded[key]

    def note_events(self, events: list[RoutingEvent]) -> None:
        for e in events:
            if e.kind == "offer.expired":
                assert e.item_id is not None
                assert e.agent_id is not None
                q = self.queue(self.r.items[e.item_id])
                self.excluded[(e.item_id, e.agent_id)] = self.now + q.redecline_after
            elif e.kind == "item.returned":
                assert e.item_id is not None
                self.returned.add(e.item_id)

    def assign(self) -> Cycle:
        before = {a.id: (dict(a.load), a.presence) for a in self.r.agents.values()}
        waiting_before = {i.id for i in self.r.items.values() if i.state is ItemState.waiting}
        cycle = self.r.assign(self.now)
        seen: set[str] = set()
        for o in cycle.offers:
            assert o.item_id in waiting_before, "only waiting items are offered"
            assert o.item_id not in seen, "an item offered twice in one cycle"
            seen.add(o.item_id)
            load, presence = before[o.agent_id]
            agent = self.r.agents[o.agent_id]
            assert presence is Presence.available, "offered to an unavailable agent"
            assert not agent.paused_channels() & {o.channel}, "offered a paused channel"
            cap = agent.capacity
            for active, n in load.items():
                assert not (n > 0 and o.channel in cap.blocks.get(active, ())), "interrupt rule broken"
            load[o.channel] = load.get(o.channel, 0) + 1
            assert load[o.channel] <= cap.max_per_channel.get(o.channel, 0), "per-channel maximum broken"
            assert sum(cap.cost[c] * n for c, n in load.items()) <= cap.budget, "shared budget broken"
            item = self.r.items[o.item_id]
            queue = self.queue(item)
            assert o.reason.ring == ring_of(queue, self.now - item.arrived_at), "wrong bullseye ring"
            assert eligible(agent, queue, o.reason.ring, o.channel), "offered to an unskilled / other-team agent"
            assert not self.is_excluded(o.item_id, o.agent_id), "re-offered to the agent who declined or missed it"
            if o.auto_accepted:
                self.note_offer_answered(o.item_id)
        self.check_priority(cycle)
        self.check_work_conserving()
        return cycle

    def check_priority(self, cycle: Cycle) -> None:
        """No waiting item outranks an item offered from the same pool in the same cycle."""
        for o in cycle.offers:
            if o.reason.rule == "sticky":
                continue
            served = self.r.items[o.item_id]
            queue = self.queue(served)
            mine = effective(served, queue, self.now)
            for w in self.r.items.values():
                if w.state is not ItemState.waiting or w.queue != o.queue_id or w.channel != o.channel:
                    continue
                if ring_of(queue, self.now - w.arrived_at) != o.reason.ring:
                    continue
                if self.sticky_hold(w) or self.is_excluded(w.id, o.agent_id):
                    continue  # held for its last agent / may not go to that agent
                if (w.id in self.returned) != (o.item_id in self.returned):
                    assert o.item_id in self.returned, f"{w.id} (returned, first in line) waits behind {o.item_id}"
                    continue
                theirs = effective(w, queue, self.now)
                assert theirs <= mine + 1e-9, f"{w.id} (priority {theirs:.2f}) waits behind {o.item_id} ({mine:.2f})"

    def check_work_conserving(self) -> None:
        """After a cycle no waiting item could go to an eligible agent with room (bar holds)."""
        for w in self.r.items.values():
            if w.state is not ItemState.waiting or self.sticky_hold(w):
                continue
            queue = self.queue(w)
            ring = ring_of(queue, self.now - w.arrived_at)
            for a in self.r.agents.values():
                if self.is_excluded(w.id, a.id) or not eligible(a, queue, ring, w.channel):
                    continue
                assert not room_for(a, a.load, w.channel), f"{w.id} waits while {a.id} could take it"

    def check_state(self) -> None:
        r = self.r
        assert set(r.items) == self.alive, "an item was lost or invented"
        for a in r.agents.values():
            mine = [i for i in r.items.values() if i.state is not ItemState.waiting and i.offered_to == a.id]
            want: dict[str, int] = {}
            for i in mine:
                want[i.channel] = want.get(i.channel, 0) + 1
            assert a.load == want, f"{a.id}: load {a.load} but holds {want}"
            assert a.offered == {i.id for i in mine if i.state is ItemState.offered}
            if a.presence is Presence.offline:
                assert not [i for i in mine if i.state is ItemState.offered], "an offline agent keeps offers"
        for qs in r.queues.values():
            assert qs.waiting == len(r.waiting(qs.queue.id)), "waiting count drifted"
        # every waiting item sits exactly once, live, in the bucket heaps
        live = [e[4] for b in r._buckets.values() for e in b.by_priority if r._live(e[4], e[5]) is not None]
        assert sorted(live) == sorted(i.id for i in r.waiting()), "an item is missing from or duplicated in the queue"
        for i in r.items.values():
            if i.state is not ItemState.waiting:
                assert i.offered_to in r.agents

    def step(self, op: tuple) -> None:  # type: ignore[type-arg]
        kind = op[0]
        r = self.r
        if kind == "arrive":
            _, qi, prio, vip, last, burst = op
            q = QUEUES[qi]
            for _ in range(burst):
                self.n += 1
                item_id = f"i{self.n}"
                r.add_item(
                    Item(
                        item_id,
                        q.id,
                        next(iter(q.channels)),
                        arrived_at=self.now,
                        priority=prio,
                        vip=vip,
                        last_agent_id=None if last < 0 else f"a{last}",
                    ),
                    self.now,
                )
                self.alive.add(item_id)
        elif kind == "presence":
            self.note_events(r.agent_presence(f"a{op[1]}", op[2], self.now))
        elif kind in ("accept", "decline"):
            offered = self.held(ItemState.offered)
            if offered:
                item = offered[op[1] % len(offered)]
                assert item.offered_to is not None
                if kind == "accept":
                    r.accept(item.id, item.offered_to, self.now)
                    self.note_offer_answered(item.id)
                else:
                    self.excluded[(item.id, item.offered_to)] = self.now + self.queue(item).redecline_after
                    r.decline(item.id, item.offered_to, self.now)
        elif kind == "complete":
            assigned = self.held(ItemState.assigned)
            if assigned:
                r.complete(assigned[op[1] % len(assigned)].id, self.now)
                self.alive.discard(assigned[op[1] % len(assigned)].id)
        elif kind == "abandon":
            items = sorted(r.items)
            if items:
                r.remove_item(items[op[1] % len(items)], self.now)
                self.alive.discard(items[op[1] % len(items)])
        elif kind == "tick":
            self.now += op[1]
            self.note_events(r.tick(self.now))
        else:
            self.assign()
        self.check_state()

    def drive_to_quiescence(self) -> None:
        r = self.r
        for a in sorted(r.agents):
            r.agent_presence(a, Presence.available, self.now)
        for _ in range(200):
            if not r.items:
                return
            self.now += 30
            self.note_events(r.tick(self.now))
            for a in sorted(r.agents):
                if r.agents[a].presence is not Presence.available:
                    r.agent_presence(a, Presence.available, self.now)
            cycle = self.assign()
            for o in cycle.offers:
                if not o.auto_accepted:
                    r.accept(o.item_id, o.agent_id, self.now)
                    self.note_offer_answered(o.item_id)
            for item in self.held(ItemState.assigned):
                r.complete(item.id, self.now)
                self.alive.discard(item.id)
            self.check_state()
        raise AssertionError(f"not served while capacity exists: {sorted(r.items)}")


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(ops, min_size=40, max_size=160))
def test_random_event_sequences_keep_every_invariant_and_serve_everything(steps: list[tuple]) -> None:  # type: ignore[type-arg]
    world = World()
    for op in steps:
        world.step(op)
    world.assign()
    world.check_state()
    world.drive_to_quiescence()
    assert all(a.load == {} for a in world.r.agents.values())


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(1, 99)), min_size=2, max_size=30), st.integers(1, 4))
def test_higher_priority_never_waits_behind_lower_with_equal_ageing(arrivals: list[tuple[int, int]], free: int) -> None:
    """All items arrive at the same time; whatever ``free`` slots there are go to the highest."""
    r = Router()
    for q in QUEUES:
        r.add_queue(q)
    cap = Capacity(max_per_channel={"voice": 1, "webchat": 1, "email": 1}, budget=100, cost={})
    for n in range(free):
        r.add_agent(Agent(f"x{n}", {"billing": 5, "french": 5}, cap, frozenset({"fr"}), Presence.available), 0)
    for n, (qi, prio) in enumerate(arrivals):
        q = QUEUES[qi]
        r.add_item(Item(f"i{n}", q.id, next(iter(q.channels)), arrived_at=0, priority=prio), 0)
    offers = r.assign(1).offers
    for channel in ("voice", "webchat", "email"):
        got = [r.items[o.item_id].priority or 0 for o in offers if o.channel == channel]
        left = [i.priority or 0 for i in r.waiting() if i.channel == channel]
        if got and left:
            assert min(got) >= max(left)
