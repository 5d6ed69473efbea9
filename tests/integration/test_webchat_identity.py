"""Who a web-chat visitor is: an e-mail address the visitor has not proven never joins them to its
owner (issue 9, item 1), and the e-mailed link that proves it.

The attack: an anonymous visitor types a known customer's e-mail (in the session request or the
pre-chat form) and, before the fix, became that customer: their chat history in the snapshot,
their files downloadable, agents' replies and proactive notices delivered to the attacker, and the
attacker's messages filed in the victim's conversation. Two victims: a customer Frontdesk knows
through an integration (``/messages/inbound``), and a site user signed in with a valid HMAC
``user_hash`` who chatted in the widget.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage

import httpx
import pytest
from sqlalchemy import select
from websockets.asyncio.client import ClientConnection, connect

from frontdesk import clock
from frontdesk.channels.webchat import confirm, notices
from frontdesk.channels.webchat import visitor as visitors
from frontdesk.conversations.ingest import InboundMessage, receive
from frontdesk.customers import personal
from frontdesk.errors import Invalid
from frontdesk.models import AuditEntry, CustomerEvent, EmailConfirmation, Identity, Inbox, Message, WebchatVisitor
from frontdesk.models.merge import MergeSuggestion
from frontdesk.settings import Settings
from tests.builders import auth_headers
from tests.builders.webchat import IDENTITY_SECRET, Server, make_webchat_inbox, nothing, of_type, recv, send, serving
from tests.integration.test_email_outbound import SmtpSink

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
VICTIM_EMAIL = "victoria@example.com"
VICTIM_SECRET = "My card ends in 4242, please refund order 77"
REPLY_TO_VICTIM = "Refund for order 77 is on its way, Victoria"


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[Server]:
    async with serving(settings) as srv:
        yield srv


@dataclass
class Victim:
    customer_id: uuid.UUID
    conversation_id: uuid.UUID
    attachment_id: str
    visitor_token: str | None  # the victim's own widget, when they chat


async def http(server: Server, method: str, path: str, **kw: object) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.http, timeout=15) as c:
        return await c.request(method, path, **kw)  # type: ignore[arg-type]


async def session(server: Server, inbox: Inbox, **body: object) -> dict:
    r = await http(server, "POST", "/api/v1/widget/sessions", json={"inbox": inbox.public_token, **body})
    assert r.status_code == 200, r.text
    return r.json()


async def reply_with_file(server: Server, headers: dict[str, str], conversation_id: uuid.UUID) -> str:
    r = await http(
        server, "POST", "/api/v1/attachments", files={"file": ("refund.png", PNG, "image/png")}, headers=headers
    )
    assert r.status_code == 201, r.text
    attachment_id = r.json()["id"]
    r = await http(
        server,
        "POST",
        f"/api/v1/conversations/{conversation_id}/messages",
        json={"text": REPLY_TO_VICTIM, "attachment_ids": [attachment_id]},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    return str(attachment_id)


async def known_by_integration(server: Server, inbox: Inbox, headers: dict[str, str]) -> Victim:
    """A customer an integration told us about (token-authenticated ``/messages/inbound``)."""
    r = await http(
        server,
        "POST",
        "/api/v1/messages/inbound",
        json={
            "identity": {"kind": "email", "value": VICTIM_EMAIL},
            "name": "Victoria",
            "channel": "email",
            "external_id": f"<{uuid.uuid4()}@mail.example.com>",
            "text": VICTIM_SECRET,
        },
        headers=headers,
    )
    assert r.status_code == 201, r.text
    conversation_id = uuid.UUID(r.json()["conversation_id"])
    attachment_id = await reply_with_file(server, headers, conversation_id)
    return Victim(uuid.UUID(r.json()["customer_id"]), conversation_id, attachment_id, None)


async def signed_in_chatter(server: Server, inbox: Inbox, headers: dict[str, str]) -> Victim:
    """A site user, known with their e-mail and user id, who chats signed in (valid HMAC)."""
    r = await http(
        server,
        "POST",
        "/api/v1/customers",
        json={
            "name": "Victoria",
            "identities": [{"kind": "email", "value": VICTIM_EMAIL}, {"kind": "external_id", "value": "1001"}],
        },
        headers=headers,
    )
    assert r.status_code == 201, r.text
    customer_id = uuid.UUID(r.json()["id"])
    me = await session(server, inbox, user_id="1001", user_hash=visitors.user_hash(IDENTITY_SECRET, "1001"))
    async with connect(server.ws_url(me["visitor_token"])) as ws:
        await recv(ws, of_type("welcome"))
        await send(ws, {"type": "message", "client_id": str(uuid.uuid4()), "text": VICTIM_SECRET})
        ack = await recv(ws, of_type("ack"))
    async with server.app.state.db.transaction() as s:
        stored = await s.get(Message, uuid.UUID(ack["message_id"]))
        assert stored is not None
        assert stored.customer_id == customer_id
        conversation_id = stored.conversation_id
    attachment_id = await reply_with_file(server, headers, conversation_id)
    return Victim(customer_id, conversation_id, attachment_id, me["visitor_token"])


VICTIMS = {"integration": known_by_integration, "hmac": signed_in_chatter}


async def visitor_customer(server: Server, visitor_id: str) -> uuid.UUID:
    async with server.app.state.db.transaction() as s:
        v = await s.get(WebchatVisitor, uuid.UUID(visitor_id))
        assert v is not None
        return v.customer_id


async def snapshot(ws: ClientConnection) -> list[dict]:
    await send(ws, {"type": "hello", "last_seq": None})
    return list((await recv(ws, of_type("snapshot")))["messages"])


@pytest.mark.parametrize("victim_kind", sorted(VICTIMS))
@pytest.mark.parametrize("path", ["session", "prechat"])
async def test_a_claimed_email_never_joins_its_owner(server: Server, victim_kind: str, path: str):
    inbox = await make_webchat_inbox(server.app.state.db)
    headers = await auth_headers(server.app, name="Agent Smith")
    victim = await VICTIMS[victim_kind](server, inbox, headers)

    # The attacker: an anonymous visitor who types the victim's address.
    if path == "session":
        attacker = await session(server, inbox, email=VICTIM_EMAIL.upper(), name="Not Victoria")
        assert attacker["conversation_id"] is None
        assert attacker["customer"]["email_known"] is False
    else:
        attacker = await session(server, inbox)
    token = attacker["visitor_token"]
    async with connect(server.ws_url(token)) as ws:
        welcome = await recv(ws, of_type("welcome"))
        if path == "prechat":
            await send(ws, {"type": "prechat", "name": "Not Victoria", "email": VICTIM_EMAIL})
            answer = await recv(ws, of_type("prechat"))
            assert answer["outcome"] == "confirm"
            assert answer["email_known"] is False
        assert welcome["conversation_id"] is None
        # None of the victim's history in the snapshot.
        seen = await snapshot(ws)
        assert all(VICTIM_SECRET not in m["text"] and REPLY_TO_VICTIM not in m["text"] for m in seen), seen
        mine = await visitor_customer(server, attacker["visitor_id"])
        assert mine != victim.customer_id

        # The victim's file does not download.
        r = await http(
            server, "GET", f"/api/v1/widget/attachments/{victim.attachment_id}", params={"visitor_token": token}
        )
        assert r.status_code == 404

        # The attacker's message lands in the attacker's own conversation, not the victim's.
        await send(ws, {"type": "message", "client_id": str(uuid.uuid4()), "text": "Refund it to my card instead"})
        ack = await recv(ws, of_type("ack"))
        async with server.app.state.db.transaction() as s:
            stored = await s.get(Message, uuid.UUID(ack["message_id"]))
            assert stored is not None
            assert stored.customer_id == mine
            assert stored.conversation_id != victim.conversation_id
        await recv(ws, of_type("welcome"))  # the attacker's own new conversation
        await recv(ws, lambda m: m["type"] == "message" and m["message"]["id"] == ack["message_id"])  # the echo

        # Agents' replies and proactive notices to the victim never reach the attacker.
        r = await http(
            server,
            "POST",
            f"/api/v1/conversations/{victim.conversation_id}/messages",
            json={"text": "Victoria, your new card is activated"},
            headers=headers,
        )
        assert r.status_code == 201, r.text
        async with server.app.state.db.transaction() as s:
            if victim.visitor_token is None:
                with pytest.raises(Invalid, match="never opened the web chat"):
                    await notices.send_widget_notice(s, victim.customer_id, "Your parcel is at the door")
            else:
                notice = await notices.send_widget_notice(s, victim.customer_id, "Your parcel is at the door")
                assert notice.conversation_id == victim.conversation_id
        assert await nothing(ws, of_type("message"), 1.0)
        assert all("Victoria" not in m["text"] and "parcel" not in m["text"] for m in await snapshot(ws))

    # The victim's records are untouched, and agents are asked whether the two are one person.
    async with server.app.state.db.transaction() as s:
        owner = await s.scalar(
            select(Identity.customer_id).where(Identity.kind == "email", Identity.value == VICTIM_EMAIL)
        )
        assert owner == victim.customer_id
        still_mine = await s.get(WebchatVisitor, uuid.UUID(attacker["visitor_id"]))
        assert still_mine is not None
        assert still_mine.customer_id == mine
        victim_messages = list(
            (await s.scalars(select(Message.text).where(Message.conversation_id == victim.conversation_id))).all()
        )
        assert "Refund it to my card instead" not in victim_messages
        suggestions = list((await s.scalars(select(MergeSuggestion))).all())
    assert len(suggestions) == 1
    (suggestion,) = suggestions
    assert {suggestion.customer_a_id, suggestion.customer_b_id} == {mine, victim.customer_id}
    assert suggestion.reason == "webchat_email_claimed"
    assert suggestion.evidence["identity"] == {"kind": "email", "value": VICTIM_EMAIL}
    assert suggestion.evidence["claimed_by"] == str(mine)
    assert suggestion.evidence["owned_by"] == str(victim.customer_id)


async def test_the_victims_own_widget_still_works(server: Server):
    """The fix does not cost the signed-in victim their chat (the verified path still joins)."""
    inbox = await make_webchat_inbox(server.app.state.db)
    headers = await auth_headers(server.app, name="Agent Smith")
    victim = await signed_in_chatter(server, inbox, headers)
    assert victim.visitor_token is not None
    again = await session(server, inbox, visitor_token=victim.visitor_token, user_id="1001",
                          user_hash=visitors.user_hash(IDENTITY_SECRET, "1001"))  # fmt: skip
    assert again["conversation_id"] == str(victim.conversation_id)
    async with connect(server.ws_url(victim.visitor_token)) as ws:
        await recv(ws, of_type("welcome"))
        texts = [m["text"] for m in await snapshot(ws)]
    assert texts == [VICTIM_SECRET, REPLY_TO_VICTIM]


# -- the e-mailed link ---------------------------------------------------------------------------------

PUBLIC_URL = "https://help.example.test"


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    s = SmtpSink().start()
    yield s
    s.stop()


@pytest.fixture
async def mail_server(settings: Settings, sink: SmtpSink) -> AsyncIterator[Server]:
    mail = {
        "smtp_relay": f"smtp://127.0.0.1:{sink.port}",
        "public_url": PUBLIC_URL,
        "mail_from": "Help <help@shop.example>",
    }
    async with serving(settings.model_copy(update=mail)) as srv:
        yield srv


async def mail_to(sink: SmtpSink, address: str, count: int = 1, timeout: float = 20) -> list[EmailMessage]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        got = [c.message() for c in list(sink.received) if address in c.rcpt_tos]
        if len(got) >= count:
            return got
        assert asyncio.get_running_loop().time() < deadline, f"no mail to {address}"
        await asyncio.sleep(0.05)


def link_of(mail: EmailMessage) -> str:
    body = mail.get_body(preferencelist=("plain",))
    assert body is not None
    found = re.search(re.escape(PUBLIC_URL) + r"/confirm-email/[A-Za-z0-9_-]+", body.get_content())
    assert found, body.get_content()
    return found.group(0)


async def test_the_emailed_link_proves_the_address_and_shows_the_history(mail_server: Server, sink: SmtpSink):
    server = mail_server
    inbox = await make_webchat_inbox(server.app.state.db, title="Acme help")
    headers = await auth_headers(server.app, name="Agent Smith")
    victoria = await signed_in_chatter(server, inbox, headers)
    # Victoria on a new phone, not signed in: she gives her address in the pre-chat form.
    phone = await session(server, inbox)
    async with connect(server.ws_url(phone["visitor_token"])) as ws:
        await recv(ws, of_type("welcome"))
        await send(ws, {"type": "prechat", "email": VICTIM_EMAIL})
        answer = await recv(ws, of_type("prechat"))
        assert answer["outcome"] == "confirm"
        assert answer["confirm"] == {"email": VICTIM_EMAIL, "sent": True, "retry_after": None}
        assert await snapshot(ws) == []

        # "Send the link again" (the confirm_email frame): a second link; either works.
        await send(ws, {"type": "confirm_email", "email": VICTIM_EMAIL})
        resent = await recv(ws, of_type("confirm_email"))
        assert (resent["sent"], resent["verified"]) == (True, False)
        mail = (await mail_to(sink, VICTIM_EMAIL, count=2))[-1]
        assert mail["Subject"] == "Confirm your e-mail address"
        assert mail["Auto-Submitted"] == "auto-generated"
        assert "help@shop.example" in mail["From"]
        assert "Acme help" in mail.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
        link = link_of(mail)  # public_url, never the Host the request came with
        token = link.rsplit("/", 1)[1]
        local = server.http + link[len(PUBLIC_URL) :]

        # Opening the link asks; it proves nothing yet (mail scanners open links too).
        for _ in range(2):
            page = await http(server, "GET", local)
            assert page.status_code == 200
            assert "Yes, this is my address" in page.text
            assert VICTIM_EMAIL in page.text
            assert page.headers["referrer-policy"] == "no-referrer"
        russian = await http(server, "GET", local, headers={"Accept-Language": "ru-RU,ru;q=0.9"})
        assert "Да, это мой адрес" in russian.text
        assert await visitor_customer(server, phone["visitor_id"]) != victoria.customer_id

        # The button proves it: the phone's visitor becomes Victoria and the widget shows her history.
        done = await http(server, "POST", local)
        assert done.status_code == 200, done.text
        assert f"Thank you, {VICTIM_EMAIL} is confirmed" in done.text
        confirmed = await recv(ws, of_type("email_confirmed"))
        assert confirmed["email_known"] is True
        welcome = await recv(ws, of_type("welcome"))
        assert welcome["conversation_id"] == str(victoria.conversation_id)
        history = await recv(ws, of_type("snapshot"))
        assert [m["text"] for m in history["messages"]] == [VICTIM_SECRET, REPLY_TO_VICTIM]
        r = await http(
            server,
            "GET",
            f"/api/v1/widget/attachments/{victoria.attachment_id}",
            params={"visitor_token": phone["visitor_token"]},
        )
        assert r.status_code == 200

        # Proven now: no more links for it.
        await send(ws, {"type": "confirm_email", "email": VICTIM_EMAIL})
        assert (await recv(ws, of_type("confirm_email")))["verified"] is True

    assert await visitor_customer(server, phone["visitor_id"]) == victoria.customer_id
    again = await http(server, "POST", local)
    assert again.status_code == 410
    assert "already used" in again.text
    async with server.app.state.db.transaction() as s:
        row = (await s.scalars(select(EmailConfirmation).where(EmailConfirmation.used_at.is_not(None)))).one()
        assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert token not in str(personal.row_dict(row))
        entries = (
            await s.scalars(select(AuditEntry).where(AuditEntry.actor_kind == "email_link").order_by(AuditEntry.id))
        ).all()
        assert {e.action for e in entries} == {"customer.merged", "customer.merged_into", "customer.email_confirmed"}
        assert VICTIM_EMAIL not in str([e.data for e in entries])


async def test_link_rules(app, sink: SmtpSink, frozen_clock):  # type: ignore[no-untyped-def]
    """Rate limit per visitor and per address, expiry, single use, and a proof against a mere claim."""
    db = app.state.db
    settings = app.state.settings.model_copy(update={"smtp_relay": f"smtp://127.0.0.1:{sink.port}"})
    inbox = await make_webchat_inbox(db)
    async with db.transaction() as s:
        one = await visitors.new_visitor(s, inbox)
        two = await visitors.new_visitor(s, inbox)
    async with db.transaction() as s:
        me = await s.get(WebchatVisitor, one.id)
        other = await s.get(WebchatVisitor, two.id)
        assert me is not None
        assert other is not None
        sent = [await confirm.request_link(s, me, f"a{i}@example.com", settings) for i in range(4)]
        assert [x.sent for x in sent] == [True, True, True, False]
        assert sent[3].retry_after == 3601
        for _ in range(2):
            assert (await confirm.request_link(s, other, "a0@example.com", settings)).sent is True
        refused = await confirm.request_link(s, other, "a0@example.com", settings)
        assert (refused.sent, refused.retry_after) == (False, 3601)
    frozen_clock.advance(hours=1, seconds=1)
    async with db.transaction() as s:
        me = await s.get(WebchatVisitor, one.id)
        assert me is not None
        assert (await confirm.request_link(s, me, "a0@example.com", settings)).sent is True

    # A link whose token we know (the handler makes and mails the real ones).
    async def link_for(visitor_id: uuid.UUID, email: str, token: str) -> None:
        async with db.transaction() as s:
            v = await s.get(WebchatVisitor, visitor_id)
            assert v is not None
            s.add(
                EmailConfirmation(
                    visitor_id=v.id,
                    customer_id=v.customer_id,
                    email=email,
                    token_hash=confirm.token_hash(token),
                    created_at=clock.now(),
                    expires_at=clock.now() + timedelta(minutes=60),
                )
            )

    await link_for(one.id, "late@example.com", "late-token")
    frozen_clock.advance(minutes=61)
    async with db.transaction() as s:
        assert (await confirm.look_up(s, "late-token")).state == "expired"
        assert (await confirm.confirm(s, "late-token")).outcome == "expired"
        assert (await confirm.confirm(s, "no-such-token")).outcome == "unknown"

    # Visitor two typed an address first (nobody had it): a claim. Visitor one proves it: it moves
    # to visitor one, and visitor two's customer gets a merge suggestion, not the prover.
    async with db.transaction() as s:
        v2 = await s.get(WebchatVisitor, two.id)
        assert v2 is not None
        assert (await visitors.apply_contact(s, v2, email="shared@example.com")).outcome == "added"
    await link_for(one.id, "shared@example.com", "shared-token")
    async with db.transaction() as s:
        done = await confirm.confirm(s, "shared-token")
    assert done.outcome == "verified"
    async with db.transaction() as s:
        held = (await s.scalars(select(Identity).where(Identity.value == "shared@example.com"))).one()
        assert (held.customer_id, held.verified) == (one.customer_id, True)
        (suggestion,) = (await s.scalars(select(MergeSuggestion))).all()
        assert {suggestion.customer_a_id, suggestion.customer_b_id} == {one.customer_id, two.customer_id}
        assert (suggestion.reason, suggestion.evidence["source"]) == ("verified_identity_taken", "email_link")
        assert (await confirm.confirm(s, "shared-token")).outcome == "used"


# -- senders an integration vouches for --------------------------------------------------------------


async def test_a_vouched_sender_takes_an_address_a_visitor_only_claimed(app, client):
    """A chat visitor typed an address nobody had (kept, unverified, on their customer). Then the
    real owner writes through an integration that vouches for its senders: the token-authenticated
    ``/messages/inbound``, or the signed API channel. The message never lands on the claimant."""
    from tests.integration.test_apichannel import make_api_inbox, post_signed

    inbox = await make_webchat_inbox(app.state.db)
    admin = await auth_headers(app, "admin")
    inbox_id, secret, _ = await make_api_inbox(client, admin)
    claimants = {}
    addresses = (
        "token@example.com",
        "signed@example.com",
        "unit@example.com",
        "event@example.com",
        "batch@example.com",
    )
    for address in addresses:
        r = await client.post("/api/v1/widget/sessions", json={"inbox": inbox.public_token, "email": address})
        assert r.status_code == 200, r.text
        async with app.state.db.transaction() as s:
            v = await s.get(WebchatVisitor, uuid.UUID(r.json()["visitor_id"]))
            assert v is not None
            claimants[address] = v.customer_id

    r = await client.post(
        "/api/v1/messages/inbound",
        json={
            "identity": {"kind": "email", "value": "Token@Example.com"},
            "channel": "email",
            "external_id": "<real-owner-1@mail.example.com>",
            "text": "My account number is 1234",
        },
        headers=admin,
    )
    assert r.status_code == 201, r.text
    by_token = r.json()["customer_id"]
    r = await post_signed(
        client, inbox_id, secret, {"sender": {"kind": "email", "value": "signed@example.com"}, "text": "My PIN is 0000"}
    )
    assert r.status_code == 201, r.text
    by_signature = r.json()["customer_id"]
    async with app.state.db.transaction() as s:  # a channel inside a unit of work (ingest.receive)
        result = await receive(
            s,
            InboundMessage(
                identity_kind="email",
                identity_value="unit@example.com",
                channel="email",
                external_id="<unit-1@mail.example.com>",
                text="hello",
                verified=True,
            ),
        )
    in_unit = str(result.customer_id)
    # A customer event an integration sends (the proactive engine would act on it: a notice, an offer).
    r = await client.post(
        "/api/v1/events",
        json={"type": "order.shipped", "identity": {"kind": "email", "value": "event@example.com"}},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    by_event = r.json()["customer_id"]
    r = await client.post(  # the same through the batch endpoint
        "/api/v1/events/batch",
        json={"events": [{"type": "order.shipped", "identity": {"kind": "email", "value": "batch@example.com"}}]},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 1, r.text
    async with app.state.db.transaction() as s:
        stored = await s.get(CustomerEvent, uuid.UUID(r.json()["results"][0]["event_id"]))
        assert stored is not None
        by_batch = str(stored.customer_id)

    owners = (
        ("token@example.com", by_token),
        ("signed@example.com", by_signature),
        ("unit@example.com", in_unit),
        ("event@example.com", by_event),
        ("batch@example.com", by_batch),
    )
    for address, owner in owners:
        assert owner != str(claimants[address])
        async with app.state.db.transaction() as s:
            held = (await s.scalars(select(Identity).where(Identity.kind == "email", Identity.value == address))).one()
            assert (str(held.customer_id), held.verified) == (owner, True)
            suggestion = (
                await s.scalars(select(MergeSuggestion).where(MergeSuggestion.reason == "verified_identity_taken"))
            ).all()
            pairs = {frozenset((str(x.customer_a_id), str(x.customer_b_id))): x for x in suggestion}
            found = pairs[frozenset((owner, str(claimants[address])))]
            assert found.evidence["source"] == "api"
            claimant_messages = (
                await s.scalars(select(Message).where(Message.customer_id == claimants[address]))
            ).all()
            assert claimant_messages == []
    # Later messages of the proven sender go to them directly; a new vouched identity is stored proven.
    r = await client.post(
        "/api/v1/messages/inbound",
        json={
            "identity": {"kind": "phone", "value": "+44 20 7946 0000"},
            "channel": "sms",
            "external_id": "sms-1",
            "text": "hi",
        },
        headers=admin,
    )
    assert r.status_code == 201, r.text
    async with app.state.db.transaction() as s:
        phone = (await s.scalars(select(Identity).where(Identity.kind == "phone"))).one()
        assert phone.verified is True
