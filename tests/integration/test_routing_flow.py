"""Routing end to end through the API, on SQLite and PostgreSQL: conversations are queued by the
routing rules, offered to the best agent, accepted, declined, timed out, returned when an agent
goes offline, auto-accepted, and capacity moves to a spiking queue and back. Every step must be
readable in the conversation's decision log.

The app's routing leader runs (it took the lock when the app started); tests drive it with
``settle`` (one leader step = inbox, timers, one decision cycle) under a frozen clock.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from frontdesk.models import AgentPresence
from tests.builders import make_customer
from tests.builders.routing import (
    API,
    Recorder,
    conversation,
    create_queue_via_api,
    decisions,
    get,
    item,
    kinds,
    open_conversation,
    pending_offers,
    person,
    post,
    presence,
    profile,
    put,
    settle,
)


@pytest.fixture(autouse=True)
def no_routing_errors(caplog, app):
    """A leader step that fails is rolled back and rebuilt, which could hide a bug: none may fail
    (checked before the app's teardown empties the tables under the running leader)."""
    yield
    errors = [r for r in caplog.records if r.name.startswith("frontdesk.routing") and r.levelname == "ERROR"]
    assert errors == [], [r.getMessage() for r in errors]


@pytest.fixture
async def team(frozen_clock, client, app):
    """An admin, a supervisor and two agents (Alice, Bob) with chat capacity, both offline."""
    _, admin = await person(app, "admin", "Admin")
    _, supervisor = await person(app, "supervisor", "Sue")
    alice, alice_h = await person(app, "agent", "Alice")
    bob, bob_h = await person(app, "agent", "Bob")
    for uid in (alice, bob):
        await profile(client, admin, uid)
    return {
        "clock": frozen_clock,
        "admin": admin,
        "supervisor": supervisor,
        "alice": (alice, alice_h),
        "bob": (bob, bob_h),
    }


async def test_offer_times_out_goes_to_the_next_agent_and_a_decline_is_logged(client, app, team):
    clock, admin = team["clock"], team["admin"]
    (alice, alice_h), (bob, bob_h) = team["alice"], team["bob"]
    await create_queue_via_api(client, admin, name="Chat", offer_timeout_seconds=30)
    await presence(client, alice_h, "available")
    clock.advance(seconds=5)
    await presence(client, bob_h, "available")  # Alice has been idle longer
    customer = await make_customer(app.state.db, "Grace Hopper")
    inbox = await Recorder.open(app, f"user:{alice}", f"user:{bob}")
    try:
        cid = await open_conversation(client, admin, customer.id)
        await settle(app)
        offers = await pending_offers(app, cid)
        assert [o.agent_id for o in offers] == [alice]
        sent = inbox.of("routing.offer", f"user:{alice}")
        assert len(sent) == 1
        assert sent[0]["conversation_id"] == cid
        assert sent[0]["customer_name"] == "Grace Hopper"
        assert sent[0]["queue_name"] == "Chat"
        assert sent[0]["seconds"] == 30
        assert sent[0]["priority"] == "normal"
        assert sent[0]["offer_id"] == str(offers[0].id)

        clock.advance(seconds=31)  # Alice does not answer
        await settle(app)
        offers = await pending_offers(app, cid)
        assert [o.agent_id for o in offers] == [bob]
        withdrawn = inbox.of("routing.offer_withdrawn", f"user:{alice}")
        assert withdrawn
        assert withdrawn[0]["conversation_id"] == cid

        r = await client.post(f"{API}/routing/offers/{offers[0].id}/decline", headers=bob_h)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "declined"
        await settle(app)
        # Alice missed it a moment ago and Bob declined: it waits rather than bouncing back to them.
        assert await pending_offers(app, cid) == []
        assert (await item(app, cid)).state == "waiting"

        log = await decisions(client, admin, cid)
        assert kinds(log) == ["queued", "offered", "timed_out", "offered", "declined"]
        assert log[0]["queue"] == "Chat"
        assert log[1]["agent"] == "Alice"
        assert log[1]["rule"] == "best_skill_longest_idle"
        assert log[2]["agent"] == "Alice"
        assert log[2]["waited_seconds"] == pytest.approx(31, abs=0.5)
        assert log[3]["agent"] == "Bob"
        assert log[4]["agent"] == "Bob"
        assert "declined" in log[4]["reason"]

        clock.advance(seconds=61)  # past redecline_after: Alice may get it again
        await settle(app)
        assert [o.agent_id for o in await pending_offers(app, cid)] == [alice]
    finally:
        await inbox.close()


async def test_accept_assigns_the_conversation_and_a_closed_offer_cannot_be_taken(client, app, team):
    clock, admin = team["clock"], team["admin"]
    (alice, alice_h), (_bob, bob_h) = team["alice"], team["bob"]
    await create_queue_via_api(client, admin, name="Chat", offer_timeout_seconds=20)
    await presence(client, alice_h, "available")
    customer = await make_customer(app.state.db)
    desk = await Recorder.open(app, "desk")
    try:
        cid = await open_conversation(client, admin, customer.id)
        await settle(app)
        [offer] = await pending_offers(app, cid)
        # Someone else's offer is not theirs to answer.
        r = await client.post(f"{API}/routing/offers/{offer.id}/accept", headers=bob_h)
        assert r.status_code == 404
        mine = await get(client, "/routing/offers", alice_h)
        assert [o["id"] for o in mine] == [str(offer.id)]
        clock.advance(seconds=3)
        r = await client.post(f"{API}/routing/offers/{offer.id}/accept", headers=alice_h)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "accepted"
        assert r.json()["conversation_id"] == cid
        conv = await conversation(app, cid)
        assert conv.assignee_id == alice
        updated = [d for d in desk.of("conversation.updated") if d["conversation"]["id"] == cid]
        assert updated[-1]["conversation"]["assignee_id"] == str(alice)
        assert "assignee_id" in updated[-1]["changes"]
        # Answering twice is refused, and the leader keeps the assignment.
        r = await client.post(f"{API}/routing/offers/{offer.id}/decline", headers=alice_h)
        assert r.status_code == 409
        await settle(app)
        assert (await item(app, cid)).state == "assigned"
        log = await decisions(client, admin, cid)
        assert kinds(log) == ["queued", "offered", "accepted"]
        assert log[-1]["waited_seconds"] == pytest.approx(3, abs=0.5)

        # An offer that ran out cannot be accepted, even before the leader noticed.
        other = await open_conversation(client, admin, customer.id)
        await settle(app)
        [late] = await pending_offers(app, other)
        clock.advance(seconds=25)
        r = await client.post(f"{API}/routing/offers/{late.id}/accept", headers=alice_h)
        assert r.status_code == 409
        assert (await conversation(app, other)).assignee_id is None
    finally:
        await desk.close()


async def test_agents_who_keep_missing_offers_are_set_away(client, app, team):
    clock, admin = team["clock"], team["admin"]
    (alice, alice_h), _ = team["alice"], team["bob"]
    await create_queue_via_api(client, admin, name="Chat", offer_timeout_seconds=10)
    await presence(client, alice_h, "available")
    desk = await Recorder.open(app, "desk")
    try:
        convs = [
            await open_conversation(client, admin, (await make_customer(app.state.db, f"C{i}")).id) for i in range(3)
        ]
        await settle(app)
        assert len(await pending_offers(app)) == 3  # three chats fit her capacity
        clock.advance(seconds=11)
        await settle(app)
        me = await get(client, "/agents/me/presence", alice_h)
        assert me["status"] == "away"
        async with app.state.db.transaction() as s:
            row = await s.get(AgentPresence, alice)
            assert row is not None
            assert row.reason == "missed 3 offers in a row"
        events = [d for d in desk.of("agent.presence") if d["user_id"] == str(alice)]
        assert events[-1]["status"] == "away"
        # Nobody is left to offer them to: all three wait (none lost).
        assert await pending_offers(app) == []
        assert [(await item(app, c)).state for c in convs] == ["waiting"] * 3
        # Back to available, the count starts again and she gets them.
        await presence(client, alice_h, "available")
        clock.advance(seconds=61)
        await settle(app)
        assert len(await pending_offers(app)) == 3
    finally:
        await desk.close()


async def test_auto_accept_queue_assigns_at_once(client, app, team):
    admin = team["admin"]
    (alice, alice_h) = team["alice"]
    await create_queue_via_api(client, admin, name="Email", channels=["email"], auto_accept=True)
    await presence(client, alice_h, "available")
    inbox = await Recorder.open(app, f"user:{alice}")
    try:
        cid = await open_conversation(client, admin, (await make_customer(app.state.db)).id, channel="email")
        await settle(app)
        conv = await conversation(app, cid)
        assert conv.assignee_id == alice
        assert await pending_offers(app) == []
        assert inbox.of("routing.offer") == []
        assigned = [d for d in inbox.of("conversation.updated") if d["conversation"]["id"] == cid]
        assert assigned
        assert assigned[-1]["conversation"]["assignee_id"] == str(alice)
        log = await decisions(client, admin, cid)
        assert kinds(log) == ["queued", "assigned"]
        assert log[1]["agent"] == "Alice"
        assert "auto-accept" in log[1]["reason"]
    finally:
        await inbox.close()


async def test_going_offline_returns_unanswered_offers_first_in_line(client, app, team):
    clock, admin = team["clock"], team["admin"]
    (alice, alice_h), (bob, bob_h) = team["alice"], team["bob"]
    await create_queue_via_api(client, admin, name="Chat")
    for uid in (alice, bob):
        await profile(client, admin, uid, max_per_channel={"webchat": 1})
    await presence(client, alice_h, "available")
    inbox = await Recorder.open(app, f"user:{alice}")
    try:
        first = await open_conversation(client, admin, (await make_customer(app.state.db, "First")).id)
        await settle(app)
        [offer] = await pending_offers(app, first)
        assert offer.agent_id == alice
        clock.advance(seconds=5)
        urgent = await open_conversation(
            client, admin, (await make_customer(app.state.db, "Urgent")).id, priority="urgent"
        )
        await settle(app)
        assert (await item(app, urgent)).state == "waiting"  # Alice is full

        await presence(client, alice_h, "offline")
        await settle(app)
        back = await item(app, first)
        assert back.state == "waiting"
        assert back.first_in_line
        assert inbox.of("routing.offer_withdrawn")[-1]["offer_id"] == str(offer.id)
        r = await client.post(f"{API}/routing/offers/{offer.id}/accept", headers=alice_h)
        assert r.status_code == 409

        await presence(client, bob_h, "available")
        await settle(app)
        # Bob has room for one: the returned conversation goes before the (urgent) newer one.
        [given] = await pending_offers(app)
        assert (str(given.conversation_id), given.agent_id) == (first, bob)
        log = await decisions(client, admin, first)
        assert kinds(log) == ["queued", "offered", "returned", "offered"]
        assert "first in line" in log[2]["reason"]
        assert log[2]["agent"] == "Alice"
    finally:
        await inbox.close()


async def test_capacity_moves_to_a_spiking_queue_and_back(client, app, team):
    clock, admin, supervisor = team["clock"], team["admin"], team["supervisor"]
    (alice, alice_h) = team["alice"]
    voice = await create_queue_via_api(
        client, admin, name="Calls", channels=["voice"], priority=80, auto_accept=True,
        service_level_percent=80, service_level_seconds=20,
    )  # fmt: skip
    await create_queue_via_api(client, admin, name="Mail", channels=["email"], priority=20, service_level_seconds=14400)
    await profile(
        client, admin, alice, max_per_channel={"voice": 1, "email": 5}, cost={"voice": 60, "email": 10}, blocks={}
    )
    await presence(client, alice_h, "available")
    desk = await Recorder.open(app, "desk")
    try:
        calls = [
            await open_conversation(
                client, admin, (await make_customer(app.state.db, f"Caller {i}")).id, channel="voice"
            )
            for i in range(3)
        ]
        await settle(app)
        clock.advance(seconds=30)  # two callers have waited past the 20 s target
        await settle(app)
        shifts = desk.of("routing.capacity_shift")
        assert [(s["queue_id"], s["direction"], s["channels"]) for s in shifts] == [(voice["id"], "to", ["email"])]
        assert "below target" in shifts[0]["reason"]
        state = await get(client, "/routing/state", supervisor)
        calls_state = next(q for q in state["queues"] if q["id"] == voice["id"])
        assert calls_state["shift"]["direction"] == "to"
        assert calls_state["waiting"] == 2
        assert next(a for a in state["agents"] if a["user_id"] == str(alice))["paused_channels"] == ["email"]
        # While the shift holds, email is not offered to her even though she has room.
        mail = await open_conversation(client, admin, (await make_customer(app.state.db, "Writer")).id, channel="email")
        await settle(app)
        assert (await item(app, mail)).state == "waiting"

        # The spike ends: every call is answered and finished.
        for cid in calls:
            r = await client.patch(f"{API}/conversations/{cid}", json={"status": "resolved"}, headers=admin)
            assert r.status_code == 200, r.text
            await settle(app)
            await presence(client, alice_h, "available")  # skip after-call work
        clock.advance(seconds=2)
        await settle(app)
        shifts = desk.of("routing.capacity_shift")
        assert [s["direction"] for s in shifts] == ["to", "back"]
        assert "back at target" in shifts[1]["reason"]
        history = await get(client, f"/routing/capacity-shifts?queue_id={voice['id']}", supervisor)
        assert [h["direction"] for h in history] == ["back", "to"]
        await settle(app)
        assert [o.agent_id for o in await pending_offers(app, mail)] == [alice]
    finally:
        await desk.close()


async def test_rules_pick_the_queue_from_the_customer_and_boost_vips(client, app, team):
    admin = team["admin"]
    general = await create_queue_via_api(client, admin, name="Support", priority=40)
    premium = await create_queue_via_api(client, admin, name="Premium", priority=70)
    credit = await create_queue_via_api(client, admin, name="Credit control", priority=50)
    russian = await create_queue_via_api(client, admin, name="Russian desk", priority=50)
    rules = [
        {"name": "Debtors", "queue_id": credit["id"], "conditions": {"segments": ["debtor"]}},
        {"name": "VIPs", "queue_id": premium["id"], "conditions": {"segments": ["vip"]}, "priority": 75},
        {"name": "Russian", "queue_id": russian["id"], "conditions": {"languages": ["ru"], "channels": ["webchat"]}},
    ]
    for rule in rules:
        await post(client, "/routing/rules", rule, admin)
    vip = await make_customer(app.state.db, "Vera", attributes={"vip": True})
    debtor = await make_customer(app.state.db, "Dan", attributes={"balance_due": "120.50", "vip": True})
    ivan = await make_customer(app.state.db, "Иван", locale="ru-RU")
    plain = await make_customer(app.state.db, "Pat")
    cids = {}
    for key, customer in (("vip", vip), ("debtor", debtor), ("ivan", ivan), ("plain", plain)):
        cids[key] = await open_conversation(client, admin, customer.id)
    await settle(app)
    got = {key: (await item(app, cid)) for key, cid in cids.items()}
    assert str(got["vip"].queue_id) == premium["id"]
    assert got["vip"].vip
    assert got["vip"].priority == 75
    assert str(got["debtor"].queue_id) == credit["id"]  # the first matching rule wins
    assert str(got["ivan"].queue_id) == russian["id"]
    assert str(got["plain"].queue_id) == general["id"]  # no rule: the general queue
    assert str((await conversation(app, cids["vip"])).queue_id) == premium["id"]
    log = await decisions(client, admin, cids["vip"])
    assert log[0]["kind"] == "queued"
    assert log[0]["rule"] == "VIPs"
    assert "VIP boost" in log[0]["reason"]
    log = await decisions(client, admin, cids["plain"])
    assert log[0]["rule"] == "general queue"
    # A conversation that names its queue goes there, rules or not.
    named = await open_conversation(client, admin, vip.id, queue_id=general["id"])
    await settle(app)
    assert str((await item(app, named)).queue_id) == general["id"]


async def test_sticky_goes_to_the_customers_last_agent(client, app, team):
    clock, admin = team["clock"], team["admin"]
    (alice, alice_h), (bob, bob_h) = team["alice"], team["bob"]
    queue = await create_queue_via_api(client, admin, name="Chat", sticky_wait_seconds=60)
    margaret = await make_customer(app.state.db, "Margaret")
    before = await open_conversation(client, admin, margaret.id, assignee_id=str(alice), queue_id=queue["id"])
    r = await client.patch(f"{API}/conversations/{before}", json={"status": "resolved"}, headers=admin)
    assert r.status_code == 200
    await presence(client, bob_h, "available")  # Bob has been idle longest
    await settle(app)
    clock.advance(seconds=10)
    await presence(client, alice_h, "available")
    await settle(app)
    cid = await open_conversation(client, admin, margaret.id)
    await settle(app)
    [offer] = await pending_offers(app, cid)
    assert offer.agent_id == alice
    log = await decisions(client, admin, cid)
    assert log[-1]["kind"] == "offered"
    assert log[-1]["rule"] == "sticky"
    # Someone else's customer goes by the usual rule: Bob, idle longest.
    other = await open_conversation(client, admin, (await make_customer(app.state.db, "New")).id)
    await settle(app)
    assert [o.agent_id for o in await pending_offers(app, other)] == [bob]


async def test_bullseye_widens_the_pool_after_a_wait(client, app, team):
    clock, admin = team["clock"], team["admin"]
    (bob, bob_h) = team["bob"]
    skill = await post(client, "/skills", {"name": "Billing"}, admin)
    queue = await create_queue_via_api(
        client, admin, name="Billing", required_skills=[{"skill_id": skill["id"], "min_level": 4}],
        bullseye=[{"after_seconds": 30, "level_drop": 2}],
    )  # fmt: skip
    await profile(client, admin, bob, skills=[{"skill_id": skill["id"], "level": 2}])
    await presence(client, bob_h, "available")
    cid = await open_conversation(client, admin, (await make_customer(app.state.db)).id, queue_id=queue["id"])
    await settle(app)
    assert await pending_offers(app, cid) == []  # Bob's level 2 is below 4
    clock.advance(seconds=31)
    await settle(app)
    assert [o.agent_id for o in await pending_offers(app, cid)] == [bob]
    log = await decisions(client, admin, cid)
    assert kinds(log) == ["queued", "expanded", "offered"]
    assert "bullseye ring 1" in log[1]["reason"]
    assert "lowered by 2" in log[1]["reason"]
    assert "bullseye ring 1" in log[2]["reason"]


async def test_overflow_moves_a_long_wait_to_the_next_queue(client, app, team):
    clock, admin = team["clock"], team["admin"]
    backup = await create_queue_via_api(client, admin, name="Backup", priority=30)
    first = await create_queue_via_api(
        client, admin, name="First line", overflow_queue_id=backup["id"], overflow_after_seconds=300
    )
    cid = await open_conversation(client, admin, (await make_customer(app.state.db)).id, queue_id=first["id"])
    await settle(app)
    clock.advance(seconds=301)
    await settle(app)
    moved = await item(app, cid)
    assert str(moved.queue_id) == backup["id"]
    assert moved.state == "waiting"
    assert str((await conversation(app, cid)).queue_id) == backup["id"]
    log = await decisions(client, admin, cid)
    # It was about to miss the 60 s target first (priority raised), then it overflowed.
    assert kinds(log) == ["queued", "priority_raised", "overflowed"]
    assert log[2]["queue"] == "Backup"
    assert "First line" in log[2]["reason"]
    assert log[2]["waited_seconds"] == pytest.approx(301, abs=1)


async def test_a_person_assigning_an_offered_conversation_withdraws_the_offer(client, app, team):
    admin = team["admin"]
    (alice, alice_h), (bob, _bob_h) = team["alice"], team["bob"]
    await create_queue_via_api(client, admin, name="Chat")
    await presence(client, alice_h, "available")
    cid = await open_conversation(client, admin, (await make_customer(app.state.db)).id)
    await settle(app)
    [offer] = await pending_offers(app, cid)
    assert offer.agent_id == alice
    r = await client.patch(f"{API}/conversations/{cid}", json={"assignee_id": str(bob)}, headers=admin)
    assert r.status_code == 200
    await settle(app)
    assert await pending_offers(app, cid) == []
    r = await client.post(f"{API}/routing/offers/{offer.id}/accept", headers=alice_h)
    assert r.status_code == 409
    assert (await conversation(app, cid)).assignee_id == bob
    got = await item(app, cid)
    assert (got.state, got.agent_id) == ("assigned", bob)
    log = await decisions(client, admin, cid)
    assert kinds(log) == ["queued", "offered", "assigned"]
    assert log[-1]["rule"] == "manual"
    assert log[-1]["agent"] == "Bob"


async def test_replying_to_an_offered_conversation_takes_it_and_withdraws_the_offer(client, app, team):
    admin = team["admin"]
    (alice, alice_h), (bob, bob_h) = team["alice"], team["bob"]
    await create_queue_via_api(client, admin, name="Chat")
    await presence(client, alice_h, "available")
    cid = await open_conversation(client, admin, (await make_customer(app.state.db)).id)
    await settle(app)
    [offer] = await pending_offers(app, cid)
    assert offer.agent_id == alice
    # Bob answers it from the "Unassigned" view before Alice accepts.
    r = await client.post(f"{API}/conversations/{cid}/messages", json={"text": "Hello, Bob here"}, headers=bob_h)
    assert r.status_code == 201, r.text
    assert (await conversation(app, cid)).assignee_id == bob
    await settle(app)
    assert await pending_offers(app, cid) == []
    r = await client.post(f"{API}/routing/offers/{offer.id}/accept", headers=alice_h)
    assert r.status_code == 409
    got = await item(app, cid)
    assert (got.state, got.agent_id) == ("assigned", bob)
    log = await decisions(client, admin, cid)
    assert kinds(log) == ["queued", "offered", "assigned"]
    assert (log[-1]["rule"], log[-1]["agent"]) == ("manual", "Bob")


async def test_inbound_messages_are_routed_without_touching_the_ingest_path(client, app, team):
    admin = team["admin"]
    (alice, alice_h) = team["alice"]
    await create_queue_via_api(client, admin, name="Chat")
    await presence(client, alice_h, "available")
    r = await client.post(
        f"{API}/messages/inbound",
        json={"identity": {"kind": "email", "value": "ada@example.com"}, "name": "Ada", "channel": "webchat",
              "external_id": "w-1", "text": "Hello?"},
        headers=admin,
    )  # fmt: skip
    assert r.status_code == 201, r.text
    cid = r.json()["conversation_id"]
    for _ in range(50):  # the writer commits, then the leader hears of it
        await settle(app, 1)
        if await pending_offers(app, cid):
            break
        await asyncio.sleep(0.02)
    [offer] = await pending_offers(app, cid)
    assert offer.agent_id == alice
    # The customer writes again: still one item, one offer.
    r = await client.post(
        f"{API}/messages/inbound",
        json={"identity": {"kind": "email", "value": "ada@example.com"}, "channel": "webchat", "external_id": "w-2",
              "text": "Anyone?"},
        headers=admin,
    )  # fmt: skip
    assert r.json()["conversation_id"] == cid
    await settle(app)
    assert len(await pending_offers(app, cid)) == 1
    assert kinds(await decisions(client, admin, cid)) == ["queued", "offered"]


async def test_resolving_a_waiting_conversation_takes_it_out_of_the_queue(client, app, team):
    admin, supervisor = team["admin"], team["supervisor"]
    queue = await create_queue_via_api(client, admin, name="Chat")
    cid = await open_conversation(client, admin, (await make_customer(app.state.db)).id)
    await settle(app)
    state = await get(client, "/routing/state", supervisor)
    chat = next(q for q in state["queues"] if q["id"] == queue["id"])
    assert chat["waiting"] == 1
    assert chat["items"][0]["conversation_id"] == cid
    r = await client.patch(f"{API}/conversations/{cid}", json={"status": "resolved"}, headers=admin)
    assert r.status_code == 200
    await settle(app)
    assert (await item(app, cid)).state == "done"
    assert kinds(await decisions(client, admin, cid)) == ["queued", "removed"]
    state = await get(client, "/routing/state", supervisor)
    assert next(q for q in state["queues"] if q["id"] == queue["id"])["waiting"] == 0


async def test_supervisor_sets_presence_and_agents_cannot_set_others(client, app, team):
    supervisor = team["supervisor"]
    (alice, alice_h), (_bob, bob_h) = team["alice"], team["bob"]
    out = await put(client, f"/agents/{alice}/presence", {"status": "busy"}, supervisor)
    assert out["status"] == "busy"
    assert (await get(client, "/agents/me/presence", alice_h))["status"] == "busy"
    r = await client.put(f"{API}/agents/{alice}/presence", json={"status": "available"}, headers=bob_h)
    assert r.status_code == 403


async def test_a_desk_that_stays_disconnected_returns_its_offers(client, app, team):
    from frontdesk.routing import inbox

    clock, admin = team["clock"], team["admin"]
    (alice, alice_h), (bob, bob_h) = team["alice"], team["bob"]
    await create_queue_via_api(client, admin, name="Chat", offer_timeout_seconds=300)
    await presence(client, alice_h, "available")
    db = app.state.db
    await inbox.desk_connected(db, alice)  # two tabs
    await inbox.desk_connected(db, alice)
    cid = await open_conversation(client, admin, (await make_customer(app.state.db)).id)
    await settle(app)
    [offer] = await pending_offers(app, cid)
    assert offer.agent_id == alice
    await inbox.desk_disconnected(db, alice)  # one tab closes: she is still there
    clock.advance(seconds=20)
    await settle(app)
    assert (await get(client, "/agents/me/presence", alice_h))["status"] == "available"
    await inbox.desk_disconnected(db, alice)  # the last one closes...
    clock.advance(seconds=5)
    await inbox.desk_connected(db, alice)  # ...a reload reconnects within the grace
    clock.advance(seconds=20)
    await settle(app)
    assert (await get(client, "/agents/me/presence", alice_h))["status"] == "available"
    assert [o.id for o in await pending_offers(app, cid)] == [offer.id]
    await inbox.desk_disconnected(db, alice)  # gone for good
    clock.advance(seconds=16)
    await settle(app)
    me = await get(client, "/agents/me/presence", alice_h)
    assert me["status"] == "offline"
    assert me["reason"] == "disconnected"
    back = await item(app, cid)
    assert back.state == "waiting"
    assert back.first_in_line
    await presence(client, bob_h, "available")
    await settle(app)
    assert [o.agent_id for o in await pending_offers(app, cid)] == [bob]
    assert "disconnected" in (await decisions(client, admin, cid))[2]["reason"]


async def test_after_a_call_the_agent_wraps_up_then_gets_the_next_call(client, app, team):
    clock, admin = team["clock"], team["admin"]
    (alice, alice_h) = team["alice"]
    await create_queue_via_api(
        client, admin, name="Calls", channels=["voice"], auto_accept=True, service_level_seconds=600
    )
    await profile(client, admin, alice, after_call_work_seconds=45)
    await presence(client, alice_h, "available")
    desk = await Recorder.open(app, "desk")
    try:
        first = await open_conversation(
            client, admin, (await make_customer(app.state.db, "Caller 1")).id, channel="voice"
        )
        second = await open_conversation(
            client, admin, (await make_customer(app.state.db, "Caller 2")).id, channel="voice"
        )
        await settle(app)
        assert (await conversation(app, first)).assignee_id == alice
        assert (await item(app, second)).state == "waiting"  # one call at a time
        r = await client.patch(f"{API}/conversations/{first}", json={"status": "resolved"}, headers=admin)
        assert r.status_code == 200
        await settle(app)
        me = await get(client, "/agents/me/presence", alice_h)
        assert me["status"] == "after_call_work"
        assert me["until"].startswith((clock.current + timedelta(seconds=45)).isoformat()[:19])
        assert (await item(app, second)).state == "waiting"  # wrapping up: no new call yet
        clock.advance(seconds=46)
        await settle(app)
        assert (await get(client, "/agents/me/presence", alice_h))["status"] == "available"
        assert (await conversation(app, second)).assignee_id == alice
        statuses = [d["status"] for d in desk.of("agent.presence") if d["user_id"] == str(alice)]
        assert statuses[-2:] == ["after_call_work", "available"]
    finally:
        await desk.close()
