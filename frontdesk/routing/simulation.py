"""Discrete-event simulation (SimPy) of a contact-centre day routed by the real :class:`Router`.

Every routing decision comes from :mod:`frontdesk.routing.core`: the simulation only produces
events (Poisson arrivals per channel, handle times per channel, acceptances, completions) and
feeds them to a fresh ``Router`` per day; after every event it calls ``tick(now)`` and
``assign(now)`` and acts on the offers it gets back. Offers on auto-accept queues are answered at
once; other offers are accepted after ``accept_delay_s`` (the agent clicking "accept"). A
completion frees the agent's capacity through ``Router.complete``. A periodic nudge (every
``nudge_interval_s``) also runs ``tick`` + ``assign`` so capacity shifts and offer expiries happen
even when no contact arrives or ends.

Definitions, per channel (the same as :mod:`frontdesk.wfm.simulation`):

* **offered**: contacts that arrived inside ``[warmup_s, duration_s)``;
* **service level**: offered contacts answered within the target of their queue
  (``Queue.sl_target[1]``) / offered contacts; "answered" is the moment the agent has it
  (auto-accepted offer, or acceptance);
* **ASA**: mean wait of the answered contacts.

Per day, over all agents (clipped to the measured window):

* **occupancy**: share of staffed agent-time with at least one contact in hand (offered or
  assigned) — for single-channel, one-at-a-time agents this is Erlang's ``A / N``;
* **budget utilisation**: time-average of used capacity budget / budget (how full blended agents
  are: three chats of cost 25 count as 75 %).

Arrivals stop at ``duration_s`` and the day runs on until every contact is answered and handled.
Nobody abandons. Replications are independent days (seed ``seed * 1_000_003 + i``) with
Student-t confidence intervals across days.
"""

from __future__ import annotations

import copy
import math
import random
import statistics
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import simpy

from frontdesk.routing.core import Agent, Capacity, Item, ItemState, Offer, Presence, Queue, Router
from frontdesk.wfm.simulation import ChannelTraffic, Estimate, confidence_interval, sample_handle_time

__all__ = [
    "AgentSpec",
    "ChannelDayResult",
    "ChannelEstimate",
    "RoutedDayResult",
    "RoutedReplicatedResult",
    "RoutedSimConfig",
    "RoutedTraffic",
    "simulate_routed",
    "simulate_routed_day",
]


@dataclass(frozen=True)
class RoutedTraffic:
    """One channel's traffic (``traffic.name`` is the channel) into the Router queue ``queue_id``."""

    traffic: ChannelTraffic
    queue_id: str

    @property
    def channel(self) -> str:
        return self.traffic.name


@dataclass(frozen=True)
class AgentSpec:
    """An agent template; each simulated day builds a fresh, available :class:`Agent` from it."""

    id: str
    skills: Mapping[str, int]
    capacity: Capacity
    teams: frozenset[str] = frozenset()

    def build(self) -> Agent:
        return Agent(
            id=self.id,
            skills=dict(self.skills),
            capacity=copy.deepcopy(self.capacity),
            teams=self.teams,
            presence=Presence.available,
        )


@dataclass(frozen=True)
class RoutedSimConfig:
    queues: Sequence[Queue]
    traffic: Sequence[RoutedTraffic]
    agents: Sequence[AgentSpec]
    duration_s: float = 8 * 3600.0
    warmup_s: float = 0.0  # arrivals before this are simulated but not measured
    accept_delay_s: float = 0.0  # for queues without auto-accept
    nudge_interval_s: float | None = 10.0  # periodic tick + assign; None = only on events
    router_options: Mapping[str, Any] = field(default_factory=dict)  # keyword arguments of Router()

    def __post_init__(self) -> None:
        if not self.queues or not self.traffic or not self.agents:
            raise ValueError("queues, traffic and agents must not be empty")
        queue_ids = {q.id for q in self.queues}
        channels = [t.channel for t in self.traffic]
        if len(set(channels)) != len(channels):
            raise ValueError("one traffic stream per channel")
        for t in self.traffic:
            if t.queue_id not in queue_ids:
                raise ValueError(f"traffic {t.channel}: unknown queue {t.queue_id}")
        if len({a.id for a in self.agents}) != len(self.agents):
            raise ValueError("agent ids must be unique")
        if not math.isfinite(self.duration_s) or self.duration_s <= 0:
            raise ValueError("duration_s must be a finite number > 0")
        if not 0 <= self.warmup_s < self.duration_s:
            raise ValueError("warmup_s must be >= 0 and < duration_s")
        if not math.isfinite(self.accept_delay_s) or self.accept_delay_s < 0:
            raise ValueError("accept_delay_s must be a finite number >= 0")
        if self.nudge_interval_s is not None and not self.nudge_interval_s > 0:
            raise ValueError("nudge_interval_s must be > 0 or None")


@dataclass(frozen=True)
class ChannelDayResult:
    offered: int
    answered: int
    answered_within_target: int
    target_answer_s: float
    service_level: float
    asa_s: float


@dataclass(frozen=True)
class RoutedDayResult:
    channels: dict[str, ChannelDayResult]
    occupancy: float
    budget_utilisation: float
    offers: int
    capacity_shifts: int


@dataclass(frozen=True)
class ChannelEstimate:
    service_level: Estimate
    asa_s: Estimate


@dataclass(frozen=True)
class RoutedReplicatedResult:
    replications: int
    confidence: float
    channels: dict[str, ChannelEstimate]
    occupancy: Estimate
    budget_utilisation: Estimate
    days: list[RoutedDayResult] = field(repr=False)


@dataclass
class _Contact:
    id: str
    route: RoutedTraffic
    arrived_at: float
    answered_at: float | None = None


@dataclass
class _AgentMeter:
    """Integrates busy time and used budget over the measured window."""

    budget: int
    cost: dict[str, int]
    items: int = 0
    used: int = 0
    since: float = 0.0
    busy_s: float = 0.0
    budget_s: float = 0.0  # integral of used / budget


class _RoutedDay:
    def __init__(self, config: RoutedSimConfig, rng: random.Random) -> None:
        self.config = config
        self.rng = rng
        self.env = simpy.Environment()
        self.router = Router(**dict(config.router_options))
        self.queues = {q.id: q for q in config.queues}
        for queue in config.queues:
            self.router.add_queue(copy.deepcopy(queue))
        self.meters: dict[str, _AgentMeter] = {}
        for spec in config.agents:
            self.router.add_agent(spec.build(), 0.0)
            self.meters[spec.id] = _AgentMeter(budget=max(1, spec.capacity.budget), cost=dict(spec.capacity.cost))
        self.contacts: dict[str, _Contact] = {}
        self.open_arrivals = 0
        self.in_system = 0
        self.offers = 0
        self.shifts = 0

    def run(self) -> RoutedDayResult:
        for route in self.config.traffic:
            if route.traffic.arrival_rate_per_s > 0:
                self.open_arrivals += 1
                self.env.process(self._arrivals(route))
        if self.config.nudge_interval_s is not None:
            self.env.process(self._nudge(self.config.nudge_interval_s))
        self.env.run()
        return self._result()

    # -- events ---------------------------------------------------------------------------

    def _arrivals(self, route: RoutedTraffic) -> Generator[Any, Any, None]:
        env, rate = self.env, route.traffic.arrival_rate_per_s
        n = 0
        while True:
            yield env.timeout(self.rng.expovariate(rate))
            if env.now >= self.config.duration_s:
                self.open_arrivals -= 1
                return
            contact = _Contact(id=f"{route.channel}-{n}", route=route, arrived_at=env.now)
            n += 1
            self.contacts[contact.id] = contact
            self.in_system += 1
            self.router.add_item(
                Item(id=contact.id, queue=route.queue_id, channel=route.channel, arrived_at=env.now), env.now
            )
            self._cycle()

    def _nudge(self, interval: float) -> Generator[Any, Any, None]:
        while self.open_arrivals > 0 or self.in_system > 0:
            yield self.env.timeout(interval)
            self._cycle()

    def _cycle(self) -> None:
        now = self.env.now
        self.router.tick(now)
        cycle = self.router.assign(now)
        self.shifts += len(cycle.shifts)
        for offer in cycle.offers:
            self.offers += 1
            self._load(offer.agent_id, offer.channel, +1)
            if offer.auto_accepted:
                self._answered(offer)
            else:
                self.env.process(self._accept_later(offer))

    def _accept_later(self, offer: Offer) -> Generator[Any, Any, None]:
        if self.config.accept_delay_s > 0:
            yield self.env.timeout(self.config.accept_delay_s)
        item = self.router.items.get(offer.item_id)
        if item is None or item.state is not ItemState.offered or item.offered_to != offer.agent_id:
            self._load(offer.agent_id, offer.channel, -1)  # the offer expired: the item went back
            return
        self.router.accept(offer.item_id, offer.agent_id, self.env.now)
        self._answered(offer)

    def _answered(self, offer: Offer) -> None:
        contact = self.contacts[offer.item_id]
        contact.answered_at = self.env.now
        self.env.process(self._handle(contact, offer.agent_id))

    def _handle(self, contact: _Contact, agent_id: str) -> Generator[Any, Any, None]:
        yield self.env.timeout(sample_handle_time(self.rng, contact.route.traffic))
        self.router.complete(contact.id, self.env.now)
        self._load(agent_id, contact.route.channel, -1)
        self.in_system -= 1
        self._cycle()

    def _load(self, agent_id: str, channel: str, sign: int) -> None:
        meter = self.meters[agent_id]
        self._accrue(meter)
        meter.items += sign
        meter.used += sign * meter.cost.get(channel, 0)

    def _accrue(self, meter: _AgentMeter) -> None:
        """Add the time since the last change, clipped to the measured window."""
        now = self.env.now
        start = max(meter.since, self.config.warmup_s)
        end = min(now, self.config.duration_s)
        if end > start:
            if meter.items > 0:
                meter.busy_s += end - start
            meter.budget_s += (end - start) * min(1.0, meter.used / meter.budget)
        meter.since = now

    # -- figures --------------------------------------------------------------------------

    def _result(self) -> RoutedDayResult:
        config = self.config
        for meter in self.meters.values():
            self._accrue(meter)
        channels: dict[str, ChannelDayResult] = {}
        for route in config.traffic:
            target = self.queues[route.queue_id].sl_target[1]
            measured = [c for c in self.contacts.values() if c.route is route and c.arrived_at >= config.warmup_s]
            waits = [c.answered_at - c.arrived_at for c in measured if c.answered_at is not None]
            within = sum(1 for w in waits if w <= target)
            offered = len(measured)
            channels[route.channel] = ChannelDayResult(
                offered=offered,
                answered=len(waits),
                answered_within_target=within,
                target_answer_s=target,
                service_level=within / offered if offered else 1.0,
                asa_s=statistics.fmean(waits) if waits else 0.0,
            )
        staffed = len(self.meters) * (config.duration_s - config.warmup_s)
        return RoutedDayResult(
            channels=channels,
            occupancy=math.fsum(m.busy_s for m in self.meters.values()) / staffed,
            budget_utilisation=math.fsum(m.budget_s for m in self.meters.values()) / staffed,
            offers=self.offers,
            capacity_shifts=self.shifts,
        )


def simulate_routed_day(config: RoutedSimConfig, seed: int) -> RoutedDayResult:
    """Simulate one day of ``config``, routed by a fresh :class:`Router`, with a deterministic ``seed``."""
    return _RoutedDay(config, random.Random(seed)).run()


def simulate_routed(
    config: RoutedSimConfig,
    replications: int = 10,
    seed: int = 0,
    confidence: float = 0.95,
) -> RoutedReplicatedResult:
    """Independent replications (day ``i`` seeded from ``seed`` and ``i``): means with Student-t
    confidence intervals across days, per channel and for the agents."""
    if isinstance(replications, bool) or not isinstance(replications, int) or replications < 2:
        raise ValueError("replications must be an integer >= 2")
    days = [simulate_routed_day(config, seed * 1_000_003 + i) for i in range(replications)]
    channels = {
        route.channel: ChannelEstimate(
            service_level=confidence_interval([d.channels[route.channel].service_level for d in days], confidence),
            asa_s=confidence_interval([d.channels[route.channel].asa_s for d in days], confidence),
        )
        for route in config.traffic
    }
    return RoutedReplicatedResult(
        replications=replications,
        confidence=confidence,
        channels=channels,
        occupancy=confidence_interval([d.occupancy for d in days], confidence),
        budget_utilisation=confidence_interval([d.budget_utilisation for d in days], confidence),
        days=days,
    )
