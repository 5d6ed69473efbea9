"""Routing decision core: decisions/s and the latency of one decision cycle.

2,000 blended agents, 50,000 waiting items over 24 queues (voice, webchat, email; mixed skills and
levels). The first cycle fills every agent; then each measured cycle is a small batch of events
(completions, accepts, new arrivals, the odd presence change) followed by one ``assign(now)``.

    .venv/bin/python bench/routing_core.py [--quick]

Prints progress to stderr and ONE JSON line (decisions_per_s, cycle_p50_ms, cycle_p99_ms) to stdout.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, log, percentile

from frontdesk.routing.core import Agent, Capacity, Item, ItemState, Presence, Queue, Ring, Router

SKILLS = [f"s{n}" for n in range(12)]
CHANNELS = ["voice", "webchat", "email"]


def build(rng: random.Random, agents: int, items: int) -> tuple[Router, list[Queue]]:
    r = Router(shift_check_interval=5.0)
    queues: list[Queue] = []
    for n in range(24):
        channel = CHANNELS[n % 3]
        skills = {s: rng.randint(1, 3) for s in rng.sample(SKILLS, rng.randint(1, 2))}
        q = Queue(
            f"q{n}",
            frozenset({channel}),
            skills,
            priority={"voice": 80, "webchat": 50, "email": 10}[channel] + rng.randint(-5, 5),
            sl_target={"voice": (0.8, 20.0), "webchat": (0.9, 60.0), "email": (0.95, 14400.0)}[channel],
            selection="least_occupied" if n % 4 == 0 else "longest_idle",
            sticky_wait=30.0 if channel != "voice" else 0.0,
            rings=[Ring(30.0, level_drop=1), Ring(120.0, any_agent=True)],
            auto_accept=channel == "email",
            offer_timeout=20.0,
            handle_time={"voice": 240.0, "webchat": 600.0, "email": 900.0}[channel],
        )
        r.add_queue(q)
        queues.append(q)
    cap = Capacity(
        max_per_channel={"voice": 1, "webchat": 3, "email": 5},
        budget=100,
        cost={"voice": 100, "webchat": 25, "email": 10},
        blocks={"voice": frozenset({"webchat", "email"})},
    )
    for n in range(agents):
        skills = {s: rng.randint(1, 5) for s in rng.sample(SKILLS, rng.randint(2, 5))}
        r.add_agent(Agent(f"a{n}", skills, cap, frozenset({f"t{n % 10}"}), Presence.available), 0.0)
    for n in range(items):
        q = queues[rng.randrange(len(queues))]
        r.add_item(
            Item(
                f"i{n}",
                q.id,
                next(iter(q.channels)),
                arrived_at=-rng.uniform(0, 600),
                vip=rng.random() < 0.05,
                last_agent_id=f"a{rng.randrange(agents)}" if rng.random() < 0.1 else None,
            ),
            0.0,
        )
    return r, queues


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--agents", type=int, default=2000)
    ap.add_argument("--items", type=int, default=50_000)
    ap.add_argument("--batch", type=int, default=8, help="events (completions + arrivals) per cycle")
    args = ap.parse_args()
    cycles = 2_000 if args.quick else 20_000
    rng = random.Random(7)

    t0 = time.perf_counter()
    r, queues = build(rng, args.agents, args.items)
    built = time.perf_counter() - t0
    log(f"built {args.agents} agents, {args.items} waiting items, {len(queues)} queues in {built:.1f}s")
    now = 1.0
    t0 = time.perf_counter()
    first = r.assign(now)
    log(f"first cycle: {len(first.offers)} offers in {(time.perf_counter() - t0) * 1000:.0f} ms (fills every agent)")
    pending = [o for o in first.offers if not o.auto_accepted]
    assigned = [o.item_id for o in first.offers if o.auto_accepted]

    latencies: list[float] = []
    decisions = 0
    busy = 0.0
    next_id = args.items
    shifts = 0
    for _ in range(cycles):
        now += 0.05
        # a small batch of events: accept pending offers, finish some work, new arrivals
        for o in pending:
            if o.item_id in r.items and r.items[o.item_id].state is ItemState.offered:
                r.accept(o.item_id, o.agent_id, now)
                assigned.append(o.item_id)
        pending = []
        for _ in range(args.batch):
            if assigned:
                k = rng.randrange(len(assigned))
                assigned[k], assigned[-1] = assigned[-1], assigned[k]
                item_id = assigned.pop()
                if item_id in r.items:
                    r.complete(item_id, now)
            q = queues[rng.randrange(len(queues))]
            r.add_item(Item(f"i{next_id}", q.id, next(iter(q.channels)), arrived_at=now), now)
            next_id += 1
        if rng.random() < 0.02:
            a = f"a{rng.randrange(args.agents)}"
            r.agent_presence(a, Presence.away if r.agents[a].presence is Presence.available else "available", now)
        r.tick(now)
        t = time.perf_counter()
        cycle = r.assign(now)
        dt = time.perf_counter() - t
        shifts += len(cycle.shifts)
        latencies.append(dt)
        busy += dt
        decisions += len(cycle.offers)
        for o in cycle.offers:
            if o.auto_accepted:
                assigned.append(o.item_id)
            else:
                pending.append(o)
    lat_ms = sorted(x * 1000 for x in latencies)
    result = {
        "decisions_per_s": round(decisions / busy, 1) if busy else 0.0,
        "cycle_p50_ms": round(percentile(lat_ms, 50), 4),
        "cycle_p99_ms": round(percentile(lat_ms, 99), 4),
        "cycles": cycles,
        "decisions": decisions,
        "agents": args.agents,
        "waiting_items": len(r.waiting()),
        "capacity_shifts": shifts,
    }
    log(
        f"{decisions} decisions in {cycles} cycles: {result['decisions_per_s']}/s, "
        f"p50 {result['cycle_p50_ms']} ms, p99 {result['cycle_p99_ms']} ms"
    )
    emit(result)


if __name__ == "__main__":
    main()
