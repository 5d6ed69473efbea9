"""Timers: due work runs once, retries with backoff, fails visibly, survives a dead worker."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from frontdesk import clock, timers
from frontdesk.db import Database
from frontdesk.models import Conversation, Customer, Timer
from frontdesk.realtime import MemoryHub
from frontdesk.wiring import timer_handlers

calls: list[dict] = []
counts: Counter[str] = Counter()

# The app's handlers (the snooze test runs the real one) and this file's, registered explicitly.
HANDLERS = timer_handlers()


async def _record(session, timer):
    calls.append(dict(timer.payload))


HANDLERS.add("test.record", _record)


async def _fail(session, timer):
    raise RuntimeError("the printer is on fire")


HANDLERS.add("test.fail", _fail)


async def _count(session, timer):
    counts[timer.payload["n"]] += 1
    await asyncio.sleep(0.001)


HANDLERS.add("test.count", _count)


@pytest.fixture(autouse=True)
def _reset():
    calls.clear()
    counts.clear()


async def _timer(db: Database, timer_id) -> Timer | None:
    async with db.transaction() as s:
        return await s.get(Timer, timer_id)


async def test_due_timer_runs_and_future_one_waits(db: Database, frozen_clock):
    async with db.transaction() as s:
        now_t = await timers.schedule(s, "test.record", clock.now(), {"which": "now"})
        later = await timers.schedule(s, "test.record", clock.now() + timedelta(minutes=5), {"which": "later"})
    loop = timers.TimerLoop(db, handlers=HANDLERS)
    assert await loop.run_due() == 1
    assert calls == [{"which": "now"}]
    assert await _timer(db, now_t.id) is None  # done rows are deleted
    pending = await _timer(db, later.id)
    assert pending is not None
    assert pending.status == "pending"
    assert await loop.run_due() == 0
    frozen_clock.advance(minutes=5)
    assert await loop.run_due() == 1
    assert calls == [{"which": "now"}, {"which": "later"}]


async def test_failure_backs_off_then_fails_visibly(db: Database, frozen_clock):
    async with db.transaction() as s:
        t = await timers.schedule(s, "test.fail", clock.now(), max_attempts=3)
    loop = timers.TimerLoop(db, handlers=HANDLERS)
    assert await loop.run_due() == 1
    row = await _timer(db, t.id)
    assert row is not None
    assert (row.status, row.attempts) == ("pending", 1)
    assert "printer is on fire" in (row.last_error or "")
    first_delay = row.due_at - clock.now()
    assert timedelta(seconds=1) <= first_delay <= timedelta(seconds=2)  # base 2 s, jitter ½..1
    assert await loop.run_due() == 0  # not due again yet

    frozen_clock.advance(seconds=2)
    assert await loop.run_due() == 1
    row = await _timer(db, t.id)
    assert row is not None
    assert (row.status, row.attempts) == ("pending", 2)
    assert timedelta(seconds=2) <= row.due_at - clock.now() <= timedelta(seconds=4)  # doubled

    frozen_clock.advance(seconds=4)
    assert await loop.run_due() == 1
    row = await _timer(db, t.id)
    assert row is not None
    assert (row.status, row.attempts) == ("failed", 3)
    assert row.last_error == "RuntimeError: the printer is on fire"
    frozen_clock.advance(hours=10)
    assert await loop.run_due() == 0  # failed rows stay for inspection, never rerun


async def test_unknown_kind_fails_at_once(db: Database, frozen_clock):
    async with db.transaction() as s:
        t = await timers.schedule(s, "nobody.handles_this", clock.now())
    await timers.TimerLoop(db, handlers=HANDLERS).run_due()
    row = await _timer(db, t.id)
    assert row is not None
    assert row.status == "failed"
    assert "no handler" in (row.last_error or "")


async def test_expired_lease_is_claimed_again(db: Database, frozen_clock):
    async with db.transaction() as s:
        t = await timers.schedule(s, "test.record", clock.now(), {"n": 1})
    # A worker claims the row and dies before finishing it.
    taken = await timers.claim(db, Timer, worker="dead-worker", limit=10, lease_seconds=30)
    assert [c.id for c in taken] == [t.id]
    survivor = timers.TimerLoop(db, worker="survivor", handlers=HANDLERS)
    assert await survivor.run_due() == 0  # still leased
    frozen_clock.advance(seconds=31)
    assert await survivor.run_due() == 1
    assert calls == [{"n": 1}]
    assert await _timer(db, t.id) is None


async def test_key_moves_the_one_timer_and_cancel_drops_it(db: Database, frozen_clock):
    key = f"conversation.snooze:{uuid.uuid4()}"
    async with db.transaction() as s:
        a = await timers.schedule(s, "test.record", clock.now() + timedelta(hours=1), {"v": 1}, key=key)
    async with db.transaction() as s:
        b = await timers.schedule(s, "test.record", clock.now() + timedelta(hours=2), {"v": 2}, key=key)
    assert a.id == b.id
    assert b.due_at == clock.now() + timedelta(hours=2)
    assert b.payload == {"v": 2}
    async with db.transaction() as s:
        assert (await s.execute(select(func.count()).select_from(Timer).where(Timer.key == key))).scalar() == 1
        assert await timers.cancel(s, key) is True
        assert await timers.cancel(s, key) is False
    frozen_clock.advance(hours=3)
    assert await timers.TimerLoop(db, handlers=HANDLERS).run_due() == 0
    assert calls == []


async def test_snooze_ended_reopens_the_conversation(db: Database, frozen_clock):
    hub = MemoryHub()
    db.attach_hub(hub)
    desk = await hub.open(["desk"])
    async with db.transaction() as s:
        customer = Customer(name="Анна Петрова")
        s.add(customer)
        await s.flush()
        conv = Conversation(
            customer_id=customer.id, channel="webchat", status="snoozed", snoozed_until=clock.now() + timedelta(hours=1)
        )
        s.add(conv)
        await s.flush()
        await timers.schedule(
            s,
            "conversation.snooze_ended",
            conv.snoozed_until,
            {"conversation_id": str(conv.id)},
            key=timers.snooze_key(conv.id),
        )
    loop = timers.TimerLoop(db, handlers=HANDLERS)
    assert await loop.run_due() == 0
    frozen_clock.advance(hours=1)
    assert await loop.run_due() == 1
    async with db.transaction() as s:
        reopened = await s.get(Conversation, conv.id)
        assert reopened is not None
        assert (reopened.status, reopened.snoozed_until) == ("open", None)
    event = await asyncio.wait_for(desk.__anext__(), 2)
    assert event.type == "conversation.updated"
    assert (event.data["conversation"]["id"], event.data["conversation"]["status"]) == (str(conv.id), "open")
    assert "status" in event.data["changes"]


@pytest.mark.parametrize("backend", ["postgresql"])  # SQLite serialises writers: no race to test
async def test_two_loops_on_postgresql_never_run_a_row_twice(db: Database, backend: str):
    n = 300
    async with db.transaction() as s:
        for i in range(n):
            await timers.schedule(s, "test.count", clock.now(), {"n": str(i)})
    a = timers.TimerLoop(db, worker="a", batch=20, handlers=HANDLERS)
    b = timers.TimerLoop(db, worker="b", batch=20, handlers=HANDLERS)

    async def drain(loop: timers.TimerLoop) -> int:
        done = 0
        while (k := await loop.run_due()) > 0:
            done += k
        return done

    done_a, done_b = await asyncio.gather(drain(a), drain(b))
    assert done_a + done_b == n
    assert done_a > 0
    assert done_b > 0  # both really took part
    assert len(counts) == n
    assert set(counts.values()) == {1}


# -- leases: a heartbeat while a handler runs, and fencing by attempt ------------------------------

slow_started: list[str] = []
slow: dict[str, asyncio.Event] = {}


async def _slow(session, timer):
    slow_started.append(str(timer.id))
    slow["began"].set()
    await slow["release"].wait()
    session.add(Customer(name=f"done by {timer.locked_by}"))


HANDLERS.add("test.slow", _slow)


@pytest.fixture
def _slow_reset():
    slow_started.clear()
    slow.update(began=asyncio.Event(), release=asyncio.Event())
    yield
    slow["release"].set()


async def _done_by(db: Database) -> list[str]:
    async with db.transaction() as s:
        return list((await s.scalars(select(Customer.name).where(Customer.name.like("done by %")))).all())


@pytest.mark.usefixtures("_slow_reset")
async def test_a_handler_longer_than_the_lease_is_not_started_again_by_another_loop(
    db: Database, database_url: str, settings
):
    """Two loops (two engines, as two processes) on one database, lease 1 s: the handler of the
    first runs for four leases; its heartbeat keeps the row, so the second never starts it."""
    lease = 1.0
    tuned = settings.model_copy(update={"timers_lease_seconds": lease, "timers_poll_seconds": 0.02})
    db_a, db_b = db, Database(database_url)
    try:
        async with db_a.transaction() as s:
            t = await timers.schedule(s, "test.slow", clock.now())
        a = timers.TimerLoop(db_a, tuned, worker="a", handlers=HANDLERS)
        b = timers.TimerLoop(db_b, tuned, worker="b", handlers=HANDLERS)
        a.start()
        await asyncio.wait_for(slow["began"].wait(), 10)
        b.start()
        # The handler keeps running for four leases while b polls every 20 ms.
        await asyncio.sleep(4 * lease)
        assert slow_started == [str(t.id)]
        slow["release"].set()
        for _ in range(500):
            if await _timer(db_a, t.id) is None:
                break
            await asyncio.sleep(0.02)
        await asyncio.gather(a.stop(), b.stop())
        assert slow_started == [str(t.id)]  # started once, by a
        assert await _timer(db_a, t.id) is None
        assert await _done_by(db_a) == ["done by a"]
    finally:
        slow["release"].set()
        await db_b.dispose()


@pytest.mark.usefixtures("_slow_reset")
async def test_a_runner_that_lost_its_lease_does_not_commit_its_result(db: Database, frozen_clock):
    """The first runner stalls past its lease (frozen clock moved on); the row is claimed again
    — by a loop with the very same worker name, so only the attempt number tells them apart. The
    stale runner's work is rolled back; the new claim runs the timer and commits once."""
    async with db.transaction() as s:
        t = await timers.schedule(s, "test.slow", clock.now())
    first = timers.TimerLoop(db, worker="same", handlers=HANDLERS)
    stale = asyncio.create_task(first.run_due())
    await asyncio.wait_for(slow["began"].wait(), 10)
    frozen_clock.advance(seconds=first.lease * 2)  # the first runner's lease has run out
    again = await timers.claim(db, Timer, worker="same", limit=10, lease_seconds=60)
    assert [c.id for c in again] == [t.id]
    slow["release"].set()
    assert await asyncio.wait_for(stale, 10) == 1
    assert await _done_by(db) == []  # the stale runner committed nothing
    row = await _timer(db, t.id)
    assert row is not None
    assert (row.status, row.attempts) == ("running", 2)  # still the new claim's
    second = timers.TimerLoop(db, worker="same", handlers=HANDLERS)
    await second.process(again[0])
    assert await _done_by(db) == ["done by same"]
    assert await _timer(db, t.id) is None
