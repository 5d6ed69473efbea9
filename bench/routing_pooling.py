"""Pooling gain: the same staff and traffic routed blended vs. siloed per channel (SimPy + Router).

Traffic (Poisson, exponential handle times): voice 108/h x 300 s (80 % in 20 s), chat 108/h x
480 s (90 % in 60 s), email 54/h x 360 s (95 % in 4 h). Capacity profile: budget 100; call 100,
chat 25 (max 3), email 10 (max 2); no chat or email during a call. Siloed: each channel gets its
own agents (Erlang C staffing per channel, one agent fewer on voice and chat: a lean desk) and
serves only that channel. Blended: the same headcount, every agent has every skill and the
shared budget. Every decision is made by ``frontdesk.routing.core.Router``.

Prints progress on stderr and one JSON line on stdout. ``--quick`` runs 10 days of 8 h instead of 40.
"""

from __future__ import annotations

import argparse
import math
import time

from _common import emit, log

from frontdesk.routing.core import Capacity, Queue
from frontdesk.routing.simulation import (
    AgentSpec,
    RoutedReplicatedResult,
    RoutedSimConfig,
    RoutedTraffic,
    simulate_routed,
)
from frontdesk.wfm.erlang import agents_for_service_level
from frontdesk.wfm.simulation import ChannelTraffic

CHANNELS = {  # channel: (arrivals/s, AHT s, (SL fraction, seconds), priority, max concurrent, cost)
    "voice": (0.03, 300.0, (0.80, 20.0), 90, 1, 100),
    "chat": (0.03, 480.0, (0.90, 60.0), 70, 3, 25),
    "email": (0.015, 360.0, (0.95, 4 * 3600.0), 30, 2, 10),
}
BLOCKS = {"voice": frozenset({"chat", "email"})}


def queues() -> list[Queue]:
    return [
        Queue(
            id=channel,
            channels=frozenset({channel}),
            required_skills={channel: 1},
            priority=priority,
            sl_target=target,
            auto_accept=True,
            handle_time=aht,
        )
        for channel, (_rate, aht, target, priority, _most, _cost) in CHANNELS.items()
    ]


def silo_headcount() -> dict[str, int]:
    out: dict[str, int] = {}
    for channel, (rate, aht, (fraction, seconds), _p, most, _c) in CHANNELS.items():
        servers = agents_for_service_level(rate, aht, fraction, seconds)
        lean = 1 if channel != "email" else 0
        out[channel] = max(1, math.ceil(servers / most) - lean)
    return out


def config(blended: bool, headcount: dict[str, int], duration_s: float) -> RoutedSimConfig:
    costs = {c: v[5] for c, v in CHANNELS.items()}
    agents: list[AgentSpec] = []
    for home, n in headcount.items():
        for i in range(n):
            served = list(CHANNELS) if blended else [home]
            agents.append(
                AgentSpec(
                    id=f"{home}-{i}",
                    skills={c: 1 for c in served},
                    capacity=Capacity(
                        max_per_channel={c: CHANNELS[c][4] for c in served},
                        budget=100,
                        cost={c: costs[c] for c in served},
                        blocks=BLOCKS,
                    ),
                )
            )
    return RoutedSimConfig(
        queues=queues(),
        traffic=[RoutedTraffic(ChannelTraffic(c, v[0], v[1]), c) for c, v in CHANNELS.items()],
        agents=agents,
        duration_s=duration_s,
        warmup_s=min(1800.0, duration_s / 8),
    )


def figures(prefix: str, result: RoutedReplicatedResult) -> dict[str, float]:
    out: dict[str, float] = {}
    for channel, est in result.channels.items():
        out[f"{prefix}_{channel}_service_level"] = round(est.service_level.mean, 4)
        out[f"{prefix}_{channel}_service_level_ci95_half_width"] = round(
            (est.service_level.high - est.service_level.low) / 2, 4
        )
        out[f"{prefix}_{channel}_asa_s"] = round(est.asa_s.mean, 2)
    out[f"{prefix}_occupancy"] = round(result.occupancy.mean, 4)
    out[f"{prefix}_budget_utilisation"] = round(result.budget_utilisation.mean, 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10 days instead of 40 (< 30 s)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    duration_s, replications = (8 * 3600.0, 10) if args.quick else (8 * 3600.0, 40)

    headcount = silo_headcount()
    total = sum(headcount.values())
    log(f"headcount per silo {headcount} (total {total}); {replications} days of {duration_s / 3600:.0f} h")
    results: dict[str, RoutedReplicatedResult] = {}
    started = time.perf_counter()
    for mode in ("siloed", "blended"):
        t0 = time.perf_counter()
        results[mode] = simulate_routed(config(mode == "blended", headcount, duration_s), replications, args.seed)
        sl = {c: round(e.service_level.mean, 3) for c, e in results[mode].channels.items()}
        occ = results[mode].occupancy.mean
        log(f"{mode}: service level {sl}, occupancy {occ:.3f} ({time.perf_counter() - t0:.1f} s)")

    gains = {
        c: 100 * (results["blended"].channels[c].service_level.mean - results["siloed"].channels[c].service_level.mean)
        for c in CHANNELS
    }
    emit(
        {
            "benchmark": "routing_pooling",
            "quick": args.quick,
            "replications": replications,
            "day_hours": duration_s / 3600,
            "agents": sum(headcount.values()),
            "silo_agents": headcount,
            **figures("siloed", results["siloed"]),
            **figures("blended", results["blended"]),
            **{f"pooling_gain_{c}_service_level_points": round(g, 2) for c, g in gains.items()},
            # unweighted mean over channels of (blended - siloed) service level, in percentage points
            "pooling_gain_service_level_points": round(sum(gains.values()) / len(gains), 2),
            "pooling_gain_occupancy_points": round(
                100 * (results["blended"].occupancy.mean - results["siloed"].occupancy.mean), 2
            ),
            "elapsed_s": round(time.perf_counter() - started, 1),
        }
    )


if __name__ == "__main__":
    main()
