"""Property-based tests of the routing core over random event sequences.

Random arrivals, presence changes, accepts, declines, completions and clock ticks; after every step
the invariants are checked, and at the end the world is driven to quiescence (everyone available,
every offer accepted, every item completed) to show nothing is stuck.
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
    ]


PRESENCES = [Presence.available, Presence.busy, Presence.away, Presence.after_call_work, Presence.offline]

ops = st.one_of(
    st.tuples(st.just("arrive"), st.integers(0, 2), st.integers(1, 99), st.booleans(), st.integers(-1, 3)),
    st.tuples(st.just("presence"), st.integers(0, 3), st.sampled_from(PRESENCES)),
    st.tuples(st.just("accept"), st.integers(0, 50)),
    st.tuples(st.just("decline"), st.integers(0, 50)),
    st.tuples(st.just("complete"), st.integers(0, 50)),
    st.tuples(st.just("abandon"), st.integers(0, 50)),
    st.tuples(st.just("tick"), st.floats(0.5, 40)),
    st.tuples(st.just("assign")),
)


def required(queue: Queue, ring: int) -> tuple[dict[str, int], frozenset[str] | None]:
    """Independent restatement of the bullseye: levels and teams allowed at ``ring``."""
    if any(r.any_agent for r in queue.rings[:ring]):
        return {}, None
    drop = max((r.level_drop for r in queue.rings[:ring]), default=0)
    teams = set(queue.teams).union(*(r.add_teams for r in queue.rings[:ring]))
    return {s: max(1, v - drop) for s, v in queue.required_skills.items()}, (frozenset(teams) if teams else None)


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

    def held(self, state: ItemState) -> list[Item]:
        return sorted((i for i in self.r.items.values() if i.state is state), key=lambda i: i.id)

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
            queue = self.r.queues[o.queue_id].queue
            levels, teams = required(queue, o.reason.ring)
            assert all(agent.skills.get(s, 0) >= v for s, v in levels.items()), "offered to an unskilled agent"
            assert teams is None or agent.teams & teams, "offered outside the allowed teams"
        self.check_priority(cycle)
        return cycle

    def check_priority(self, cycle: Cycle) -> None:
        """No waiting item outranks an item offered from the same pool in the same cycle."""
        for o in cycle.offers:
            if o.reason.rule == "sticky":
                continue
            served = self.r.items.get(o.item_id)
            if served is None:
                continue
            mine = o.reason.effective_priority
            for w in self.r.items.values():
                if w.state is not ItemState.waiting or w.queue != o.queue_id or w.channel != o.channel:
                    continue
                if w.ring != o.reason.ring:
                    continue
                queue = self.r.queues[w.queue].queue
                if w.last_agent_id is not None and self.now - w.arrived_at < queue.sticky_wait:
                    continue  # held for its last agent
                if w.excluded.get(o.agent_id, -1.0) > self.now:
                    continue  # w may not go to that agent
                if w.first_in_line and not served.first_in_line:
                    raise AssertionError(f"{w.id} (first in line) waits behind {o.item_id}")
                theirs = self.r.effective_priority(w, self.now)
                assert theirs <= mine + 1e-9 or served.first_in_line, (
                    f"{w.id} (priority {theirs:.2f}) waits behind {o.item_id} ({mine:.2f})"
                )

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
            _, qi, prio, vip, last = op
            q = QUEUES[qi]
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
            r.agent_presence(f"a{op[1]}", op[2], self.now)
        elif kind in ("accept", "decline"):
            offered = self.held(ItemState.offered)
            if offered:
                item = offered[op[1] % len(offered)]
                assert item.offered_to is not None
                if kind == "accept":
                    r.accept(item.id, item.offered_to, self.now)
                else:
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
            r.tick(self.now)
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
            r.tick(self.now)
            for a in sorted(r.agents):
                if r.agents[a].presence is not Presence.available:
                    r.agent_presence(a, Presence.available, self.now)
            cycle = self.assign()
            for o in cycle.offers:
                if not o.auto_accepted:
                    r.accept(o.item_id, o.agent_id, self.now)
            for item in self.held(ItemState.assigned):
                r.complete(item.id, self.now)
                self.alive.discard(item.id)
            self.check_state()
        raise AssertionError(f"not served while capacity exists: {sorted(r.items)}")


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.lists(ops, max_size=60))
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
