# ruff: noqa: RUF001  (Russian text is Cyrillic on purpose)
"""Without an SMTP relay, outgoing mail is kept in a local mail catcher that admins read.

An agent replies on an e-mail conversation of a server with no ``FRONTDESK_SMTP_RELAY`` (the demo's
setup). The message is not ``failed`` and not ``sent``: it is ``caught`` — kept, whole, in the
catcher — and admins list it, read its headers and bodies, download the ``.eml`` exactly as a relay
would have received it, delete it or clear them all. Agents cannot read the catcher.
"""

from __future__ import annotations

import asyncio
import email
import uuid
from email.policy import default as default_policy
from typing import Any

from sqlalchemy import func, select

from frontdesk.channels.base import ChannelContext, OutboundMessage
from frontdesk.channels.email.outbound import EmailAdapter
from frontdesk.conversations.ingest import InboundMessage
from frontdesk.models import AuditEntry, CaughtMail, Conversation, Inbox, Message
from tests.builders import auth_headers

CUSTOMER = "ivan.petrov@example.org"
SUBJECT = "Заказ №42 не пришёл"
REPLY = "Здравствуйте, Иван!\n\nВаш заказ уже в пути. <script>alert(1)</script>"
CATCHER = "/api/v1/caught-mail"


async def email_conversation(app: Any) -> uuid.UUID:
    async with app.state.db.transaction() as s:
        inbox = Inbox(
            name=f"mail-{uuid.uuid4().hex[:6]}",
            channel="email",
            public_token=uuid.uuid4().hex,
            config={"address": "help@shop.example.com", "from_name": "Магазин «Ромашка»"},
        )
        s.add(inbox)
    result = await app.state.ingest.submit(
        InboundMessage(
            identity_kind="email",
            identity_value=CUSTOMER,
            name="Иван Петров",
            channel="email",
            external_id="first-4711@mail.example.org",
            subject=SUBJECT,
            text="Где мой заказ?",
            inbox_id=inbox.id,
            meta={"from": f"Иван Петров <{CUSTOMER}>"},
        )
    )
    return result.conversation_id


async def settled(app: Any, message_id: str, timeout: float = 20.0) -> Message:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        async with app.state.db.transaction() as s:
            msg = await s.get(Message, uuid.UUID(message_id))
        assert msg is not None
        if msg.delivery_status != "queued":
            return msg
        assert asyncio.get_running_loop().time() < deadline, f"still queued: {msg.error}"
        await asyncio.sleep(0.05)


async def test_a_reply_without_a_relay_is_caught_and_admins_read_it(app: Any, client: Any):
    assert app.state.settings.smtp_relay is None
    admin = await auth_headers(app, "admin")
    agent = await auth_headers(app, "agent")
    conversation_id = await email_conversation(app)
    r = await client.post(f"/api/v1/conversations/{conversation_id}/messages", json={"text": REPLY}, headers=agent)
    assert r.status_code == 201, r.text
    message_id = r.json()["id"]

    msg = await settled(app, message_id)
    assert (msg.delivery_status, msg.error) == ("caught", None)  # not "sent": nobody got it
    assert msg.external_id == f"{message_id}@{app.state.settings.mail_domain}"
    shown = (await client.get(f"/api/v1/messages/{message_id}", headers=agent)).json()
    assert (shown["delivery_status"], shown["error"]) == ("caught", None)

    # The list: newest first, what an admin needs to find a mail.
    assert (await client.get(CATCHER, headers=agent)).status_code == 403
    r = await client.get(CATCHER, headers=admin)
    assert r.status_code == 200, r.text
    (item,) = r.json()["items"]
    assert item["to"] == CUSTOMER
    assert item["from"] == "Магазин «Ромашка» <help@shop.example.com>"
    assert item["subject"] == f"Re: {SUBJECT}"
    assert (item["message_id"], item["conversation_id"]) == (message_id, str(conversation_id))
    assert item["size"] > 0

    # One mail: headers, text and HTML bodies (the HTML is the sanitised/escaped one we would send).
    r = await client.get(f"{CATCHER}/{item['id']}", headers=admin)
    assert r.status_code == 200, r.text
    detail = r.json()
    headers = {name: value for name, value in detail["headers"]}
    assert headers["To"] == CUSTOMER
    assert headers["Subject"] == f"Re: {SUBJECT}"
    assert headers["Message-ID"] == f"<{message_id}@{app.state.settings.mail_domain}>"
    assert headers["In-Reply-To"] == "<first-4711@mail.example.org>"
    assert detail["text"].strip() == REPLY
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in detail["html"]  # escaped: text, never markup
    assert "<script>" not in detail["html"]

    # The .eml, byte for byte what a relay would have been handed.
    r = await client.get(f"{CATCHER}/{item['id']}/raw", headers=admin)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("message/rfc822")
    assert "attachment" in r.headers["content-disposition"]
    assert ".eml" in r.headers["content-disposition"]
    mail = email.message_from_bytes(r.content, policy=default_policy)
    assert mail["Message-ID"] == f"<{message_id}@{app.state.settings.mail_domain}>"
    plain = mail.get_body(preferencelist=("plain",))
    assert plain is not None
    assert plain.get_content().replace("\r\n", "\n").strip() == REPLY
    assert (await client.get(f"{CATCHER}/{item['id']}/raw", headers=agent)).status_code == 403

    # Clearing: everything goes, audited; the message stays "caught" (it was never sent).
    assert (await client.delete(CATCHER, headers=agent)).status_code == 403
    r = await client.delete(CATCHER, headers=admin)
    assert (r.status_code, r.json()) == (200, {"deleted": 1})
    assert (await client.get(CATCHER, headers=admin)).json()["items"] == []
    assert (await client.get(f"{CATCHER}/{item['id']}/raw", headers=admin)).status_code == 404
    async with app.state.db.transaction() as s:
        actions = list(await s.scalars(select(AuditEntry.action).where(AuditEntry.action.like("mail_catcher.%"))))
        msg = await s.get(Message, uuid.UUID(message_id))
    assert actions == ["mail_catcher.cleared"]
    assert msg is not None
    assert msg.delivery_status == "caught"


async def test_a_resend_after_a_crash_keeps_one_copy_and_one_mail_can_be_deleted(app: Any, client: Any):
    admin = await auth_headers(app, "admin")
    agent = await auth_headers(app, "agent")
    conversation_id = await email_conversation(app)
    ids = []
    for text in ("first", "second"):  # one after the other: the catcher lists in the order it kept them
        r = await client.post(f"/api/v1/conversations/{conversation_id}/messages", json={"text": text}, headers=agent)
        ids.append(r.json()["id"])
        await settled(app, ids[-1])

    # The dispatcher sends again when it could not record the outcome: the same message, one copy.
    async with app.state.db.transaction() as s:
        m = await s.get(Message, uuid.UUID(ids[0]))
        assert m is not None
        inbox = await s.scalar(
            select(Inbox)
            .join(Conversation, Conversation.inbox_id == Inbox.id)
            .where(Conversation.id == conversation_id)
        )
        assert inbox is not None
        again = OutboundMessage(
            delivery_id=uuid.uuid4(), message_id=m.id, conversation_id=m.conversation_id, customer_id=m.customer_id,
            channel=m.channel, text=m.text, html=m.html, author_type=m.author_type, author_id=m.author_id,
            created_at=m.created_at, inbox_id=inbox.id, inbox_config=dict(inbox.config), attempt=2,
        )  # fmt: skip
    adapter = EmailAdapter(ChannelContext(settings=app.state.settings, db=app.state.db))
    result = await adapter.send(again)
    assert result.status == "caught"
    async with app.state.db.transaction() as s:
        assert await s.scalar(select(func.count()).select_from(CaughtMail)) == 2

    items = (await client.get(f"{CATCHER}?limit=1", headers=admin)).json()
    assert [i["message_id"] for i in items["items"]] == [ids[1]]  # newest first
    more = (await client.get(f"{CATCHER}?limit=1&cursor={items['next_cursor']}", headers=admin)).json()
    assert [i["message_id"] for i in more["items"]] == [ids[0]]
    assert more["next_cursor"] is None

    r = await client.delete(f"{CATCHER}/{items['items'][0]['id']}", headers=admin)
    assert r.status_code == 204
    assert [i["message_id"] for i in (await client.get(CATCHER, headers=admin)).json()["items"]] == [ids[0]]
    assert (await client.get(f"{CATCHER}/{uuid.uuid4()}", headers=admin)).status_code == 404


async def test_system_mail_is_caught_too_and_the_catcher_keeps_only_the_newest(
    app: Any, client: Any, monkeypatch: Any
) -> None:
    """A confirmation link (mail Frontdesk writes itself, no conversation) lands in the catcher as
    well; past ``MAX_KEPT`` the oldest caught mails go, and their files with them (by due work)."""
    from frontdesk.channels.email import catcher
    from frontdesk.channels.email.outbound import send_system_mail
    from frontdesk.storage import ObjectMissing, app_store

    monkeypatch.setattr(catcher, "MAX_KEPT", 2)
    admin = await auth_headers(app, "admin")
    store = app_store(app.state)
    first_key = None
    for n in range(3):
        async with app.state.db.transaction() as s:
            answer = await send_system_mail(
                s, app.state.settings, to=f"visitor{n}@example.org", subject=f"Confirm {n}", text=f"Link {n}"
            )
            if first_key is None:
                first_key = await s.scalar(select(CaughtMail.storage_key))
        assert answer == "kept in the local mail catcher"
    assert first_key is not None
    items = (await client.get(CATCHER, headers=admin)).json()["items"]
    assert [(i["subject"], i["message_id"], i["conversation_id"]) for i in items] == [
        ("Confirm 2", None, None),
        ("Confirm 1", None, None),
    ]
    async with app.state.db.transaction() as s:
        kept_keys = list((await s.scalars(select(CaughtMail.storage_key))).all())
    for key in kept_keys:
        assert await store.get(key)
    # The dropped mail's file is deleted by the timer loop, not left behind.
    deadline = asyncio.get_running_loop().time() + 20
    while True:
        try:
            await store.get(first_key)
        except ObjectMissing:
            break
        assert asyncio.get_running_loop().time() < deadline, "the dropped mail's file was never deleted"
        await asyncio.sleep(0.1)
