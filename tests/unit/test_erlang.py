"""Erlang B/C/A staffing maths (frontdesk.wfm.erlang)."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import pytest

from frontdesk.wfm.erlang import (
    agents_for_service_level,
    average_speed_of_answer,
    erlang_a_abandon_probability,
    erlang_a_service_level,
    erlang_b,
    erlang_c,
    occupancy,
    service_level,
)


def _textbook_erlang_c(traffic: Fraction, agents: int) -> Fraction:
    """The factorial form of Erlang C, computed exactly with rationals."""
    top = traffic**agents / math.factorial(agents) * Fraction(agents) / (agents - traffic)
    bottom = sum(traffic**k / math.factorial(k) for k in range(agents)) + top
    return top / bottom


# The worked example of Call Centre Helper, "Erlang C Formula - Made Simple With an Easy Worked
# Example": 100 calls per 30 minutes, AHT 180 s, target 80 % answered in 20 s, max occupancy 85 %.
# Traffic 10 Erlangs; with 11 agents the probability of waiting is 68.21 % and ASA 122.8 s; the
# raw staffing answer is 14 agents (13 fall just short of 80 %).
CALLS_PER_S = 100 / 1800
AHT_S = 180.0


def test_worked_example_probability_of_waiting_and_asa() -> None:
    assert erlang_c(10, 11) == pytest.approx(0.6821, abs=5e-5)
    assert average_speed_of_answer(CALLS_PER_S, AHT_S, 11) == pytest.approx(122.8, abs=0.05)
    assert service_level(CALLS_PER_S, AHT_S, 11, 20) == pytest.approx(0.3896, abs=5e-4)


def test_worked_example_staffing_answer() -> None:
    assert service_level(CALLS_PER_S, AHT_S, 13, 20) < 0.80
    assert service_level(CALLS_PER_S, AHT_S, 14, 20) == pytest.approx(0.8884, abs=5e-4)
    assert agents_for_service_level(CALLS_PER_S, AHT_S, 0.80, 20) == 14
    assert agents_for_service_level(CALLS_PER_S, AHT_S, 0.80, 20, max_occupancy=0.85) == 14
    assert occupancy(CALLS_PER_S, AHT_S, 14) == pytest.approx(10 / 14)


def test_max_occupancy_can_drive_staffing() -> None:
    # At 60 % max occupancy 10 Erlangs need ceil(10 / 0.6) = 17 agents, more than 80/20 needs.
    assert agents_for_service_level(CALLS_PER_S, AHT_S, 0.80, 20, max_occupancy=0.6) == 17


@pytest.mark.parametrize(("traffic", "agents"), [("0.5", 1), ("3", 5), ("10", 11), ("17.25", 20), ("36", 41)])
def test_erlang_c_matches_exact_factorial_formula(traffic: str, agents: int) -> None:
    exact = _textbook_erlang_c(Fraction(traffic), agents)
    assert erlang_c(float(traffic), agents) == pytest.approx(float(exact), rel=1e-12)


def test_erlang_b_known_values() -> None:
    assert erlang_b(1.0, 1) == pytest.approx(0.5)
    assert erlang_b(2.0, 2) == pytest.approx(0.4)  # (4/2) / (1 + 2 + 2)
    assert erlang_b(5.0, 0) == 1.0


@pytest.mark.parametrize(("traffic", "agents"), [(10, 10), (10, 9), (10.5, 10), (3, 0)])
def test_unstable_queue_everyone_waits(traffic: float, agents: int) -> None:
    assert erlang_c(traffic, agents) == 1.0


def test_unstable_queue_service_level_and_asa() -> None:
    assert service_level(0.1, 100, 10, 20) == 0.0
    assert average_speed_of_answer(0.1, 100, 10) == math.inf
    assert occupancy(0.1, 100, 10) == 1.0


def test_no_traffic() -> None:
    assert erlang_c(0, 3) == 0.0
    assert service_level(0, 180, 1, 20) == 1.0
    assert agents_for_service_level(0, 180, 0.8, 20) == 0


def test_large_centres_do_not_overflow() -> None:
    for traffic, agents in [(950.0, 1000), (4900.0, 5000), (480.0, 500)]:
        c = erlang_c(traffic, agents)
        assert 0 < c < 1
    # 500 agents: the answer is the smallest N meeting the target and N - 1 misses it.
    n = agents_for_service_level(2.5, 180, 0.9, 15)
    assert n > 450
    assert service_level(2.5, 180, n, 15) >= 0.9 > service_level(2.5, 180, n - 1, 15)


def test_agents_for_service_level_is_monotone() -> None:
    targets = [0.5, 0.7, 0.8, 0.9, 0.95, 0.99]
    staffed = [agents_for_service_level(0.2, 180, t, 20) for t in targets]
    assert staffed == sorted(staffed)
    assert staffed[0] < staffed[-1]
    loads = [0.05, 0.1, 0.2, 0.4, 0.8]
    staffed = [agents_for_service_level(rate, 180, 0.8, 20) for rate in loads]
    assert staffed == sorted(staffed)
    assert len(set(staffed)) == len(staffed)
    answer_times = [60, 30, 20, 10, 0]
    staffed = [agents_for_service_level(0.2, 180, 0.8, t) for t in answer_times]
    assert staffed == sorted(staffed)


def test_service_level_rises_with_agents() -> None:
    levels = [service_level(0.2, 180, n, 20) for n in range(37, 60)]
    assert all(a < b for a, b in itertools.pairwise(levels))


def test_erlang_a_with_infinite_patience_is_erlang_c() -> None:
    for agents in (11, 13, 20):
        expected = service_level(CALLS_PER_S, AHT_S, agents, 20)
        assert erlang_a_service_level(CALLS_PER_S, AHT_S, agents, 20, math.inf) == pytest.approx(expected, abs=1e-9)
        assert erlang_a_abandon_probability(CALLS_PER_S, AHT_S, agents, math.inf) == 0.0


def test_erlang_a_tends_to_erlang_c_as_patience_grows() -> None:
    expected = service_level(0.2, 180, 41, 20)
    gaps = [abs(erlang_a_service_level(0.2, 180, 41, 20, patience) - expected) for patience in (60, 600, 6e3, 6e5)]
    assert all(a > b for a, b in itertools.pairwise(gaps))
    assert gaps[-1] < 1e-3
    abandons = [erlang_a_abandon_probability(0.2, 180, 41, patience) for patience in (60, 600, 6e3, 6e5)]
    assert all(a > b for a, b in itertools.pairwise(abandons))
    assert abandons[-1] < 1e-4


def test_erlang_a_is_stable_when_overloaded() -> None:
    # 36 Erlangs on 30 agents: Erlang C has no steady state, Erlang A does — impatient callers
    # leave. At least the excess load (6/36 of callers) must abandon.
    abandon = erlang_a_abandon_probability(0.2, 180, 30, 120)
    assert 6 / 36 < abandon < 1
    assert 0 < erlang_a_service_level(0.2, 180, 30, 20, 120) < 0.5


def test_erlang_a_abandonment_falls_with_staff() -> None:
    abandons = [erlang_a_abandon_probability(0.2, 180, n, 90) for n in range(30, 50, 3)]
    assert all(a > b for a, b in itertools.pairwise(abandons))


@pytest.mark.parametrize(
    "call",
    [
        lambda: erlang_b(-1, 3),
        lambda: erlang_b(1, -1),
        lambda: erlang_c(1, 2.5),  # type: ignore[arg-type]
        lambda: erlang_c(math.nan, 2),
        lambda: erlang_c(True, 2),  # type: ignore[arg-type]
        lambda: service_level(0.1, 0, 3, 20),
        lambda: service_level(0.1, 10, 3, -1),
        lambda: agents_for_service_level(0.1, 10, 1.0, 20),
        lambda: agents_for_service_level(0.1, 10, 0.8, 20, max_occupancy=1.5),
        lambda: erlang_a_service_level(0.1, 10, 3, 20, 0),
        lambda: erlang_a_service_level(0.2, 180, 30, 20, math.inf),  # unstable without abandonment
    ],
)
def test_invalid_input_is_a_value_error(call: object) -> None:
    with pytest.raises(ValueError, match=r"\w"):
        call()  # type: ignore[operator]
