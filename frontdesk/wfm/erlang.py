"""Erlang B, C and A: the queueing maths behind contact-centre staffing.

Pure functions, no I/O. Time is in seconds, rates are per second, traffic is in Erlangs
(``A = arrival_rate * aht``). The numerics avoid factorials and powers altogether:

* Erlang B comes from the recurrence ``B(0) = 1, B(k) = A·B(k-1) / (k + A·B(k-1))``, every
  intermediate value lies in [0, 1], so 5,000 agents are as safe as 5.
* Erlang C is derived from B: ``C = N·B / (N - A·(1 - B))``.
* Erlang A (M/M/N+M, exponential patience) is solved as a birth-death chain whose stationary
  weights are summed in log space and truncated once they fall below ``e^-40`` of the mode.

Service level follows the usual contact-centre definition: the share of *offered* contacts
(answered or abandoned) that are answered within the target time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = [
    "agents_for_service_level",
    "average_speed_of_answer",
    "erlang_a_abandon_probability",
    "erlang_a_service_level",
    "erlang_b",
    "erlang_c",
    "occupancy",
    "service_level",
    "traffic_erlangs",
]

# Stationary weights smaller than e^-40 (~4e-18) of the largest one are dropped.
_LOG_CUTOFF = 40.0
# Hard limit on the Erlang A state space; only reached when patience is extremely long in an
# overloaded queue, where the answer is "the queue explodes" anyway.
_MAX_STATES = 2_000_000
_MAX_AGENTS = 1_000_000


# ---------------------------------------------------------------------------------------------
# validation


def _check_nonnegative(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return value


def _check_positive(name: str, value: float) -> float:
    value = _check_nonnegative(name, value)
    if value == 0:
        raise ValueError(f"{name} must be > 0")
    return value


def _check_agents(agents: int) -> int:
    if isinstance(agents, bool) or not isinstance(agents, int):
        raise ValueError(f"agents must be an integer, got {agents!r}")
    if agents < 0:
        raise ValueError(f"agents must be >= 0, got {agents}")
    if agents > _MAX_AGENTS:
        raise ValueError(f"agents must be <= {_MAX_AGENTS}, got {agents}")
    return agents


def _check_fraction(name: str, value: float) -> float:
    value = _check_nonnegative(name, value)
    if not 0 < value < 1:
        raise ValueError(f"{name} must be strictly between 0 and 1, got {value!r}")
    return value


def _check_patience(patience_s: float) -> float:
    """Mean patience in seconds; ``math.inf`` means nobody abandons (Erlang C)."""
    if isinstance(patience_s, bool) or not isinstance(patience_s, int | float):
        raise ValueError(f"patience_s must be a number, got {patience_s!r}")
    patience_s = float(patience_s)
    if math.isnan(patience_s) or patience_s <= 0:
        raise ValueError(f"patience_s must be > 0 (math.inf for no abandonment), got {patience_s!r}")
    return patience_s


# ---------------------------------------------------------------------------------------------
# Erlang B and C


def traffic_erlangs(arrival_rate_per_s: float, aht_s: float) -> float:
    """Offered load ``A = λ·AHT`` in Erlangs."""
    return _check_nonnegative("arrival_rate_per_s", arrival_rate_per_s) * _check_positive("aht_s", aht_s)


def erlang_b(traffic_erlangs: float, agents: int) -> float:
    """Blocking probability of an M/M/N/N loss system (Erlang B)."""
    a = _check_nonnegative("traffic_erlangs", traffic_erlangs)
    n = _check_agents(agents)
    b = 1.0
    for k in range(1, n + 1):
        ab = a * b
        b = ab / (k + ab)
    return b


def erlang_c(traffic: float, agents: int) -> float:
    """Probability that a contact has to wait in an M/M/N queue (Erlang C).

    Returns 1.0 when ``agents <= traffic``: the queue is unstable and, in the long run, every
    contact waits.
    """
    a = _check_nonnegative("traffic", traffic)
    n = _check_agents(agents)
    if n <= a:
        return 1.0
    if a == 0:
        return 0.0
    b = erlang_b(a, n)
    c = n * b / (n - a * (1.0 - b))
    return min(1.0, max(0.0, c))


def service_level(arrival_rate_per_s: float, aht_s: float, agents: int, target_answer_s: float) -> float:
    """Share of contacts answered within ``target_answer_s`` (Erlang C, nobody abandons).

    ``SL = 1 - C·exp(-(N - A)·t / AHT)``; 0.0 when the queue is unstable (``N <= A``).
    """
    a = traffic_erlangs(arrival_rate_per_s, aht_s)
    n = _check_agents(agents)
    t = _check_nonnegative("target_answer_s", target_answer_s)
    if n <= a:
        return 0.0
    c = erlang_c(a, n)
    return min(1.0, max(0.0, 1.0 - c * math.exp(-(n - a) * t / aht_s)))


def average_speed_of_answer(arrival_rate_per_s: float, aht_s: float, agents: int) -> float:
    """Mean wait over all contacts, in seconds: ``ASA = C·AHT / (N - A)``; inf when ``N <= A``."""
    a = traffic_erlangs(arrival_rate_per_s, aht_s)
    n = _check_agents(agents)
    if n <= a:
        return math.inf
    return erlang_c(a, n) * aht_s / (n - a)


def occupancy(arrival_rate_per_s: float, aht_s: float, agents: int) -> float:
    """Share of staffed time agents spend handling contacts: ``A / N``, capped at 1.0."""
    a = traffic_erlangs(arrival_rate_per_s, aht_s)
    n = _check_agents(agents)
    if n == 0:
        return 1.0 if a > 0 else 0.0
    return min(1.0, a / n)


def agents_for_service_level(
    arrival_rate_per_s: float,
    aht_s: float,
    target_fraction: float,
    target_seconds: float,
    max_occupancy: float | None = None,
) -> int:
    """Smallest number of agents whose Erlang C service level reaches ``target_fraction``.

    With ``max_occupancy`` (0 < x <= 1) the answer is also at least ``ceil(A / max_occupancy)``.
    Zero traffic needs zero agents.
    """
    a = traffic_erlangs(arrival_rate_per_s, aht_s)
    target = _check_fraction("target_fraction", target_fraction)
    t = _check_nonnegative("target_seconds", target_seconds)
    if max_occupancy is not None:
        max_occ = _check_nonnegative("max_occupancy", max_occupancy)
        if not 0 < max_occ <= 1:
            raise ValueError(f"max_occupancy must be in (0, 1], got {max_occupancy!r}")
    if a == 0:
        return 0
    n = math.floor(a) + 1
    if max_occupancy is not None:
        n = max(n, math.ceil(a / max_occ - 1e-12))
    while service_level(arrival_rate_per_s, aht_s, n, t) < target:
        n += 1
        if n > _MAX_AGENTS:  # pragma: no cover - needs absurd loads
            raise ValueError("no staffing up to the agent limit meets the target")
    return n


# ---------------------------------------------------------------------------------------------
# Erlang A (M/M/N+M)


def _erlang_a_stationary(arrival_rate: float, aht_s: float, agents: int, theta: float) -> list[float]:
    """Stationary probabilities π_0..π_K of the number in system, truncated where negligible.

    Birth rate λ everywhere; death rate ``min(n, N)·μ + max(n - N, 0)·θ``.
    """
    mu = 1.0 / aht_s
    if theta == 0 and agents * mu <= arrival_rate:
        raise ValueError("without abandonment the queue is unstable: agents must exceed the traffic in Erlangs")
    if arrival_rate == 0:
        return [1.0]
    log_lambda = math.log(arrival_rate)
    logs = [0.0]
    log_max = 0.0
    n = 0
    while True:
        n += 1
        death = min(n, agents) * mu + max(n - agents, 0) * theta
        value = logs[-1] + log_lambda - math.log(death)
        logs.append(value)
        log_max = max(log_max, value)
        # Past the mode (weights now falling for good: n >= N and λ < death) and negligible.
        if n >= agents and death > arrival_rate and value < log_max - _LOG_CUTOFF:
            break
        if n >= _MAX_STATES:
            raise ValueError("state space too large: patience is too long for this load (queue is unstable)")
    weights = [math.exp(v - log_max) for v in logs]
    total = math.fsum(weights)
    return [w / total for w in weights]


def _served_within(agents: int, mu: float, theta: float, waiting: Sequence[float], target_s: float) -> float:
    """Σ_j waiting[j]·P(a contact arriving with j already queued is answered within target_s).

    The tagged contact's queue ahead shrinks at rate ``N·μ + j·θ`` (a service completion or an
    abandonment ahead); it abandons itself at rate θ. That pure-death chain is solved by
    uniformisation, propagating all starting positions at once.
    """
    size = len(waiting)
    if size == 0:
        return 0.0
    if target_s == 0:
        return 0.0
    uniform_rate = agents * mu + size * theta
    mean_jumps = uniform_rate * target_s
    # Poisson(mean_jumps) weights, summed until the tail is negligible.
    k_max = int(mean_jumps + 12.0 * math.sqrt(mean_jumps) + 30)
    # A contact with more than k_max ahead cannot be answered within k_max jumps: drop those
    # positions (the rate bound above stays valid for the shorter chain).
    waiting = waiting[: k_max + 1]
    size = len(waiting)
    mass = list(waiting)  # mass[j]: probability still waiting with j contacts ahead
    served = 0.0  # absorbed into "answered" within k jumps
    result = 0.0
    log_mean = math.log(mean_jumps)
    step_probs = [(agents * mu + j * theta) / uniform_rate for j in range(size)]
    for k in range(k_max + 1):
        poisson_k = math.exp(-mean_jumps + k * log_mean - math.lgamma(k + 1))
        result += poisson_k * served
        # one uniformised jump: move forward, abandon (lost), or stay
        served += mass[0] * step_probs[0]
        stay = 1.0 - theta / uniform_rate
        new_mass = [0.0] * size
        for j in range(size):
            m = mass[j]
            if m == 0.0:
                continue
            forward = m * step_probs[j]
            new_mass[j] += m * (stay - step_probs[j])
            if j > 0:
                new_mass[j - 1] += forward
        mass = new_mass
    return result


def erlang_a_service_level(
    arrival_rate_per_s: float,
    aht_s: float,
    agents: int,
    target_answer_s: float,
    patience_s: float,
) -> float:
    """Share of offered contacts answered within ``target_answer_s`` with exponential patience.

    ``patience_s`` is the mean patience; ``math.inf`` gives back Erlang C. Abandoned contacts
    stay in the denominator (they were offered), as in the usual contact-centre definition.
    """
    lam = _check_nonnegative("arrival_rate_per_s", arrival_rate_per_s)
    aht = _check_positive("aht_s", aht_s)
    n = _check_agents(agents)
    t = _check_nonnegative("target_answer_s", target_answer_s)
    theta = 1.0 / _check_patience(patience_s)
    if n == 0:
        return 0.0
    pi = _erlang_a_stationary(lam, aht, n, theta)
    immediate = math.fsum(pi[:n])  # PASTA: arrivals see the stationary distribution
    waiting = pi[n:]
    return min(1.0, max(0.0, immediate + _served_within(n, 1.0 / aht, theta, waiting, t)))


def erlang_a_abandon_probability(arrival_rate_per_s: float, aht_s: float, agents: int, patience_s: float) -> float:
    """Share of offered contacts that abandon: ``θ·E[queue length] / λ`` (0 if patience is infinite)."""
    lam = _check_nonnegative("arrival_rate_per_s", arrival_rate_per_s)
    aht = _check_positive("aht_s", aht_s)
    n = _check_agents(agents)
    theta = 1.0 / _check_patience(patience_s)
    if lam == 0 or theta == 0:
        if theta == 0 and n * (1.0 / aht) <= lam:
            raise ValueError("without abandonment the queue is unstable: agents must exceed the traffic in Erlangs")
        return 0.0
    pi = _erlang_a_stationary(lam, aht, n, theta)
    queue_length = math.fsum(max(k - n, 0) * p for k, p in enumerate(pi))
    return min(1.0, max(0.0, theta * queue_length / lam))
