"""A routing leader that stops loses nothing: the next one rebuilds waiting items, open offers,
assignments, recent declines and capacity shifts from the database (SQLite and PostgreSQL). Only
one leader decides at a time: a second one on the same database waits for the lock."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from frontdesk.models.routing import RoutingLeadership, RoutingOffer
from frontdesk.routing.leader import LeadershipLost, RoutingLeader
from tests.builders import make_customer
from tests.builders.routing import (
    API,
    conversation,
    create_queue_via_api,
    decisions,
    item,
    kinds,
    open_conversation,
    pending_offers,
    person,
    presence,
    profile,
    settle,
)


async def _epoch(app) -> int:
    async with app.state.db.transaction() as s:
        return int(await s.scalar(select(RoutingLeadership.epoch).where(RoutingLeadership.id == 1)))


async def test_a_new_leader_rebuilds_everything_from_the_database(frozen_clock, client, app, settings):
    clock = frozen_clock
    _, admin = await person(app, "admin", "Admin")
    alice, alice_h = await person(app, "agent", "Alice")
    bob, bob_h = await person(app, "agent", "Bob")
    await create_queue_via_api(client, admin, name="Chat", offer_timeout_seconds=30)
    await profile(client, admin, alice, max_per_channel={"webchat": 2})
    await profile(client, admin, bob, max_per_channel={"webchat": 1})
    await presence(client, alice_h, "available")
    kept = await open_conversation(client, admin, (await make_customer(app.state.db, "Kept")).id)
    offered = await open_conversation(client, admin, (await make_customer(app.state.db, "Offered")).id)
    await settle(app)
    by_conv = {str(o.conversation_id): o for o in await pending_offers(app)}
    assert {o.agent_id for o in by_conv.values()} == {alice}
    r = await client.post(f"{API}/routing/offers/{by_conv[kept].id}/accept", headers=alice_h)
    assert r.status_code == 200
    await presence(client, bob_h, "available")
    waiting = await open_conversation(client, admin, (await make_customer(app.state.db, "Waiting")).id)
    await settle(app)
    [bobs] = await pending_offers(app, waiting)
    assert bobs.agent_id == bob
    r = await client.post(f"{API}/routing/offers/{bobs.id}/decline", headers=bob_h)
    assert r.status_code == 200
    await settle(app)
    assert (await item(app, waiting)).state == "waiting"  # Alice is full, Bob declined
    old_epoch = await _epoch(app)

    # The leader stops (a restart); a new one takes over the same database.
    first: RoutingLeader = app.state.routing
    await first.stop()
    clock.advance(seconds=5)
    second = RoutingLeader(app.state.db, settings, name="second")
    await second.start()
    try:
        await asyncio.wait_for(second.ready.wait(), 20)
        assert await _epoch(app) == old_epoch + 1
        router = second.router
        assert router is not None
        # Rebuilt: the waiting item, the open offer (same offer, same agent), the assignment's load.
        assert router.items[waiting].state.value == "waiting"
        assert router.items[offered].offered_to == str(alice)
        assert kept not in router.items
        assert second.held[kept] == (str(alice), "webchat")
        assert router.agents[str(alice)].load == {"webchat": 2}
        assert router.agents[str(bob)].load == {}
        await second.step()
        # Nothing was offered twice, and Bob is not offered what he just declined.
        assert [o.id for o in await pending_offers(app, offered)] == [by_conv[offered].id]
        assert await pending_offers(app, waiting) == []
        assert (await conversation(app, kept)).assignee_id == alice

        # Life goes on: the open offer times out at its original deadline and moves to Bob.
        clock.advance(seconds=26)
        await second.step()
        assert [o.agent_id for o in await pending_offers(app, offered)] == [bob]
        # Alice answers nothing more: her slot freed by the timeout takes the waiting one.
        assert [o.agent_id for o in await pending_offers(app, waiting)] == [alice]
        log = await decisions(client, admin, offered)
        assert kinds(log) == ["queued", "offered", "timed_out", "offered"]
        async with app.state.db.transaction() as s:
            accepted = await s.scalar(
                select(func.count()).select_from(RoutingOffer).where(RoutingOffer.status == "accepted")
            )
        assert accepted == 1
    finally:
        await second.stop()


async def test_only_one_leader_at_a_time_and_the_next_takes_over(client, app, settings):
    first: RoutingLeader = app.state.routing
    await asyncio.wait_for(first.ready.wait(), 20)
    other = RoutingLeader(app.state.db, settings, name="standby")
    other.lock_retry = 0.2
    await other.start()
    try:
        await asyncio.sleep(1.0)
        assert first.is_leader
        assert not other.is_leader  # the lock (advisory lock / file lock) is taken
        assert await other.step() is False  # a standby never decides
        epoch = await _epoch(app)
        await first.stop()
        await asyncio.wait_for(other.ready.wait(), 10)
        assert other.is_leader
        assert await _epoch(app) == epoch + 1
    finally:
        await other.stop()


async def test_a_leader_whose_epoch_was_taken_cannot_commit(frozen_clock, client, app, settings):
    """Fencing: if another process took over (a newer epoch), the old leader's step is rolled back."""
    _, admin = await person(app, "admin", "Admin")
    _, alice_h = await person(app, "agent", "Alice")
    await create_queue_via_api(client, admin, name="Chat")
    await presence(client, alice_h, "available")
    await app.state.routing.stop()  # driven by hand below, without its loop
    leader = RoutingLeader(app.state.db, settings, name="old")
    assert await leader._acquire()
    try:
        await leader._take_over()
        assert await leader.step()
        async with app.state.db.transaction() as s:
            row = await s.get(RoutingLeadership, 1)
            row.epoch += 1  # what a new leader does when it takes over
            row.holder = "somebody else"
        cid = await open_conversation(client, admin, (await make_customer(app.state.db)).id)
        with pytest.raises(LeadershipLost, match="epoch"):
            await leader.step()
        assert not leader.is_leader
        assert await pending_offers(app, cid) == []  # nothing it decided was committed
        assert (await item(app, cid)) is None
        assert await leader.step() is False
    finally:
        await leader._step_down()
