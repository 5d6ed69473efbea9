"""One test per routing rule of the pure decision core (frontdesk/routing/core.py)."""

from __future__ import annotations

import pytest

from frontdesk.routing.core import (
    Agent,
    Capacity,
    Item,
    ItemState,
    Presence,
    Queue,
    Ring,
    Router,
    RoutingError,
)

BLENDED = Capacity(
    max_per_channel={"voice": 1, "webchat": 3, "email": 5},
    budget=100,
    cost={"voice": 100, "webchat": 25, "email": 10},
    blocks={"voice": frozenset({"webchat", "email"})},
)


def agent(aid: str, skills: dict[str, int] | None = None, cap: Capacity = BLENDED, **kw: object) -> Agent:
    return Agent(aid, skills if skills is not None else {"billing": 3}, cap, presence=Presence.available, **kw)  # type: ignore[arg-type]


def router(*queues: Queue, agents: tuple[Agent, ...] = (), now: float = 0.0) -> Router:
    r = Router()
    for q in queues:
        r.add_queue(q)
    for a in agents:
        r.add_agent(a, now)
    return r


def offers_to(r: Router, now: float) -> dict[str, str]:
    return {o.item_id: o.agent_id for o in r.assign(now).offers}


# a target of 0 % never triggers a capacity shift: these queues test the other rules alone
NO_SHIFT = (0.0, 20.0)
CHAT = Queue("chat", frozenset({"webchat"}), {"billing": 1}, priority=50, auto_accept=True, sl_target=NO_SHIFT)
EMAIL = Queue("email", frozenset({"email"}), {"billing": 1}, priority=10, auto_accept=True, sl_target=NO_SHIFT)
VOICE = Queue("voice", frozenset({"voice"}), {"billing": 1}, priority=80, auto_accept=True, sl_target=NO_SHIFT)


def test_budget_allows_three_chats_plus_two_emails_but_not_a_fourth_chat():
    r = router(CHAT, EMAIL, agents=(agent("a"),))
    for i in range(4):
        r.add_item(Item(f"c{i}", "chat", "webchat", arrived_at=0), 0)
    for i in range(3):
        r.add_item(Item(f"e{i}", "email", "email", arrived_at=0), 0)
    got = offers_to(r, 1)
    assert sorted(got) == ["c0", "c1", "c2", "e0", "e1"]  # 3*25 + 2*10 = 95; a 3rd email would be 105
    assert r.agents["a"].used_budget() == 95


def test_per_channel_maximum_holds_even_with_budget_left():
    cap = Capacity(max_per_channel={"webchat": 2}, budget=100, cost={"webchat": 10})
    r = router(CHAT, agents=(agent("a", cap=cap),))
    for i in range(3):
        r.add_item(Item(f"c{i}", "chat", "webchat", arrived_at=0), 0)
    assert len(offers_to(r, 1)) == 2


def test_no_chat_is_offered_during_a_call():
    # the call costs half the budget: only the interrupt rule keeps the chat away
    cap = Capacity(
        max_per_channel={"voice": 1, "webchat": 3},
        budget=100,
        cost={"voice": 50, "webchat": 25},
        blocks={"voice": frozenset({"webchat"})},
    )
    r = router(CHAT, VOICE, agents=(agent("a", cap=cap),))
    r.add_item(Item("v", "voice", "voice", arrived_at=0), 0)
    assert offers_to(r, 1) == {"v": "a"}
    r.add_item(Item("c", "chat", "webchat", arrived_at=1), 1)
    assert offers_to(r, 2) == {}
    r.complete("v", 3)
    assert offers_to(r, 3) == {"c": "a"}


def test_a_call_needs_the_whole_budget():
    r = router(CHAT, VOICE, agents=(agent("a"),))
    r.add_item(Item("c", "chat", "webchat", arrived_at=0), 0)
    assert offers_to(r, 1) == {"c": "a"}
    r.add_item(Item("v", "voice", "voice", arrived_at=1), 1)
    assert offers_to(r, 2) == {}


def test_skill_minimum_level_and_highest_skill_wins():
    q = Queue("q", frozenset({"webchat"}), {"billing": 3}, auto_accept=True)
    r = router(q, agents=(agent("low", {"billing": 2}), agent("mid", {"billing": 3}), agent("top", {"billing": 5})))
    r.add_item(Item("i", "q", "webchat", arrived_at=0), 0)
    assert offers_to(r, 1) == {"i": "top"}
    r.add_item(Item("j", "q", "webchat", arrived_at=0), 0)
    r.add_item(Item("k", "q", "webchat", arrived_at=0), 0)
    r.add_item(Item("l", "q", "webchat", arrived_at=0), 0)
    r.add_item(Item("m", "q", "webchat", arrived_at=0), 0)
    r.add_item(Item("n", "q", "webchat", arrived_at=0), 0)
    got = offers_to(r, 2)
    assert "low" not in got.values()
    assert len(got) == 5  # top has 2 more chats, mid 3


def test_longest_idle_then_least_occupied():
    r = router(CHAT, agents=(agent("a"),), now=0)
    r.add_agent(agent("b"), 5)
    r.add_item(Item("i", "chat", "webchat", arrived_at=6), 6)
    assert offers_to(r, 6) == {"i": "a"}  # idle since 0 vs 5
    r.add_item(Item("j", "chat", "webchat", arrived_at=7), 7)
    assert offers_to(r, 7) == {"j": "b"}  # a was just offered

    occ = Queue("occ", frozenset({"webchat"}), {}, selection="least_occupied", auto_accept=True)
    r2 = router(occ, agents=(agent("a"), agent("b")))
    r2.add_item(Item("x", "occ", "webchat", arrived_at=0), 0)
    r2.add_item(Item("y", "occ", "webchat", arrived_at=0), 0)
    assert sorted(offers_to(r2, 1).values()) == ["a", "b"]  # spread: each agent one chat


def test_ageing_lets_an_old_low_priority_item_pass_a_new_high_priority_one():
    low = Queue("low", frozenset({"webchat"}), {}, priority=10, ageing_per_minute=1.0, auto_accept=True)
    high = Queue("high", frozenset({"webchat"}), {}, priority=40, ageing_per_minute=1.0, auto_accept=True)
    cap = Capacity(max_per_channel={"webchat": 1}, budget=100, cost={"webchat": 25})
    r = router(low, high, agents=(agent("a", cap=cap),))
    r.add_item(Item("old", "low", "webchat", arrived_at=0), 0)
    r.add_item(Item("new", "high", "webchat", arrived_at=60 * 31), 60 * 31)
    assert offers_to(r, 60 * 32) == {"old": "a"}  # 10 + 32 > 40 + 1


def test_higher_priority_first_and_boosts_count():
    cap = Capacity(max_per_channel={"webchat": 1}, budget=100, cost={"webchat": 25})
    r = router(CHAT, agents=(agent("a", cap=cap),))
    r.add_item(Item("plain", "chat", "webchat", arrived_at=0), 0)
    r.add_item(Item("vip", "chat", "webchat", arrived_at=0, vip=True), 0)
    assert offers_to(r, 0) == {"vip": "a"}
    assert r.effective_priority(r.items["plain"], 60) == pytest.approx(51.0)


def test_sticky_to_last_agent_within_wait_then_anyone():
    q = Queue("q", frozenset({"webchat"}), {}, sticky_wait=30, auto_accept=True)
    cap = Capacity(max_per_channel={"webchat": 1}, budget=100, cost={"webchat": 25})
    r = router(q, agents=(agent("a", cap=cap), agent("last", cap=cap)))
    r.add_item(Item("busy", "q", "webchat", arrived_at=0, last_agent_id="a"), 0)
    assert offers_to(r, 0) == {"busy": "a"}  # "a" is idle longer too; now take "last" first
    r.add_item(Item("i", "q", "webchat", arrived_at=1, last_agent_id="last"), 1)
    got = r.assign(1).offers
    assert [(o.item_id, o.agent_id, o.reason.rule) for o in got] == [("i", "last", "sticky")]
    # the last agent is busy: the item is held for them until sticky_wait, then goes to anyone
    r.add_agent(agent("c", cap=cap), 2)
    r.add_item(Item("j", "q", "webchat", arrived_at=2, last_agent_id="last"), 2)
    assert offers_to(r, 3) == {}
    assert offers_to(r, 33) == {"j": "c"}


def test_bullseye_widens_ring_by_ring():
    one = Capacity(max_per_channel={"webchat": 1}, budget=100, cost={"webchat": 25})
    q = Queue(
        "q",
        frozenset({"webchat"}),
        {"french": 4},
        teams=frozenset({"premium"}),
        rings=[Ring(30, level_drop=2), Ring(60, add_teams=frozenset({"backup"})), Ring(120, any_agent=True)],
        auto_accept=True,
    )
    r = router(
        q,
        agents=(
            agent("weak_premium", {"french": 2}, one, teams=frozenset({"premium"})),
            agent("backup", {"french": 3}, one, teams=frozenset({"backup"})),
            agent("anyone", {}, one, teams=frozenset({"general"})),
        ),
    )
    for i, name in enumerate(["w", "b", "x"]):
        r.add_item(Item(name, "q", "webchat", arrived_at=0, priority=90 - i), 0)
    assert offers_to(r, 10) == {}
    assert offers_to(r, 31) == {"w": "weak_premium"}
    assert offers_to(r, 61) == {"b": "backup"}
    cycle = r.assign(121)
    assert [(o.item_id, o.agent_id, o.reason.ring) for o in cycle.offers] == [("x", "anyone", 3)]


def test_offer_timeout_goes_to_the_next_agent_and_misses_set_away():
    q = Queue("q", frozenset({"webchat"}), {}, offer_timeout=10)
    r = router(q, agents=(agent("a"), agent("b")), now=0)
    r.agents["b"].idle_since = 1  # "a" is idle longer and is offered first
    r.add_item(Item("i", "q", "webchat", arrived_at=0), 0)
    (offer,) = r.assign(0).offers
    assert (offer.agent_id, offer.expires_at) == ("a", 10)
    assert r.tick(9) == []
    events = r.tick(10)
    assert [e.kind for e in events] == ["offer.expired"]
    assert offers_to(r, 10) == {"i": "b"}
    r.accept("i", "b", 11)
    assert r.items["i"].state is ItemState.assigned
    r.agent_presence("b", Presence.offline, 12)  # keeps its accepted item
    assert r.items["i"].state is ItemState.assigned
    # "a" missed "i" already; two more misses make three in a row: away
    assert r.agents["a"].missed_offers == 1
    for n in range(2):
        t = 20 + 20 * n
        r.add_item(Item(f"m{n}", "q", "webchat", arrived_at=t), t)
        assert offers_to(r, t) == {f"m{n}": "a"}
        kinds = [e.kind for e in r.tick(t + 10)]
    assert kinds == ["offer.expired", "agent.away"]
    assert r.agents["a"].presence is Presence.away


def test_decline_goes_to_the_next_agent_and_not_back():
    q = Queue("q", frozenset({"webchat"}), {}, redecline_after=60)
    r = router(q, agents=(agent("a"),))
    r.add_item(Item("i", "q", "webchat", arrived_at=0), 0)
    assert offers_to(r, 0) == {"i": "a"}
    r.decline("i", "a", 1)
    assert offers_to(r, 2) == {}
    r.add_agent(agent("b"), 3)
    assert offers_to(r, 3) == {"i": "b"}
    with pytest.raises(RoutingError):
        r.accept("i", "a", 4)


def test_offline_returns_unanswered_items_first_in_line():
    q = Queue("q", frozenset({"webchat"}), {}, offer_timeout=30)
    cap = Capacity(max_per_channel={"webchat": 1}, budget=100, cost={"webchat": 25})
    r = router(q, agents=(agent("a", cap=cap),))
    r.add_item(Item("first", "q", "webchat", arrived_at=50), 50)
    assert offers_to(r, 50) == {"first": "a"}
    r.add_item(Item("older_vip", "q", "webchat", arrived_at=0, vip=True, priority=99), 51)
    events = r.agent_presence("a", Presence.offline, 52)
    assert [(e.kind, e.item_id) for e in events] == [("item.returned", "first")]
    assert r.agents["a"].load == {}
    r.add_agent(agent("b", cap=cap), 53)
    assert offers_to(r, 53) == {"first": "b"}  # ahead of the VIP with higher priority


def test_capacity_moves_to_a_spiking_voice_queue_and_returns():
    voice = Queue("voice", frozenset({"voice"}), {}, priority=80, sl_target=(0.8, 20), handle_time=300)
    email = Queue("email", frozenset({"email"}), {}, priority=10, auto_accept=True)
    r = router(voice, email, agents=(agent("a"),))
    for i in range(10):
        r.add_item(Item(f"v{i}", "voice", "voice", arrived_at=0), 0)
    assert r.projected_service_level("voice", 0) < 0.8
    # a reservation, not a call: the agent has voice busy with an offer; stop email meanwhile
    cycle = r.assign(0)
    assert [(s.kind, s.queue_id, sorted(s.channels)) for s in cycle.shifts] == [("shift", "voice", ["email"])]
    assert cycle.shifts[0].agent_ids == ("a",)
    assert "below target" in cycle.shifts[0].reason
    r.decline(cycle.offers[0].item_id, "a", 1)
    r.add_item(Item("e", "email", "email", arrived_at=1), 1)
    assert "e" not in offers_to(r, 1.5)  # paused (and the voice offer took the budget anyway)
    for item in r.waiting("voice"):
        r.remove_item(item.id, 2)
    for item_id in [i.id for i in r.items.values() if i.queue == "voice"]:
        r.remove_item(item_id, 2)
    cycle = r.assign(3)
    assert [(s.kind, sorted(s.channels)) for s in cycle.shifts] == [("return", ["email"])]
    assert [o.item_id for o in cycle.offers] == ["e"]


def test_projected_service_level_falls_with_backlog_and_age():
    q = Queue("q", frozenset({"webchat"}), {}, sl_target=(0.9, 60), handle_time=60)
    cap = Capacity(max_per_channel={"webchat": 1}, budget=100, cost={"webchat": 25})
    r = router(q, agents=(agent("a", cap=cap),))
    assert r.projected_service_level("q", 0) == 1.0
    r.add_item(Item("i", "q", "webchat", arrived_at=0), 0)
    assert r.projected_service_level("q", 10) == 1.0
    assert r.projected_service_level("q", 61) == 0.0
    for n in range(10):
        r.add_item(Item(f"n{n}", "q", "webchat", arrived_at=0), 0)
    # one agent clears one item a minute: of 11 waiting, two are answered within 60 s (at 0 s and 60 s)
    assert r.projected_service_level("q", 0) == pytest.approx(2 / 11)


def test_unknown_and_duplicate_events_are_refused():
    r = router(CHAT, agents=(agent("a"),))
    r.add_item(Item("i", "chat", "webchat", arrived_at=0), 0)
    with pytest.raises(RoutingError):
        r.add_item(Item("i", "chat", "webchat", arrived_at=0), 0)
    with pytest.raises(RoutingError):
        r.add_item(Item("x", "nope", "webchat", arrived_at=0), 0)
    with pytest.raises(RoutingError):
        r.add_item(Item("y", "chat", "voice", arrived_at=0), 0)
    with pytest.raises(RoutingError):
        r.agent_presence("ghost", Presence.available, 0)
