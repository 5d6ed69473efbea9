"""The domain-event bus (frontdesk/bus.py) and the browser frames built from events (realtime_payloads)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select

from frontdesk import events as ev
from frontdesk import realtime_payloads
from frontdesk.bus import Bus
from frontdesk.bus import bus as process_bus
from frontdesk.conversations.schemas import ConversationOut, MessageOut
from frontdesk.db import Database

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
CID = uuid.UUID("0190a000-0000-7000-8000-000000000001")
UID = uuid.UUID("0190a000-0000-7000-8000-000000000002")
OLD = uuid.UUID("0190a000-0000-7000-8000-000000000003")
MID = uuid.UUID("0190a000-0000-7000-8000-000000000004")
CUST = uuid.UUID("0190a000-0000-7000-8000-000000000005")

_meta = MetaData()
_rows = Table("bus_rows", _meta, Column("id", Integer, primary_key=True), Column("note", String(40)))


@pytest.fixture
def bus() -> Any:
    """The process's bus, emptied for the test and restored afterwards."""
    saved = {phase: list(subs) for phase, subs in process_bus._subs.items()}
    process_bus.clear()
    yield process_bus
    process_bus.clear()
    for phase, subs in saved.items():
        for event_type, fn in subs:
            process_bus.subscribe(event_type, fn, phase=phase)  # type: ignore[arg-type]


@pytest.fixture
async def db(tmp_path: Any) -> Any:
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/bus.db")
    async with database.engine.begin() as conn:
        await conn.run_sync(_meta.create_all)
    yield database
    await database.dispose()


class _Hub:
    def __init__(self) -> None:
        self.frames: list[tuple[str, str, dict[str, Any]]] = []

    async def publish(self, topic: str, type: str, data: dict[str, Any]) -> None:
        self.frames.append((topic, type, data))


def _conversation(**over: Any) -> ConversationOut:
    values: dict[str, Any] = {
        "id": CID,
        "customer_id": CUST,
        "channel": "email",
        "inbox_id": None,
        "subject": "Where is my order?",
        "status": "open",
        "priority": "normal",
        "queue_id": None,
        "team_id": None,
        "assignee_id": UID,
        "message_count": 1,
        "created_at": NOW,
        "updated_at": NOW,
        "snoozed_until": None,
        "last_message_at": NOW,
        "first_response_at": None,
        "first_response_seconds": None,
        "resolved_at": None,
        "resolution_seconds": None,
    }
    values.update(over)
    return ConversationOut.model_validate(values)


def _message() -> MessageOut:
    return MessageOut.model_validate(
        {
            "id": MID,
            "conversation_id": CID,
            "customer_id": CUST,
            "direction": "outbound",
            "channel": "email",
            "author_type": "agent",
            "author_id": UID,
            "text": "On its way.",
            "html": None,
            "delivery_status": "queued",
            "meta": {},
            "external_id": None,
            "error": None,
            "created_at": NOW,
            "status_at": NOW,
        }
    )


async def test_in_transaction_rows_roll_back_and_after_commit_never_runs(bus: Bus, db: Database) -> None:
    seen_after: list[Any] = []

    async def write(conn: Any, events: list[ev.UserChanged]) -> list[Any]:
        await conn.execute(insert(_rows), [{"note": str(e.user_id)} for e in events])
        return [lambda: seen_after.append("woken")]

    async def after(events: list[ev.UserChanged], hub: Any) -> None:
        seen_after.extend(events)

    bus.subscribe(ev.UserChanged, write)
    bus.subscribe(ev.UserChanged, after, phase="after_commit")

    async def fail() -> None:
        async with db.transaction() as session:
            bus.emit(session, ev.UserChanged(UID))
            await session.flush()
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        await fail()
    async with db.engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(_rows))).scalar() == 0
    assert seen_after == []

    async with db.transaction() as session:
        bus.emit(session, ev.UserChanged(UID))
        bus.emit(session, ev.UserChanged(OLD))
    async with db.engine.connect() as conn:
        notes = (await conn.execute(select(_rows.c.note).order_by(_rows.c.id))).scalars().all()
    assert notes == [str(UID), str(OLD)]  # one call with both events, in emit order
    assert seen_after == [ev.UserChanged(UID), ev.UserChanged(OLD), "woken"]


async def test_a_failing_in_transaction_subscriber_rolls_the_change_back(bus: Bus, db: Database) -> None:
    async def write_then_fail(conn: Any, events: list[Any]) -> list[Any]:
        await conn.execute(insert(_rows), [{"note": "half"}])
        raise RuntimeError("subscriber failed")

    bus.subscribe(ev.UserChanged, write_then_fail)

    async def change() -> None:
        async with db.transaction() as session:
            await session.execute(insert(_rows).values(note="the change"))
            bus.emit(session, ev.UserChanged(UID))

    with pytest.raises(RuntimeError):
        await change()
    async with db.engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(_rows))).scalar() == 0


async def test_dispatch_is_by_type_and_follows_subclasses(bus: Bus) -> None:
    got: dict[str, list[Any]] = {"updated": [], "created": [], "user": []}

    async def on_updated(events: list[Any], hub: Any) -> None:
        got["updated"].extend(events)

    async def on_created(events: list[Any], hub: Any) -> None:
        got["created"].extend(events)

    async def on_user(events: list[Any], hub: Any) -> None:
        got["user"].extend(events)

    bus.subscribe(ev.ConversationUpdated, on_updated, phase="after_commit")
    bus.subscribe(ev.ConversationCreated, on_created, phase="after_commit")
    bus.subscribe(ev.UserChanged, on_user, phase="after_commit")
    bus.subscribe(ev.UserChanged, on_user, phase="after_commit")  # idempotent
    created = ev.ConversationCreated(conversation=_conversation())
    updated = ev.ConversationUpdated(conversation=_conversation(), changes=("status",))
    team = ev.TeamChanged(uuid.uuid4())
    await bus.run_after_commit([created, team, updated, ev.UserChanged(UID)], None)
    assert got == {"updated": [created, updated], "created": [created], "user": [ev.UserChanged(UID)]}
    assert bus.subscribers("after_commit", ev.TeamChanged) == ()


async def test_a_failing_after_commit_subscriber_does_not_stop_the_others(bus: Bus) -> None:
    got: list[Any] = []

    async def boom(events: list[Any], hub: Any) -> None:
        raise RuntimeError("push failed")

    async def fine(events: list[Any], hub: Any) -> None:
        got.extend(events)

    bus.subscribe(ev.UserChanged, boom, phase="after_commit")
    bus.subscribe(ev.UserChanged, fine, phase="after_commit")
    await bus.run_after_commit([ev.UserChanged(UID)], None)
    assert got == [ev.UserChanged(UID)]


# -- the frames the pages read (their shape must not change) -------------------------------------


def test_conversation_updated_frames() -> None:
    view = _conversation()
    event = ev.ConversationUpdated(conversation=view, changes=("assignee_id", "status"), notify=(OLD, UID))
    frames = realtime_payloads.frames(event)
    data = {"conversation": view.model_dump(mode="json"), "changes": ["assignee_id", "status"]}
    assert frames == [
        ("desk", "conversation.updated", data),
        (f"conversation:{CID}", "conversation.updated", data),
        (f"user:{UID}", "conversation.updated", data),
        (f"user:{OLD}", "conversation.updated", data),
    ]
    assert event.assigned
    assert event.status_changed
    assert not event.resolved
    created = realtime_payloads.frames(ev.ConversationCreated(conversation=_conversation(assignee_id=None)))
    assert [(t, d["changes"]) for t, _type, d in created] == [
        ("desk", ["created"]),
        (f"conversation:{CID}", ["created"]),
    ]
    by_routing = realtime_payloads.frames(
        ev.ConversationUpdated(conversation=view, changes=("queue_id",), by="routing")
    )
    assert by_routing[0][2]["by"] == "routing"


def test_message_frames() -> None:
    message = _message()
    sent = realtime_payloads.frames(ev.MessageSent(conversation_id=CID, assignee_id=UID, message=message))
    data = {"conversation_id": str(CID), "message": message.model_dump(mode="json")}
    assert sent == [
        ("desk", "conversation.message_created", data),
        (f"conversation:{CID}", "conversation.message_created", data),
        (f"user:{UID}", "conversation.message_created", data),
    ]
    received = ev.MessageReceived(CID, MID, CUST, "email", None, "inbound", "customer", NOW, "Hello", True, False)
    flat = {
        "conversation_id": str(CID),
        "message_id": str(MID),
        "customer_id": str(CUST),
        "channel": "email",
        "inbox_id": None,
        "direction": "inbound",
        "author_type": "customer",
        "created_at": NOW.isoformat(),
        "preview": "Hello",
        "new_conversation": True,
        "reopened": False,
    }
    assert realtime_payloads.frames(received) == [
        ("desk", "conversation.message_created", flat),
        (f"conversation:{CID}", "conversation.message_created", flat),
    ]
    status = ev.MessageStatusChanged(CID, MID, "email", "sent", "<x@y>", None, NOW, {"read_by_agent_at": "t"})
    assert realtime_payloads.frames(status)[0] == (
        "desk",
        "conversation.message_updated",
        {
            "conversation_id": str(CID),
            "message": {
                "id": str(MID),
                "channel": "email",
                "delivery_status": "sent",
                "external_id": "<x@y>",
                "error": None,
                "status_at": NOW.isoformat(),
                "read_by_agent_at": "t",
            },
        },
    )
    mention = ev.UserMentioned(UID, CID, MID, OLD, "Anna", "look @bob")
    assert realtime_payloads.frames(mention) == [
        (
            f"user:{UID}",
            "conversation.mentioned",
            {
                "conversation_id": str(CID),
                "message_id": str(MID),
                "by": {"id": str(OLD), "name": "Anna"},
                "excerpt": "look @bob",
            },
        )
    ]


def test_presence_and_customer_frames() -> None:
    presence = realtime_payloads.frames(ev.PresenceChanged(UID, "available", NOW, {"until": None}))
    data = {"user_id": str(UID), "status": "available", "since": NOW.isoformat(), "until": None}
    assert presence == [("desk", "agent.presence", data), (f"user:{UID}", "agent.presence", data)]
    merge = uuid.uuid4()
    merged = realtime_payloads.frames(ev.CustomerMerged(merge_id=merge, survivor_id=CUST, merged_id=OLD))
    data = {"merge_id": str(merge), "survivor_id": str(CUST), "merged_id": str(OLD)}
    assert merged == [(f"customer:{CUST}", "customer.merged", data), (f"customer:{OLD}", "customer.merged", data)]
    assert realtime_payloads.frames(ev.UserChanged(UID)) == []  # no page shows it


async def test_push_publishes_every_frame_in_order() -> None:
    hub = _Hub()
    events: list[ev.DomainEvent] = [
        ev.PresenceChanged(UID, "away", NOW),
        ev.ConversationUpdated(conversation=_conversation(assignee_id=None), changes=("priority",)),
    ]
    await realtime_payloads.push(events, hub)
    assert [(t, ty) for t, ty, _d in hub.frames] == [
        ("desk", "agent.presence"),
        (f"user:{UID}", "agent.presence"),
        ("desk", "conversation.updated"),
        (f"conversation:{CID}", "conversation.updated"),
    ]
