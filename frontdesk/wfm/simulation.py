"""Discrete-event simulation (SimPy) of one queue over a day.

Contacts arrive as Poisson processes (one per channel), wait in one FIFO queue and are handed
to a free agent chosen by a pluggable routing policy (default: the longest-idle agent). Handle
times are exponential or lognormal per channel; waiting contacts may abandon after an
exponential patience. Every run is seeded, so the same config and seed give the same figures.

Definitions (the usual contact-centre ones, same as :mod:`frontdesk.wfm.erlang`):

* **offered**: contacts that arrived inside the measured window ``[warmup_s, duration_s)``;
* **service level**: offered contacts answered within ``target_answer_s`` / offered contacts
  (abandoned contacts count in the denominator, short abandons included);
* **ASA**: mean wait of the *answered* contacts;
* **abandon rate**: abandoned / offered;
* **occupancy**: busy agent-seconds / (agents x window length), clipped to the window.

Contacts still waiting at the end of the day are served after closing (the queue drains) so
that every offered contact is either answered or abandoned.
"""

from __future__ import annotations

import math
import random
import statistics
from collections import deque
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import simpy

__all__ = [
    "AgentState",
    "ChannelTraffic",
    "Contact",
    "DayResult",
    "Estimate",
    "QueueSimConfig",
    "ReplicatedResult",
    "RoutingPolicy",
    "confidence_interval",
    "longest_idle_agent",
    "sample_handle_time",
    "simulate",
    "simulate_day",
]

HandleDistribution = Literal["exponential", "lognormal"]


@dataclass(frozen=True)
class ChannelTraffic:
    """Traffic of one channel into the queue."""

    name: str
    arrival_rate_per_s: float
    aht_s: float
    distribution: HandleDistribution = "exponential"
    cv: float = 1.0  # coefficient of variation of the handle time (lognormal only)

    def __post_init__(self) -> None:
        if not math.isfinite(self.arrival_rate_per_s) or self.arrival_rate_per_s < 0:
            raise ValueError(f"{self.name}: arrival_rate_per_s must be a finite number >= 0")
        if not math.isfinite(self.aht_s) or self.aht_s <= 0:
            raise ValueError(f"{self.name}: aht_s must be a finite number > 0")
        if self.distribution not in ("exponential", "lognormal"):
            raise ValueError(f"{self.name}: distribution must be 'exponential' or 'lognormal'")
        if not math.isfinite(self.cv) or self.cv <= 0:
            raise ValueError(f"{self.name}: cv must be a finite number > 0")


@dataclass(frozen=True)
class QueueSimConfig:
    channels: Sequence[ChannelTraffic]
    agents: int
    target_answer_s: float = 20.0
    duration_s: float = 8 * 3600.0
    warmup_s: float = 0.0  # arrivals before this are simulated but not measured
    patience_s: float | None = None  # mean exponential patience; None = nobody abandons

    def __post_init__(self) -> None:
        if not self.channels:
            raise ValueError("at least one channel is required")
        if isinstance(self.agents, bool) or not isinstance(self.agents, int) or self.agents < 1:
            raise ValueError("agents must be an integer >= 1")
        if not math.isfinite(self.target_answer_s) or self.target_answer_s < 0:
            raise ValueError("target_answer_s must be a finite number >= 0")
        if not math.isfinite(self.duration_s) or self.duration_s <= 0:
            raise ValueError("duration_s must be a finite number > 0")
        if not 0 <= self.warmup_s < self.duration_s:
            raise ValueError("warmup_s must be >= 0 and < duration_s")
        if self.patience_s is not None and (not self.patience_s > 0 or math.isnan(self.patience_s)):
            raise ValueError("patience_s must be > 0 or None")


@dataclass
class Contact:
    id: int
    channel: ChannelTraffic
    arrived_at: float
    answered_at: float | None = None
    abandoned: bool = False


@dataclass
class AgentState:
    id: int
    idle_since: float = 0.0
    busy: bool = False
    handled: int = 0
    busy_s: float = 0.0  # busy time inside the measured window


RoutingPolicy = Callable[[Contact, Sequence[AgentState]], AgentState]
"""Chooses, among the free agents (never empty), the one who takes ``contact``."""


def longest_idle_agent(contact: Contact, free_agents: Sequence[AgentState]) -> AgentState:
    """Default policy: the agent idle the longest (ties: lowest id)."""
    return min(free_agents, key=lambda agent: (agent.idle_since, agent.id))


@dataclass(frozen=True)
class DayResult:
    offered: int
    answered: int
    answered_within_target: int
    abandoned: int
    service_level: float
    asa_s: float
    occupancy: float
    abandon_rate: float
    handled_per_agent: tuple[int, ...] = ()  # contacts each agent handled (all day, by agent id)


@dataclass(frozen=True)
class Estimate:
    mean: float
    low: float
    high: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


@dataclass(frozen=True)
class ReplicatedResult:
    replications: int
    confidence: float
    service_level: Estimate
    asa_s: Estimate
    occupancy: Estimate
    abandon_rate: Estimate
    days: list[DayResult] = field(repr=False)


def _handle_time(rng: random.Random, channel: ChannelTraffic) -> float:
    if channel.distribution == "exponential":
        return rng.expovariate(1.0 / channel.aht_s)
    sigma2 = math.log1p(channel.cv * channel.cv)
    return rng.lognormvariate(math.log(channel.aht_s) - sigma2 / 2.0, math.sqrt(sigma2))


def sample_handle_time(rng: random.Random, channel: ChannelTraffic) -> float:
    """One handle time of ``channel`` (exponential, or lognormal with the channel's cv)."""
    return _handle_time(rng, channel)


class _Day:
    def __init__(self, config: QueueSimConfig, rng: random.Random, policy: RoutingPolicy) -> None:
        self.config = config
        self.rng = rng
        self.policy = policy
        self.env = simpy.Environment()
        self.agents = [AgentState(id=i) for i in range(config.agents)]
        self.waiting: deque[Contact] = deque()
        self.contacts: list[Contact] = []
        self.next_id = 0

    def run(self) -> DayResult:
        for channel in self.config.channels:
            if channel.arrival_rate_per_s > 0:
                self.env.process(self._arrivals(channel))
        self.env.run()  # runs until the queue drains after closing
        return self._result()

    def _arrivals(self, channel: ChannelTraffic) -> Generator[Any, Any, None]:
        env = self.env
        while True:
            yield env.timeout(self.rng.expovariate(channel.arrival_rate_per_s))
            if env.now >= self.config.duration_s:
                return
            contact = Contact(id=self.next_id, channel=channel, arrived_at=env.now)
            self.next_id += 1
            self.contacts.append(contact)
            self.waiting.append(contact)
            if self.config.patience_s is not None:
                env.process(self._patience(contact, self.rng.expovariate(1.0 / self.config.patience_s)))
            self._dispatch()

    def _patience(self, contact: Contact, patience: float) -> Generator[Any, Any, None]:
        yield self.env.timeout(patience)
        if contact.answered_at is None:
            contact.abandoned = True  # removed lazily from the queue by _dispatch

    def _dispatch(self) -> None:
        while self.waiting:
            free = [agent for agent in self.agents if not agent.busy]
            if not free:
                return
            contact = self.waiting.popleft()
            if contact.abandoned:
                continue
            agent = self.policy(contact, free)
            if agent.busy or agent not in free:
                raise RuntimeError("routing policy chose an agent that is not free")
            contact.answered_at = self.env.now
            agent.busy = True
            self.env.process(self._handle(agent, contact))

    def _handle(self, agent: AgentState, contact: Contact) -> Generator[Any, Any, None]:
        start = self.env.now
        yield self.env.timeout(_handle_time(self.rng, contact.channel))
        end = self.env.now
        window_start, window_end = self.config.warmup_s, self.config.duration_s
        agent.busy_s += max(0.0, min(end, window_end) - max(start, window_start))
        agent.busy = False
        agent.handled += 1
        agent.idle_since = end
        self._dispatch()

    def _result(self) -> DayResult:
        config = self.config
        measured = [c for c in self.contacts if c.arrived_at >= config.warmup_s]
        offered = len(measured)
        waits = [c.answered_at - c.arrived_at for c in measured if c.answered_at is not None]
        answered = len(waits)
        within = sum(1 for w in waits if w <= config.target_answer_s)
        abandoned = sum(1 for c in measured if c.abandoned)
        window = config.duration_s - config.warmup_s
        busy = math.fsum(agent.busy_s for agent in self.agents)
        return DayResult(
            offered=offered,
            answered=answered,
            answered_within_target=within,
            abandoned=abandoned,
            service_level=within / offered if offered else 1.0,
            asa_s=statistics.fmean(waits) if waits else 0.0,
            occupancy=busy / (config.agents * window),
            abandon_rate=abandoned / offered if offered else 0.0,
            handled_per_agent=tuple(agent.handled for agent in self.agents),
        )


def simulate_day(
    config: QueueSimConfig,
    seed: int,
    policy: RoutingPolicy = longest_idle_agent,
) -> DayResult:
    """Simulate one day of ``config`` with a deterministic ``seed``."""
    return _Day(config, random.Random(seed), policy).run()


def _student_t_two_sided_cdf(t: float, df: int) -> float:
    """P(|T| <= t) for Student's t with integer ``df`` (Abramowitz & Stegun 26.7.3-4)."""
    theta = math.atan(t / math.sqrt(df))
    c2 = math.cos(theta) ** 2
    s = math.sin(theta)
    if df % 2 == 1:
        total, term = 0.0, 1.0
        if df > 1:
            term = math.cos(theta)
            total = term
            for k in range(3, df - 1, 2):
                term *= c2 * (k - 1) / k
                total += term
        return (2.0 / math.pi) * (theta + s * total) if df > 1 else 2.0 * theta / math.pi
    total, term = 1.0, 1.0
    for k in range(2, df - 1, 2):
        term *= c2 * (k - 1) / k
        total += term
    return s * total


def _t_critical(confidence: float, df: int) -> float:
    """Two-sided Student t critical value, found by bisection on the exact CDF."""
    low, high = 0.0, 1.0
    while _student_t_two_sided_cdf(high, df) < confidence:
        high *= 2.0
    for _ in range(100):
        mid = (low + high) / 2.0
        if _student_t_two_sided_cdf(mid, df) < confidence:
            low = mid
        else:
            high = mid
    return high


def _estimate(values: Sequence[float], t_crit: float) -> Estimate:
    mean = statistics.fmean(values)
    half = t_crit * statistics.stdev(values) / math.sqrt(len(values))
    return Estimate(mean=mean, low=mean - half, high=mean + half)


def confidence_interval(values: Sequence[float], confidence: float = 0.95) -> Estimate:
    """Mean of ``values`` (independent replications, at least 2) with a Student-t interval."""
    if len(values) < 2:
        raise ValueError("at least two values are needed for a confidence interval")
    if not 0 < confidence < 1:
        raise ValueError("confidence must be strictly between 0 and 1")
    return _estimate(values, _t_critical(confidence, len(values) - 1))


def simulate(
    config: QueueSimConfig,
    replications: int = 20,
    seed: int = 0,
    confidence: float = 0.95,
    policy: RoutingPolicy = longest_idle_agent,
) -> ReplicatedResult:
    """Run independent replications (day ``i`` seeded from ``seed`` and ``i``) and return means
    with Student-t confidence intervals across days."""
    if isinstance(replications, bool) or not isinstance(replications, int) or replications < 2:
        raise ValueError("replications must be an integer >= 2")
    if not 0 < confidence < 1:
        raise ValueError("confidence must be strictly between 0 and 1")
    days = [simulate_day(config, seed * 1_000_003 + i, policy) for i in range(replications)]
    t_crit = _t_critical(confidence, replications - 1)
    return ReplicatedResult(
        replications=replications,
        confidence=confidence,
        service_level=_estimate([d.service_level for d in days], t_crit),
        asa_s=_estimate([d.asa_s for d in days], t_crit),
        occupancy=_estimate([d.occupancy for d in days], t_crit),
        abandon_rate=_estimate([d.abandon_rate for d in days], t_crit),
        days=days,
    )
