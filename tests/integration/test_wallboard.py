"""``GET /api/v1/wallboard``: queue rows, today's service level in the viewer's zone, agents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from frontdesk import clock
from frontdesk.conversations.ingest import InboundMessage
from frontdesk.models import AgentPresence
from tests.builders import agent, make_conversation, make_customer, make_queue, make_user

API = "/api/v1"


@pytest.fixture
def settings(settings):
    return settings.model_copy(update={"run_loops": False})


async def test_wallboard_figures(client, app, frozen_clock):
    # 2026-11-23 09:00 UTC = 12:00 in Moscow; Moscow's day began at 2026-11-22 21:00 UTC.
    now = clock.now()
    assert now == datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    db = app.state.db
    _, supervisor = await agent(app, "supervisor")
    _, agent_headers = await agent(app)
    billing = await make_queue(db, "Billing", service_level_seconds=30, service_level_percent=90)
    support = await make_queue(db, "Support", service_level_seconds=120, service_level_percent=80)
    ann = await make_user(db, name="Ann", role="agent")
    bob = await make_user(db, name="Bob", role="supervisor")
    await make_user(db, name="Zed Admin", role="admin")  # not on the board
    await make_user(db, name="Carl", role="agent")  # no presence row: offline
    async with db.transaction() as s:
        s.add(AgentPresence(user_id=ann.id, status="available", since=now - timedelta(minutes=30)))
        s.add(AgentPresence(user_id=bob.id, status="away", since=now - timedelta(minutes=5)))
    customer = await make_customer(db)

    def ago(**kw) -> datetime:
        return now - timedelta(**kw)

    async def conv(**fields):
        fields.setdefault("created_at", ago(hours=1))
        return await make_conversation(db, customer, **fields)

    # Billing / webchat: two waiting — one unassigned since 10 minutes, one assigned to Ann whose
    # customer waits since 30 minutes — one nobody waits on (no waiting_since: answered, or never
    # written to by the customer; opened 4 minutes ago), answered today in 20 s and in 50 s, one
    # abandoned today.
    await conv(queue_id=billing.id, channel="webchat", waiting_since=ago(minutes=10))
    await conv(queue_id=billing.id, channel="webchat", created_at=ago(minutes=4))
    await conv(queue_id=billing.id, channel="webchat", assignee_id=ann.id, waiting_since=ago(minutes=30))
    await conv(queue_id=billing.id, channel="webchat", assignee_id=ann.id, status="pending",
               first_response_at=ago(hours=2), first_response_seconds=20)  # fmt: skip
    await conv(queue_id=billing.id, channel="webchat", assignee_id=bob.id, status="resolved",
               first_response_at=ago(hours=1), first_response_seconds=50, resolved_at=ago(minutes=20))  # fmt: skip
    await conv(queue_id=billing.id, channel="webchat", status="resolved", resolved_at=ago(hours=3))
    # Billing / email: answered at 22:00 UTC the day before (01:00 today in Moscow: today there,
    # yesterday in UTC) and two days ago (never today).
    await conv(queue_id=billing.id, channel="email", status="resolved",
               first_response_at=datetime(2026, 11, 22, 22, 0, tzinfo=UTC), first_response_seconds=10,
               resolved_at=datetime(2026, 11, 22, 23, 0, tzinfo=UTC))  # fmt: skip
    await conv(queue_id=billing.id, channel="email", status="resolved",
               first_response_at=ago(days=2), first_response_seconds=5, resolved_at=ago(days=2))  # fmt: skip
    # Support / email: answered in 100 s (within its 120 s), nothing waiting.
    await conv(queue_id=support.id, channel="email", assignee_id=ann.id,
               first_response_at=ago(minutes=50), first_response_seconds=100)  # fmt: skip
    # No queue / sms: one waiting, answered in 70 s (outside the default 60 s).
    await conv(channel="sms", waiting_since=ago(minutes=2))
    await conv(channel="sms", assignee_id=ann.id, first_response_at=ago(minutes=5), first_response_seconds=70)
    # Snoozed and pending unassigned ones are not "waiting".
    await conv(queue_id=support.id, channel="webchat", status="snoozed", snoozed_until=now + timedelta(hours=1))

    r = await client.get(f"{API}/wallboard", params={"tz": "Europe/Moscow"}, headers=supervisor)
    assert r.status_code == 200, r.text
    board = r.json()
    assert datetime.fromisoformat(board["generated_at"]) == now
    assert datetime.fromisoformat(board["day_start"]) == datetime(2026, 11, 22, 21, 0, tzinfo=UTC)
    rows = {(row["queue_name"], row["channel"]): row for row in board["queues"]}
    assert list(rows) == [("Billing", "email"), ("Billing", "webchat"), ("Support", "email"), (None, "sms")]
    assert rows[("Billing", "webchat")] == {
        "queue_id": str(billing.id),
        "queue_name": "Billing",
        "channel": "webchat",
        "waiting": 2,
        "longest_wait_seconds": 1800,
        "answered_today": 2,
        "abandoned_today": 1,
        "service_level_today": 33.3,  # 1 of 3 within 30 s
        "target_percent": 90,
        "target_seconds": 30,
    }
    email = rows[("Billing", "email")]
    assert (email["waiting"], email["longest_wait_seconds"], email["answered_today"]) == (0, None, 1)
    assert (email["abandoned_today"], email["service_level_today"]) == (0, 100.0)
    support_row = rows[("Support", "email")]
    assert (support_row["answered_today"], support_row["service_level_today"], support_row["target_seconds"]) == (
        1, 100.0, 120
    )  # fmt: skip
    sms = rows[(None, "sms")]
    assert (sms["queue_id"], sms["waiting"], sms["longest_wait_seconds"]) == (None, 1, 120)
    assert (sms["answered_today"], sms["service_level_today"], sms["target_percent"], sms["target_seconds"]) == (
        1, 0.0, 80, 60
    )  # fmt: skip
    # Totals: 3 waiting; answered 2 + 1 + 1 + 1 = 5, abandoned 1; within: 1 + 1 + 1 + 0 = 3 of 6.
    assert board["totals"] == {"waiting": 3, "answered_today": 5, "abandoned_today": 1, "service_level_today": 50.0}

    agents = {a["name"]: a for a in board["agents"]}
    assert list(agents) == sorted(agents)
    assert "Zed Admin" not in agents
    assert agents["Ann"]["presence"] == "available"
    assert datetime.fromisoformat(agents["Ann"]["presence_since"]) == now - timedelta(minutes=30)
    assert agents["Ann"]["load"] == {"email": 1, "sms": 1, "webchat": 2}
    assert agents["Ann"]["open_conversations"] == 4
    assert (agents["Bob"]["role"], agents["Bob"]["presence"], agents["Bob"]["load"]) == ("supervisor", "away", {})
    assert (agents["Carl"]["presence"], agents["Carl"]["presence_since"], agents["Carl"]["open_conversations"]) == (
        "offline", None, 0
    )  # fmt: skip

    # In UTC the day began at 00:00 UTC: yesterday evening's Moscow-morning answer is not today's.
    r = await client.get(f"{API}/wallboard", headers=supervisor)
    board = r.json()
    assert datetime.fromisoformat(board["day_start"]) == datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
    assert ("Billing", "email") not in {(row["queue_name"], row["channel"]) for row in board["queues"]}
    assert board["totals"]["answered_today"] == 4

    # Supervisors and admins only; the zone must be a real one.
    r = await client.get(f"{API}/wallboard", headers=agent_headers)
    assert r.status_code == 403
    for tz in ("Mars/Base", "../etc/passwd", ""):
        r = await client.get(f"{API}/wallboard", params={"tz": tz}, headers=supervisor)
        assert r.status_code == 422, tz
        assert r.json()["errors"][0]["field"] == "tz"


async def test_an_empty_wallboard(client, app):
    _, admin = await agent(app, "admin")
    r = await client.get(f"{API}/wallboard", params={"tz": "America/New_York"}, headers=admin)
    assert r.status_code == 200, r.text
    board = r.json()
    assert board["queues"] == []
    assert board["agents"] == []
    assert board["totals"] == {"waiting": 0, "answered_today": 0, "abandoned_today": 0, "service_level_today": None}


async def test_waiting_is_a_customer_waiting_for_an_answer_timed_from_when_the_wait_began(client, app, frozen_clock):
    """A conversation answered from "Unassigned" does not wait any more; when the customer writes
    again it waits from that message, not from when the conversation was opened."""
    _, supervisor = await agent(app, "supervisor")
    ann, ann_headers = await agent(app)

    def inbound(n: int) -> InboundMessage:
        return InboundMessage(
            identity_kind="email", identity_value="waiter@example.com", channel="email",
            external_id=f"<board-{n}@example.com>", text=f"message {n}",
        )  # fmt: skip

    async def waiting() -> tuple[int, int | None]:
        r = await client.get(f"{API}/wallboard", headers=supervisor)
        assert r.status_code == 200, r.text
        board = r.json()
        rows = [row for row in board["queues"] if row["waiting"]]
        longest = max((row["longest_wait_seconds"] for row in rows), default=None)
        return board["totals"]["waiting"], longest

    conv_id = (await app.state.ingest.submit(inbound(1))).conversation_id
    frozen_clock.advance(minutes=10)
    assert await waiting() == (1, 600)

    # Ann answers from the "Unassigned" view: nobody waits now (and the conversation is hers).
    r = await client.post(f"{API}/conversations/{conv_id}/messages", json={"text": "Hi!"}, headers=ann_headers)
    assert r.status_code == 201, r.text
    assert await waiting() == (0, None)
    # Answered, then handed back to nobody: still not waiting — the customer has their answer.
    r = await client.patch(f"{API}/conversations/{conv_id}", json={"assignee_id": None}, headers=supervisor)
    assert (r.status_code, r.json()["assignee_id"]) == (200, None)
    frozen_clock.advance(minutes=20)
    assert await waiting() == (0, None)

    # The customer writes again 30 minutes after the conversation began: waiting since then.
    await app.state.ingest.submit(inbound(2))
    frozen_clock.advance(minutes=2)
    assert await waiting() == (1, 120)
    # Assigned or not, a customer who waits for an answer is waiting.
    r = await client.patch(f"{API}/conversations/{conv_id}", json={"assignee_id": str(ann.id)}, headers=supervisor)
    assert r.status_code == 200
    assert await waiting() == (1, 120)
    r = await client.post(f"{API}/conversations/{conv_id}/messages", json={"text": "Done."}, headers=ann_headers)
    assert r.status_code == 201
    assert await waiting() == (0, None)
