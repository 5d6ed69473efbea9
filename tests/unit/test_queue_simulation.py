"""SimPy queue simulation (frontdesk.wfm.simulation) checked against Erlang C and A."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from frontdesk.wfm.erlang import (
    agents_for_service_level,
    erlang_a_abandon_probability,
    erlang_a_service_level,
    occupancy,
    service_level,
)
from frontdesk.wfm.simulation import (
    AgentState,
    ChannelTraffic,
    Contact,
    QueueSimConfig,
    simulate,
    simulate_day,
)

VOICE = ChannelTraffic("voice", arrival_rate_per_s=0.2, aht_s=180.0)
DAY = 8 * 3600.0
WARMUP = 1800.0  # the day starts with an empty queue; steady-state formulas ignore that


def test_single_skill_voice_queue_matches_erlang_c() -> None:
    # λ = 0.2/s, AHT 180 s (36 Erlangs), staffed for 80/20 by Erlang C -> 41 agents.
    agents = agents_for_service_level(0.2, 180, 0.80, 20)
    assert agents == 41
    config = QueueSimConfig(channels=[VOICE], agents=agents, duration_s=DAY, warmup_s=WARMUP)
    result = simulate(config, replications=40, seed=7)

    expected = service_level(0.2, 180, agents, 20)
    assert result.service_level.contains(expected), (result.service_level, expected)
    assert result.service_level.high - result.service_level.low < 0.06  # the check has teeth
    assert result.occupancy.contains(occupancy(0.2, 180, agents))
    assert result.abandon_rate.mean == 0
    # One agent fewer is visibly worse than what Erlang C promises for 41.
    fewer = simulate(QueueSimConfig(channels=[VOICE], agents=agents - 2, duration_s=DAY, warmup_s=WARMUP), 10, 7)
    assert fewer.service_level.high < expected


def test_abandoning_queue_matches_erlang_a() -> None:
    # Understaffed (39 agents on 36 Erlangs) with mean patience 120 s.
    config = QueueSimConfig(channels=[VOICE], agents=39, duration_s=DAY, warmup_s=WARMUP, patience_s=120.0)
    result = simulate(config, replications=30, seed=3)
    assert result.service_level.contains(erlang_a_service_level(0.2, 180, 39, 20, 120.0))
    assert result.abandon_rate.contains(erlang_a_abandon_probability(0.2, 180, 39, 120.0))
    assert result.abandon_rate.mean > 0


def test_same_seed_same_day_other_seed_other_day() -> None:
    config = QueueSimConfig(channels=[VOICE], agents=40, duration_s=3600.0, patience_s=300.0)
    assert simulate_day(config, seed=11) == simulate_day(config, seed=11)
    assert simulate_day(config, seed=11) != simulate_day(config, seed=12)


def test_every_offered_contact_is_answered_or_abandoned() -> None:
    config = QueueSimConfig(channels=[VOICE], agents=30, duration_s=3600.0, patience_s=60.0)
    day = simulate_day(config, seed=5)
    assert day.offered > 600
    assert day.answered + day.abandoned == day.offered
    assert 0 <= day.answered_within_target <= day.answered


def test_blended_channels_with_lognormal_handle_times() -> None:
    chat = ChannelTraffic("chat", arrival_rate_per_s=0.05, aht_s=400.0, distribution="lognormal", cv=0.6)
    email = ChannelTraffic("email", arrival_rate_per_s=0.02, aht_s=300.0, distribution="lognormal", cv=1.5)
    config = QueueSimConfig(channels=[VOICE, chat, email], agents=70, duration_s=DAY, warmup_s=WARMUP)
    result = simulate(config, replications=5, seed=1)
    # Offered load is 36 + 20 + 6 = 62 Erlangs on 70 agents.
    assert result.occupancy.mean == pytest.approx(62 / 70, abs=0.015)
    offered_per_day = sum(day.offered for day in result.days) / len(result.days)
    assert offered_per_day == pytest.approx(0.27 * (DAY - WARMUP), rel=0.03)


def test_routing_policy_is_pluggable() -> None:
    def lowest_id(contact: Contact, free: Sequence[AgentState]) -> AgentState:
        return min(free, key=lambda agent: agent.id)

    seen: list[str] = []

    def recording(contact: Contact, free: Sequence[AgentState]) -> AgentState:
        seen.append(contact.channel.name)
        return free[-1]

    light = ChannelTraffic("voice", arrival_rate_per_s=0.01, aht_s=60.0)
    config = QueueSimConfig(channels=[light], agents=5, duration_s=3600.0)
    day = simulate_day(config, seed=2, policy=recording)
    assert len(seen) == day.answered > 0

    assert sum(day.handled_per_agent) == day.answered

    # "Always the first free agent" piles work on agent 0; the default (longest idle) spreads it.
    piled = simulate_day(config, seed=2, policy=lowest_id).handled_per_agent
    spread = simulate_day(config, seed=2).handled_per_agent
    assert piled[0] > 0.6 * sum(piled)
    assert piled[-1] == 0
    assert max(spread) - min(spread) <= 2


def test_policy_choosing_a_busy_agent_is_refused() -> None:
    def rogue(contact: Contact, free: Sequence[AgentState]) -> AgentState:
        return AgentState(id=99)

    config = QueueSimConfig(channels=[VOICE], agents=2, duration_s=600.0)
    with pytest.raises(RuntimeError, match="not free"):
        simulate_day(config, seed=1, policy=rogue)


@pytest.mark.parametrize(
    "build",
    [
        lambda: QueueSimConfig(channels=[], agents=1),
        lambda: QueueSimConfig(channels=[VOICE], agents=0),
        lambda: QueueSimConfig(channels=[VOICE], agents=1, warmup_s=DAY, duration_s=DAY),
        lambda: QueueSimConfig(channels=[VOICE], agents=1, patience_s=0),
        lambda: ChannelTraffic("x", arrival_rate_per_s=-1, aht_s=1),
        lambda: ChannelTraffic("x", arrival_rate_per_s=1, aht_s=1, distribution="uniform"),  # type: ignore[arg-type]
        lambda: simulate(QueueSimConfig(channels=[VOICE], agents=1, duration_s=10), replications=1),
    ],
)
def test_invalid_configuration_is_a_value_error(build: object) -> None:
    with pytest.raises(ValueError, match=r"\w"):
        build()  # type: ignore[operator]
