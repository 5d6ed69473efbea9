"""What the agent desktop needs: waiting time and its sorts, status sets, counts, @mentions,
the directory, your own settings, and agent typing reaching the customer's widget."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import httpx
import pytest
from websockets.asyncio.client import connect

from frontdesk import clock
from frontdesk.conversations.ingest import InboundMessage
from frontdesk.settings import Settings
from tests.builders import (
    agent,
    make_conversation,
    make_customer,
    make_queue,
    make_team,
    make_token,
    make_user,
    token_headers,
)
from tests.builders.webchat import Server, make_webchat_inbox, nothing, of_type, recv, send, serving

API = "/api/v1"


@pytest.fixture
def settings(settings):
    return settings.model_copy(update={"run_loops": False})


def at(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


async def get_conversation(client, headers, conversation_id) -> dict:
    r = await client.get(f"{API}/conversations/{conversation_id}", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


# -- waiting_since ---------------------------------------------------------------------------------


async def test_waiting_since_follows_customer_and_agent_messages(client, app, frozen_clock):
    _, headers = await agent(app)
    start = clock.now()

    def inbound(n: int) -> InboundMessage:
        return InboundMessage(
            identity_kind="email", identity_value="waiter@example.com", channel="email",
            external_id=f"<wait-{n}@example.com>", text=f"message {n}",
        )  # fmt: skip

    first = await app.state.ingest.submit(inbound(1))
    conv_id = first.conversation_id
    assert at((await get_conversation(client, headers, conv_id))["waiting_since"]) == start

    frozen_clock.advance(minutes=5)
    await app.state.ingest.submit(inbound(2))  # still waiting since the first message
    conv = await get_conversation(client, headers, conv_id)
    assert at(conv["waiting_since"]) == start
    assert conv["message_count"] == 2

    frozen_clock.advance(minutes=1)
    r = await client.post(f"{API}/conversations/{conv_id}/notes", json={"text": "looking"}, headers=headers)
    assert r.status_code == 201
    conv = await get_conversation(client, headers, conv_id)
    assert at(conv["waiting_since"]) == start  # a note is no answer
    assert conv["last_message_preview"] == "message 2"  # nor the last message the inbox previews
    reply = "Hello!\n\nLet me   look " + "x" * 200
    r = await client.post(f"{API}/conversations/{conv_id}/messages", json={"text": reply}, headers=headers)
    assert r.status_code == 201
    conv = await get_conversation(client, headers, conv_id)
    assert conv["waiting_since"] is None
    preview = conv["last_message_preview"]
    assert preview.startswith("Hello! Let me look xxx")
    assert preview.endswith("…")
    assert len(preview) == 140

    frozen_clock.advance(minutes=3)
    third_at = clock.now()
    await app.state.ingest.submit(inbound(3))
    assert at((await get_conversation(client, headers, conv_id))["waiting_since"]) == third_at

    r = await client.patch(f"{API}/conversations/{conv_id}", json={"status": "resolved"}, headers=headers)
    assert r.status_code == 200
    assert r.json()["waiting_since"] is None
    # A new message on the resolved conversation (a reply to its email) reopens it: waiting again.
    frozen_clock.advance(minutes=1)
    again = clock.now()
    msg = inbound(4)
    msg.conversation_id = conv_id
    await app.state.ingest.submit(msg)
    conv = await get_conversation(client, headers, conv_id)
    assert (conv["status"], at(conv["waiting_since"])) == ("open", again)
    listed = (await client.get(f"{API}/conversations", headers=headers)).json()["items"]
    assert [(c["id"], c["last_message_preview"]) for c in listed] == [(str(conv_id), "message 4")]


async def test_a_message_without_text_is_kept_as_it_came_for_the_ui_to_describe(client, app):
    """No English placeholder is stored for an email without a body: the message has no text, and
    the conversation's view says what the last message has (file names, or nothing) for the desk
    to put in the viewer's language."""
    from email.message import EmailMessage

    from frontdesk.channels.email.inbound import receive_raw

    _, headers = await agent(app)

    def email(n: int, *, attach: bool) -> bytes:
        m = EmailMessage()
        m["From"] = f"Textless {n} <textless{n}@example.com>"
        m["To"] = "help@example.net"
        m["Subject"] = "Photo of the parcel" if attach else "Call me back"
        m["Message-ID"] = f"<textless-{n}@example.com>"
        if attach:
            m.set_content(b"%PDF-1.4 receipt", maintype="application", subtype="pdf", filename="receipt.pdf")
        else:
            m.set_content("")
        return m.as_bytes()

    with_file = await receive_raw(app, email(1, attach=True))
    empty = await receive_raw(app, email(2, attach=False))
    assert (with_file.status, empty.status) == ("accepted", "accepted"), (with_file, empty)

    conv = await get_conversation(client, headers, with_file.conversation_id)
    assert (conv["last_message_preview"], conv["last_message_attachments"]) == (None, ["receipt.pdf"])
    assert conv["last_message_empty"] is False
    [message] = (await client.get(f"{API}/conversations/{conv['id']}/messages", headers=headers)).json()["items"]
    assert message["text"] == ""
    assert [a["filename"] for a in message["attachments"]] == ["receipt.pdf"]

    conv = await get_conversation(client, headers, empty.conversation_id)
    assert (conv["last_message_preview"], conv["last_message_attachments"], conv["last_message_empty"]) == (
        None, [], True
    )  # fmt: skip
    [message] = (await client.get(f"{API}/conversations/{conv['id']}/messages", headers=headers)).json()["items"]
    assert (message["text"], message["attachments"]) == ("", [])
    # A message with text is previewed as before, and says nothing of attachments.
    r = await client.post(f"{API}/conversations/{conv['id']}/messages", json={"text": "Calling now"}, headers=headers)
    assert r.status_code == 201
    conv = await get_conversation(client, headers, empty.conversation_id)
    assert (conv["last_message_preview"], conv["last_message_attachments"], conv["last_message_empty"]) == (
        "Calling now", [], False
    )  # fmt: skip


async def walk(client, headers, **params) -> list[str]:
    seen: list[str] = []
    cursor = None
    while True:
        r = await client.get(
            f"{API}/conversations", params=params | ({"cursor": cursor} if cursor else {}), headers=headers
        )
        assert r.status_code == 200, r.text
        seen += [item["id"] for item in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return seen


@pytest.mark.parametrize("sort", ["waiting", "priority"])
async def test_waiting_and_priority_sorts_page_through_everything_once(client, app, sort):
    _, headers = await agent(app)
    db = app.state.db
    customer = await make_customer(db)
    base = clock.now() - timedelta(hours=1)
    priorities = ["low", "urgent", "normal", "high"]
    rows = []
    for i in range(23):
        # Some nobody waits on; several share a waiting time: the id breaks ties.
        waiting = None if i % 6 == 0 else base + timedelta(minutes=(i * 7) % 5)
        c = await make_conversation(db, customer, waiting_since=waiting, priority=priorities[i % 4])
        rows.append(c)
    await make_conversation(db, customer, waiting_since=base, status="resolved")  # filtered out below

    rank = {"urgent": 0, "high": 1, "normal": 2, "low": 3}
    never = datetime.max.replace(tzinfo=base.tzinfo)

    def key(c):
        waiting_key = (c.waiting_since or never, c.id)
        return (rank[c.priority], *waiting_key) if sort == "priority" else waiting_key

    expected = [str(c.id) for c in sorted(rows, key=key)]
    for limit in (4, 5, 50):
        assert await walk(client, headers, sort=sort, status="open", limit=limit) == expected
    # The longest-waiting one comes first.
    first = await get_conversation(client, headers, expected[0])
    assert first["waiting_since"] is not None

    # A cursor of another order is refused.
    r = await client.get(f"{API}/conversations", params={"sort": sort, "limit": 2}, headers=headers)
    cursor = r.json()["next_cursor"]
    other = "priority" if sort == "waiting" else "last_message_at"
    r = await client.get(f"{API}/conversations", params={"sort": other, "cursor": cursor}, headers=headers)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "cursor"


async def test_status_accepts_several_values(client, app):
    _, headers = await agent(app)
    db = app.state.db
    customer = await make_customer(db)
    by_status = {s: await make_conversation(db, customer, status=s) for s in ("open", "pending", "snoozed", "resolved")}

    async def ids(status: str) -> set[str]:
        r = await client.get(f"{API}/conversations", params={"status": status}, headers=headers)
        assert r.status_code == 200, r.text
        return {item["id"] for item in r.json()["items"]}

    assert await ids("open,pending") == {str(by_status["open"].id), str(by_status["pending"].id)}
    assert await ids(" Resolved , snoozed,") == {str(by_status["resolved"].id), str(by_status["snoozed"].id)}
    assert await ids("pending") == {str(by_status["pending"].id)}
    r = await client.get(f"{API}/conversations", params={"status": "open,closed"}, headers=headers)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "status"
    assert "closed" in r.json()["detail"]


# -- counts ----------------------------------------------------------------------------------------


async def test_counts_for_the_desk_views(client, app):
    me, headers = await agent(app)
    other, _ = await agent(app)
    db = app.state.db
    customer = await make_customer(db)
    q1, q2 = await make_queue(db), await make_queue(db)
    specs = [
        dict(status="open", assignee_id=me.id, channel="email", queue_id=q1.id),
        dict(status="pending", assignee_id=me.id, channel="webchat", queue_id=q1.id),
        dict(status="open", assignee_id=None, channel="webchat", queue_id=q2.id),
        dict(status="open", assignee_id=None, channel="email", queue_id=None),
        dict(status="open", assignee_id=other.id, channel="sms", queue_id=q2.id),
        dict(status="snoozed", assignee_id=me.id, channel="email", queue_id=q1.id),
        dict(status="resolved", assignee_id=None, channel="email", queue_id=q1.id),
        dict(status="resolved", assignee_id=me.id, channel="email", queue_id=None),
    ]
    convs = [await make_conversation(db, customer, **spec) for spec in specs]
    for i, tag in ((0, "billing"), (2, "billing"), (2, "vip"), (5, "billing"), (6, "vip")):
        r = await client.put(f"{API}/conversations/{convs[i].id}/tags/{tag}", headers=headers)
        assert r.status_code == 200

    r = await client.get(f"{API}/conversations/counts", headers=headers)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "mine": 2,
        "unassigned": 2,
        "all": 5,
        "by_status": {"open": 4, "pending": 1, "snoozed": 1, "resolved": 2},
        "by_channel": {"email": 2, "webchat": 2, "sms": 1},
        "by_queue": {str(q1.id): 2, str(q2.id): 2},
        "by_tag": {"billing": 2, "vip": 1},
    }
    r = await client.get(f"{API}/conversations/counts")
    assert r.status_code == 401


# -- @mentions -------------------------------------------------------------------------------------


async def test_mentions_in_notes_are_stored_and_pushed(client, app):
    db = app.state.db
    author = await make_user(db, email="lead@example.com", name="Lena Lead")
    headers = await token_headers(db, author)
    anna = await make_user(db, email="anna.petrova@example.com", name="Anna Petrova")
    bob = await make_user(db, email="bob@example.com", name="Bob")
    gone = await make_user(db, email="gone@example.com", name="Gone")
    r = await client.post(f"{API}/users/{gone.id}/disable", headers=await _admin(app))
    assert r.status_code == 200
    customer = await make_customer(db)
    conv = await make_conversation(db, customer)

    hub = app.state.hub
    subs = {u.id: await hub.open([f"user:{u.id}"]) for u in (anna, bob, gone, author)}
    text = "@Anna.Petrova, please check; @bob. @nobody @gone and @lead: mail bob@example.com"
    r = await client.post(f"{API}/conversations/{conv.id}/notes", json={"text": text}, headers=headers)
    assert r.status_code == 201, r.text
    note = r.json()
    assert set(note["mentions"]) == {str(anna.id), str(bob.id), str(author.id)}
    r = await client.get(f"{API}/messages/{note['id']}", headers=headers)
    assert set(r.json()["mentions"]) == {str(anna.id), str(bob.id), str(author.id)}

    for user in (anna, bob):
        event = await asyncio.wait_for(subs[user.id].queue.get(), 5)
        assert event is not None
        assert (event.topic, event.type) == (f"user:{user.id}", "conversation.mentioned")
        assert event.data == {
            "conversation_id": str(conv.id),
            "message_id": note["id"],
            "by": {"id": str(author.id), "name": "Lena Lead"},
            "excerpt": text,
        }
    await asyncio.sleep(0.2)
    assert subs[gone.id].queue.empty()  # disabled: not mentioned
    assert subs[author.id].queue.empty()  # nobody is notified of mentioning themselves
    for sub in subs.values():
        await sub.close()

    # A note without mentions keeps an empty list; replies are not scanned.
    r = await client.post(f"{API}/conversations/{conv.id}/notes", json={"text": "email a@b.c"}, headers=headers)
    assert r.json()["mentions"] == []


async def _admin(app) -> dict[str, str]:
    _, headers = await agent(app, "admin")
    return headers


# -- directory and my settings ---------------------------------------------------------------------


async def test_directory_lists_active_users_teams_and_queues(client, app):
    db = app.state.db
    me, headers = await agent(app)
    admin_h = await _admin(app)
    team = await make_team(db, "Tier 1")
    queue = await make_queue(db, "Billing")
    ann = await make_user(db, email="ann@example.com", name="Ann", role="supervisor")
    old = await make_user(db, email="old@example.com", name="Old")
    r = await client.put(f"{API}/teams/{team.id}/members/{ann.id}", headers=admin_h)
    assert r.status_code == 200
    r = await client.post(f"{API}/users/{old.id}/disable", headers=admin_h)
    assert r.status_code == 200

    r = await client.get(f"{API}/directory", headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    users = {u["id"]: u for u in body["users"]}
    assert str(old.id) not in users
    assert users[str(ann.id)] == {
        "id": str(ann.id), "name": "Ann", "email": "ann@example.com", "role": "supervisor", "team_ids": [str(team.id)]
    }  # fmt: skip
    assert users[str(me.id)]["team_ids"] == []
    assert {"id": str(team.id), "name": "Tier 1"} in body["teams"]
    assert {"id": str(queue.id), "name": "Billing"} in body["queues"]
    r = await client.get(f"{API}/directory")
    assert r.status_code == 401


async def test_update_my_settings(client, app):
    _, headers = await agent(app)
    r = await client.patch(
        f"{API}/auth/me", json={"locale": "ru", "time_zone": "Europe/Moscow", "name": "Анна"}, headers=headers
    )
    assert r.status_code == 200, r.text
    assert (r.json()["user"]["locale"], r.json()["user"]["time_zone"], r.json()["user"]["name"]) == (
        "ru", "Europe/Moscow", "Анна"
    )  # fmt: skip
    me = (await client.get(f"{API}/auth/me", headers=headers)).json()
    assert (me["user"]["locale"], me["user"]["time_zone"]) == ("ru", "Europe/Moscow")

    for body, field in (
        ({"time_zone": "Mars/Olympus_Mons"}, "time_zone"),
        ({"time_zone": "../../etc/passwd"}, "time_zone"),
        ({"time_zone": None}, "time_zone"),
        ({"locale": "de"}, "locale"),
        ({"name": ""}, "name"),
        ({"role": "admin"}, "role"),
    ):
        r = await client.patch(f"{API}/auth/me", json=body, headers=headers)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["errors"][0]["field"] == field, body
    r = await client.patch(f"{API}/auth/me", json={"locale": None}, headers=headers)
    assert r.status_code == 200
    assert r.json()["user"]["locale"] is None
    assert r.json()["user"]["time_zone"] == "Europe/Moscow"


# -- agent typing reaches the widget ---------------------------------------------------------------


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[Server]:
    async with serving(settings) as srv:
        yield srv


async def test_agent_typing_reaches_the_widget(server: Server):
    db = server.app.state.db
    inbox = await make_webchat_inbox(db)
    async with httpx.AsyncClient(base_url=server.http) as c:
        r = await c.post("/api/v1/widget/sessions", json={"inbox": inbox.public_token})
    session = r.json()
    agent_user = await make_user(db, name="Agent Ann")
    token = await make_token(db, agent_user)
    reader = await make_user(db, name="Read Only")
    read_token = await make_token(db, reader, scopes=["read"])
    desk_url = f"ws://127.0.0.1:{server.port}/ws?token="

    async with connect(server.ws_url(session["visitor_token"])) as widget:
        await recv(widget, of_type("welcome"))
        await send(widget, {"type": "message", "client_id": str(uuid.uuid4()), "text": "hi"})
        conversation_id = (await recv(widget, of_type("welcome")))["conversation_id"]
        assert conversation_id

        async with connect(desk_url + token) as desk:
            await recv(desk, of_type("hello"))

            async def typing(frame: dict) -> None:
                await desk.send(json.dumps({"type": "typing", **frame}))

            await typing({"conversation_id": conversation_id, "on": True})
            got = await recv(widget, of_type("typing"))
            assert (got["on"], got["author_name"]) == (True, "Agent Ann")
            await asyncio.sleep(0.6)  # the rate limit: 2 a second
            await typing({"conversation_id": conversation_id, "on": False})
            got = await recv(widget, of_type("typing"))
            assert (got["on"], got["author_name"]) == (False, "Agent Ann")

            # Bad frames are answered with an error and publish nothing.
            for bad in (
                {"conversation_id": "not-a-uuid", "on": True},
                {"conversation_id": conversation_id, "on": "yes"},
                {"on": True},
                {"conversation_id": str(uuid.uuid4()), "on": True},
            ):
                await asyncio.sleep(0.6)
                await typing(bad)
                error = await recv(desk, of_type("error"))
                assert "typing" in error["detail"]
            assert await nothing(widget, of_type("typing"))

            # A burst is cut to about 2 a second.
            await asyncio.sleep(1.1)
            for _ in range(10):
                await typing({"conversation_id": conversation_id, "on": True})
            received = 0
            while not await nothing(widget, of_type("typing"), 0.3):
                received += 1
            assert 1 <= received <= 3

        # A read-only token may watch but not type.
        async with connect(desk_url + read_token) as desk:
            await recv(desk, of_type("hello"))
            await desk.send(json.dumps({"type": "typing", "conversation_id": conversation_id, "on": True}))
            assert "write" in (await recv(desk, of_type("error")))["detail"]
            assert await nothing(widget, of_type("typing"))
