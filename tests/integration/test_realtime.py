"""The hub contract, run over both backends (in-process and Redis)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from frontdesk.realtime import Hub, MemoryHub, Subscription
from frontdesk.realtime_redis import RedisHub


def _new_hub(url: str | None, prefix: str, buffer: int = 1000) -> Hub:
    if url is None:
        return MemoryHub(buffer=buffer)
    return RedisHub(url, prefix=prefix, buffer=buffer)


@pytest.fixture
async def hub(hub_backend: str | None) -> AsyncIterator[Hub]:
    h = _new_hub(hub_backend, prefix=f"t{uuid.uuid4().hex[:8]}")
    await h.start()
    yield h
    await h.close()


async def _next(sub: Subscription, timeout: float = 3.0):
    return await asyncio.wait_for(sub.__anext__(), timeout)


async def _nothing(sub: Subscription, wait: float = 0.2) -> bool:
    try:
        await asyncio.wait_for(sub.__anext__(), wait)
    except TimeoutError:
        return True
    return False


async def test_fan_out_to_two_subscribers(hub: Hub):
    a = await hub.open(["desk"])
    b = await hub.open(["desk"])
    sent = await hub.publish("desk", "conversation.updated", {"n": 1})
    for sub in (a, b):
        got = await _next(sub)
        assert (got.id, got.type, got.data, got.topic) == (sent.id, "conversation.updated", {"n": 1}, "desk")
    await a.close()
    await b.close()


async def test_ids_increase_per_topic_and_topics_are_isolated(hub: Hub):
    desk = await hub.open(["desk"])
    conv = await hub.open(["conversation:1"])
    e1 = await hub.publish("desk", "x.a", {})
    e2 = await hub.publish("desk", "x.b", {})
    c1 = await hub.publish("conversation:1", "x.c", {})
    assert e2.id == e1.id + 1
    assert c1.id == 1
    assert [(await _next(desk)).type, (await _next(desk)).type] == ["x.a", "x.b"]
    assert (await _next(conv)).type == "x.c"
    assert await _nothing(conv)
    assert await _nothing(desk)
    await desk.close()
    await conv.close()


async def test_subscription_grows_and_shrinks(hub: Hub):
    sub = await hub.open(["desk"])
    await sub.add(["conversation:9"])
    await hub.publish("conversation:9", "x.c", {"k": 1})
    assert (await _next(sub)).data == {"k": 1}
    await sub.remove(["conversation:9"])
    await hub.publish("conversation:9", "x.c", {"k": 2})
    assert await _nothing(sub)
    await sub.close()


async def test_subscribe_iterator_ends_when_hub_closes(hub_backend: str | None):
    h = _new_hub(hub_backend, prefix=f"t{uuid.uuid4().hex[:8]}")
    await h.start()
    sub = await h.open(["desk"])
    await h.close()
    with pytest.raises(StopAsyncIteration):
        await _next(sub)


async def test_resume_within_buffer(hub: Hub):
    for i in range(5):
        await hub.publish("desk", "x.n", {"i": i})
    assert await hub.replay("desk", 5) == []
    events = await hub.replay("desk", 2)
    assert events is not None
    assert [e.id for e in events] == [3, 4, 5]
    assert [e.data["i"] for e in events] == [2, 3, 4]
    assert await hub.replay("never-used", 0) == []


async def test_gap_beyond_buffer_needs_snapshot(hub_backend: str | None):
    h = _new_hub(hub_backend, prefix=f"t{uuid.uuid4().hex[:8]}", buffer=10)
    await h.start()
    try:
        for i in range(25):
            await h.publish("desk", "x.n", {"i": i})
        assert await h.replay("desk", 3) is None  # 4..15 are gone
        assert await h.replay("desk", 40) is None  # ids never issued: state was lost
        kept = await h.replay("desk", 15)
        assert kept is not None
        assert [e.id for e in kept] == list(range(16, 26))
    finally:
        await h.close()


async def test_two_redis_hubs_see_each_other(redis_url: str):
    prefix = f"t{uuid.uuid4().hex[:8]}"
    one, two = RedisHub(redis_url, prefix=prefix), RedisHub(redis_url, prefix=prefix)
    await one.start()
    await two.start()
    try:
        assert one.epoch == two.epoch
        on_one = await one.open(["desk"])
        on_two = await two.open(["desk"])
        a = await one.publish("desk", "x.a", {"from": 1})
        b = await two.publish("desk", "x.b", {"from": 2})
        assert b.id == a.id + 1  # one sequence across processes
        for sub in (on_one, on_two):
            assert [(await _next(sub)).data["from"], (await _next(sub)).data["from"]] == [1, 2]
        replayed = await two.replay("desk", 0)
        assert replayed is not None
        assert [e.type for e in replayed] == ["x.a", "x.b"]
        assert await one.ping()
    finally:
        await one.close()
        await two.close()


async def test_memory_hub_drops_idle_topics_without_replaying_wrong_events():
    from frontdesk.realtime import MemoryHub

    hub = MemoryHub(buffer=10, max_topics=2)
    for _ in range(3):
        await hub.publish("conversation:a", "t", {})
    await hub.publish("conversation:b", "t", {})
    await hub.publish("conversation:c", "t", {})  # drops "a", the least recently published
    assert await hub.head("conversation:a") == 0
    event = await hub.publish("conversation:a", "t", {"again": True})
    assert event.id > 3  # continues above every dropped id
    # A client that saw id 2 of the old "a" cannot be brought up to date: it must take a snapshot.
    assert await hub.replay("conversation:a", 2) is None
    assert [e.data for e in await hub.replay("conversation:a", event.id - 1)] == [{"again": True}]
