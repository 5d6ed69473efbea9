"""Inbound email end to end: ``smtplib`` delivers to the built-in receiver of the real app.

The app runs with its lifespan (ingest writer, listeners) on SQLite and PostgreSQL; the receiver
listens on a free loopback port. Replies are threaded, auto-replies and bounces never open
conversations, and malformed or random MIME never raises out of :func:`receive_raw`.
"""

from __future__ import annotations

import asyncio
import smtplib
import uuid
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import func, select

from frontdesk.channels.email import mailthread
from frontdesk.channels.email.inbound import receive_raw
from frontdesk.models import Attachment, Conversation, Identity, Message, RejectedInput
from frontdesk.settings import Settings
from tests.builders import auth_headers
from tests.integration.dns_server import DnsServer
from tests.unit.test_email_parse import bounce_report, mime_like

DOMAIN = "support.example.net"
RU = "Здравствуйте! Мой заказ 123 не пришёл, подскажите, пожалуйста, что случилось."


@pytest.fixture
def dns_zone() -> Any:
    """The sender checks ask a local DNS server. It publishes SPF (this host may send) and DMARC for
    ``example.com``, so mail from there is authenticated like real customers' mail; every other
    domain is unknown (verdict ``none``). Spoofing is tested in test_email_auth.py."""
    zone = DnsServer().start()
    zone.add("example.com", "v=spf1 ip4:127.0.0.1 -all")
    zone.add("_dmarc.example.com", "v=DMARC1; p=reject")
    yield zone
    zone.stop()


@pytest.fixture
def settings(settings: Settings, dns_zone: DnsServer) -> Settings:
    return settings.model_copy(
        update={
            "smtp_listen": "127.0.0.1:0",
            "mail_domain": DOMAIN,
            "max_attachment_mb": 1,
            "run_loops": False,
            "dns_servers": [dns_zone.address],
        }
    )


def _port(app: Any) -> int:
    return int(app.state.smtp_receiver.address[1])


def _send_sync(port: int, msg: EmailMessage | bytes, sender: str, rcpts: list[str]) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        if isinstance(msg, bytes):
            smtp.sendmail(sender, rcpts, msg)
        else:
            smtp.send_message(msg, from_addr=sender, to_addrs=rcpts)


async def send(
    app: Any, msg: EmailMessage | bytes, *, sender: str | None = None, rcpts: list[str] | None = None
) -> None:
    """Deliver over SMTP; ``sender=""`` sends the null return path (``MAIL FROM:<>``) of bounces."""
    if sender is None:
        sender = str(msg["From"]).rpartition("<")[2].strip(">") if isinstance(msg, EmailMessage) else "x@example.com"
    rcpts = rcpts or [f"help@{DOMAIN}"]
    await asyncio.to_thread(_send_sync, _port(app), msg, sender, rcpts)


def mail(
    frm: str = "Anna Smith <anna@example.com>", subject: str = "Where is my order?", body: str = "Hello"
) -> EmailMessage:
    m = EmailMessage()
    m["From"] = frm
    m["To"] = f"help@{DOMAIN}"
    m["Subject"] = subject
    m["Message-ID"] = make_msgid(domain="mail.example.com")
    m.set_content(body)
    return m


async def scalar(app: Any, stmt: Any) -> Any:
    async with app.state.db.transaction() as s:
        return (await s.execute(stmt)).scalar()


async def messages_of(app: Any, conversation_id: uuid.UUID) -> list[Message]:
    async with app.state.db.transaction() as s:
        return list(
            await s.scalars(
                select(Message).where(Message.conversation_id == conversation_id).order_by(Message.created_at)
            )
        )


async def message_by_mid(app: Any, msg: EmailMessage) -> Message:
    mid = str(msg["Message-ID"]).strip("<>")
    async with app.state.db.transaction() as s:
        found = (await s.scalars(select(Message).where(Message.external_id == mid))).first()
    assert found is not None, f"message {mid} was not stored"
    return found


async def test_plain_mail_opens_a_conversation_and_keeps_the_raw_email(app: Any, client: Any) -> None:
    m = mail(body="Hello,\nmy parcel has not arrived.\n\n-- \nAnna Smith\nACME")
    await send(app, m)
    stored = await message_by_mid(app, m)
    assert stored.text == "Hello,\nmy parcel has not arrived."
    assert stored.meta["full_text"].endswith("Anna Smith\nACME")
    assert stored.meta["subject"] == "Where is my order?"
    headers = await auth_headers(app, "agent")
    conv = (await client.get(f"/api/v1/conversations/{stored.conversation_id}", headers=headers)).json()
    assert conv["channel"] == "email"
    assert conv["subject"] == "Where is my order?"
    assert conv["status"] == "open"
    customer = (await client.get(f"/api/v1/customers/{stored.customer_id}", headers=headers)).json()
    assert customer["name"] == "Anna Smith"
    raw = await client.get(f"/api/v1/messages/{stored.id}/raw", headers=headers)
    assert raw.status_code == 200
    assert raw.headers["content-type"].startswith("message/rfc822")
    assert b"my parcel has not arrived" in raw.content
    assert b"Message-ID:" in raw.content
    assert (await client.get(f"/api/v1/messages/{stored.id}/raw")).status_code == 401
    assert (await client.get(f"/api/v1/messages/{uuid.uuid4()}/raw", headers=headers)).status_code == 404

    # The same email delivered again is stored once.
    await send(app, m)
    assert await scalar(app, select(func.count()).select_from(Message)) == 1


async def test_html_mail_with_attachment_and_inline_image(app: Any, client: Any) -> None:
    m = mail(subject="Broken item")
    m.set_content("The item arrived broken, photo attached.")
    m.add_alternative(
        '<p>The item arrived <b>broken</b>.</p><img src="cid:photo@x"><script>steal()</script>', subtype="html"
    )
    html_part = cast(list[EmailMessage], m.get_payload())[1]
    html_part.add_related(b"\x89PNG\r\n\x1a\nfake", maintype="image", subtype="png", cid="<photo@x>")
    m.add_attachment(b"%PDF-1.4 receipt", maintype="application", subtype="pdf", filename="квитанция.pdf")
    await send(app, m)
    stored = await message_by_mid(app, m)
    assert stored.text == "The item arrived broken, photo attached."
    assert stored.html is not None
    assert "<b>broken</b>" in stored.html
    assert "script" not in stored.html
    headers = await auth_headers(app, "agent")
    out = (await client.get(f"/api/v1/messages/{stored.id}", headers=headers)).json()
    files = {a["filename"]: a for a in out["attachments"]}
    assert set(files) == {"квитанция.pdf", "inline.png"}
    image_id = files["inline.png"]["id"]
    assert f'src="/api/v1/attachments/{image_id}"' in stored.html
    pdf = await client.get(f"/api/v1/attachments/{files['квитанция.pdf']['id']}", headers=headers)
    assert pdf.status_code == 200
    assert pdf.content == b"%PDF-1.4 receipt"


@pytest.mark.parametrize("charset", ["koi8-r", "windows-1251"])
async def test_cyrillic_charsets(app: Any, charset: str) -> None:
    m = mail(frm="Иван Петров <ivan@example.ru>", subject="Где мой заказ?")
    m.set_content(RU, charset=charset, cte="8bit")
    raw = m.as_bytes()
    assert RU.encode(charset) in raw
    await send(app, raw, sender="ivan@example.ru")
    stored = await message_by_mid(app, m)
    assert stored.text == RU
    assert stored.meta["subject"] == "Где мой заказ?"


async def _resolve(client: Any, headers: dict[str, str], conversation_id: uuid.UUID) -> None:
    r = await client.patch(f"/api/v1/conversations/{conversation_id}", json={"status": "resolved"}, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "resolved"


async def test_reply_threads_by_in_reply_to_and_reopens(app: Any, client: Any) -> None:
    headers = await auth_headers(app, "agent")
    first = mail(subject="Refund")
    await send(app, first)
    conv_id = (await message_by_mid(app, first)).conversation_id
    await _resolve(client, headers, conv_id)

    reply = mail(subject="Re: Refund", body="Still waiting.\n\nOn Mon, Support <help@x> wrote:\n> We are on it")
    reply["In-Reply-To"] = first["Message-ID"]
    reply["References"] = first["Message-ID"]
    await send(app, reply)
    stored = await message_by_mid(app, reply)
    assert stored.conversation_id == conv_id
    assert stored.text == "Still waiting."
    conv = (await client.get(f"/api/v1/conversations/{conv_id}", headers=headers)).json()
    assert conv["status"] == "open"
    assert [m.text for m in await messages_of(app, conv_id)] == ["Hello", "Still waiting."]

    # Without a thread hint, a mail after resolution opens a new conversation.
    await _resolve(client, headers, conv_id)
    fresh = mail(subject="Another question")
    await send(app, fresh)
    assert (await message_by_mid(app, fresh)).conversation_id != conv_id


async def test_reply_threads_by_reply_address(app: Any, client: Any) -> None:
    headers = await auth_headers(app, "agent")
    first = mail(subject="Invoice")
    await send(app, first)
    conv_id = (await message_by_mid(app, first)).conversation_id
    await _resolve(client, headers, conv_id)

    address = mailthread.reply_address(conv_id, app.state.settings)
    reply = mail(subject="Re: Invoice", body="Here is the number: 42")
    reply.replace_header("To", address)
    await send(app, reply, rcpts=[address])
    stored = await message_by_mid(app, reply)
    assert stored.conversation_id == conv_id
    conv = (await client.get(f"/api/v1/conversations/{conv_id}", headers=headers)).json()
    assert conv["status"] == "open"

    # A forged reply address is accepted as mail for our domain but joins nothing.
    forged = address.replace(conv_id.hex, uuid.uuid4().hex)
    other = mail(subject="Re: Invoice")
    await send(app, other, rcpts=[forged])
    assert (await message_by_mid(app, other)).conversation_id == conv_id  # still the open conversation of anna
    await _resolve(client, headers, conv_id)
    third = mail(subject="Re: Invoice")
    await send(app, third, rcpts=[forged])
    assert (await message_by_mid(app, third)).conversation_id != conv_id


async def test_auto_reply_and_loop_open_no_conversation(app: Any) -> None:
    ooo = mail(subject="Out of office", body="I am away")
    ooo["Auto-Submitted"] = "auto-replied"
    await send(app, ooo)
    bulk = mail(subject="Newsletter")
    bulk["Precedence"] = "bulk"
    await send(app, bulk)
    loop = mail(frm=f"Frontdesk <help@{DOMAIN}>", subject="Re: your request")
    await send(app, loop)
    assert await scalar(app, select(func.count()).select_from(Conversation)) == 0
    assert await scalar(app, select(func.count()).select_from(Message)) == 0
    async with app.state.db.transaction() as s:
        reasons = sorted(r.reason for r in await s.scalars(select(RejectedInput)))
    assert len(reasons) == 3
    assert [r.split(":")[0] for r in reasons] == ["ignored auto_reply", "ignored auto_reply", "ignored loop"]


async def test_bounce_marks_the_address_undeliverable(app: Any, client: Any) -> None:
    headers = await auth_headers(app, "agent")
    r = await client.post(
        "/api/v1/customers",
        json={"name": "Gone", "identities": [{"kind": "email", "value": "gone@example.com"}]},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    await send(app, bounce_report("Gone@Example.com"), sender="", rcpts=[f"help@{DOMAIN}"])
    assert await scalar(app, select(func.count()).select_from(Conversation)) == 0
    undeliverable = await scalar(
        app, select(Identity.undeliverable).where(Identity.kind == "email", Identity.value == "gone@example.com")
    )
    assert undeliverable is True
    # A null-sender message without a report is a bounce too: nothing opens.
    plain = mail(subject="Delivery problem")
    await send(app, plain.as_bytes(), sender="", rcpts=[f"help@{DOMAIN}"])
    assert await scalar(app, select(func.count()).select_from(Conversation)) == 0


async def test_known_customer_address_lands_in_their_timeline(app: Any, client: Any) -> None:
    headers = await auth_headers(app, "agent")
    r = await client.post(
        "/api/v1/customers",
        json={"name": "Olga", "identities": [{"kind": "email", "value": "olga@example.com"}]},
        headers=headers,
    )
    customer_id = r.json()["id"]
    m = mail(frm="OLGA <Olga@Example.COM>", body="Hi, it is Olga again")
    await send(app, m)
    stored = await message_by_mid(app, m)
    assert str(stored.customer_id) == customer_id
    timeline = (await client.get(f"/api/v1/customers/{customer_id}/timeline", headers=headers)).json()
    assert any(item.get("text") == "Hi, it is Olga again" for item in timeline["items"]), timeline


async def test_recipients_and_size_are_enforced(app: Any) -> None:
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        await send(app, mail(), rcpts=["someone@elsewhere.example"])
    code, _reply = refused.value.recipients["someone@elsewhere.example"]
    assert code == 550
    # An inbox's own configured address is accepted and files the mail in that inbox.
    inbox_id = await _email_inbox(app, "desk@company.example")
    m = mail()
    m.replace_header("To", "desk@company.example")
    await send(app, m, rcpts=["desk@company.example"])
    assert (await scalar(app, select(Conversation.inbox_id))) == inbox_id
    big = mail()
    big.add_attachment(b"x" * (1024 * 1024 + 10), maintype="application", subtype="octet-stream", filename="big.bin")
    with pytest.raises(smtplib.SMTPException) as too_big:
        await send(app, big)
    assert "552" in str(too_big.value) or getattr(too_big.value, "smtp_code", None) == 552


async def _email_inbox(app: Any, address: str) -> uuid.UUID:
    from frontdesk.models import Inbox

    async with app.state.db.transaction() as s:
        inbox = Inbox(
            name=f"Mail {address}", channel="email", public_token=uuid.uuid4().hex, config={"address": address}
        )
        s.add(inbox)
        await s.flush()
        return inbox.id


async def test_malformed_mail_is_kept_and_never_crashes_the_receiver(app: Any) -> None:
    garbage = b"\x00\xff\xfe not an email at all \r\n\r\n\x80\x81"
    await send(app, garbage, sender="x@example.com")
    no_from = b"Subject: no sender\r\nMessage-ID: <nf@example.com>\r\n\r\nbody"
    await send(app, no_from, sender="x@example.com")
    broken = (
        b'From: a@example.com\r\nContent-Type: multipart/mixed; boundary="zz"\r\n\r\n--zz\r\n'
        b"Content-Type: text/plain; charset=bogus\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!notbase64\r\n--zz"
    )
    await send(app, broken, sender="a@example.com")
    async with app.state.db.transaction() as s:
        rejected = list(await s.scalars(select(RejectedInput).order_by(RejectedInput.received_at)))
    assert len(rejected) >= 2
    assert all(r.source == "email.smtp" and r.reason.startswith("rejected:") for r in rejected)
    assert any(r.body.rstrip(b"\r\n") == no_from for r in rejected)
    assert any("no sender address" in r.reason for r in rejected)
    # The receiver is still answering.
    ok = mail()
    await send(app, ok)
    await message_by_mid(app, ok)


async def test_random_mime_never_raises_out_of_receive_raw(app: Any) -> None:
    samples: list[bytes] = []

    @hsettings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.one_of(st.binary(max_size=600), mime_like()))
    def collect(raw: bytes) -> None:
        samples.append(raw)

    collect()
    # Make a share of them look like mail from a person, so the full path (ingest) runs.
    samples += [b"From: fuzz@example.com\r\nSubject: x\r\n" + s for s in samples[:20]]
    for raw in samples:
        outcome = await receive_raw(app, raw)
        assert outcome.status in ("accepted", "duplicate", "ignored", "rejected"), raw
    async with app.state.db.transaction() as s:
        linked = await s.scalar(select(func.count()).select_from(Attachment).where(Attachment.message_id.is_(None)))
    assert linked == 0  # no orphan attachments left behind
