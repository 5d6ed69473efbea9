# ruff: noqa: RUF001  (Russian text is Cyrillic on purpose)
"""Outbound email through the real outbox to a real SMTP peer (an aiosmtpd sink on loopback).

An agent replies with ``POST /api/v1/conversations/{id}/messages`` on an email conversation; the
dispatcher hands it to the email adapter, which sends it over SMTP. The sink records what
arrived, so these tests check what a customer's mail server would get.
"""

from __future__ import annotations

import asyncio
import email
import ssl
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from frontdesk.channels.base import PermanentError
from frontdesk.channels.email.mailthread import conversation_from_address
from frontdesk.channels.email.outbound import parse_relay, thread_headers
from frontdesk.conversations.ingest import InboundMessage
from frontdesk.models import Inbox, Message
from frontdesk.settings import Settings
from tests.builders import auth_headers
from tests.integration.tls_certs import make_self_signed
from tests.integration.webhook_sink import free_port

CUSTOMER = "ivan.petrov@example.org"
CUSTOMER_MSGID = "first-4711@mail.example.org"
SUBJECT = "Заказ №42 не пришёл"
REPLY_TEXT = "Здравствуйте, Иван!\n\nВаш заказ уже в пути. <b>не тег</b>\n\n— Служба поддержки"
USER, PASSWORD = "frontdesk", "s3cret-пароль"


@dataclass
class Captured:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    tls: bool
    login: bytes | None

    def message(self) -> EmailMessage:
        msg = email.message_from_bytes(self.data, policy=default_policy)
        assert isinstance(msg, EmailMessage)
        return msg


@dataclass
class SinkHandler:
    received: list[Captured] = field(default_factory=list)
    rcpt_answer: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any) -> str:
        if self.rcpt_answer:
            return self.rcpt_answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        data = envelope.original_content or envelope.content
        login = getattr(session, "auth_data", None)
        with self.lock:
            self.received.append(
                Captured(
                    mail_from=envelope.mail_from,
                    rcpt_tos=list(envelope.rcpt_tos),
                    data=bytes(data),
                    tls=session.ssl is not None,
                    login=login.login if isinstance(login, LoginPassword) else None,
                )
            )
        return "250 2.0.0 Message accepted for delivery"


class SmtpSink:
    """An aiosmtpd server on a loopback port, optionally with STARTTLS + AUTH required."""

    def __init__(self, port: int | None = None, *, tls: ssl.SSLContext | None = None) -> None:
        self.port = port or free_port()
        self.handler = SinkHandler()
        kwargs: dict[str, Any] = {}
        if tls is not None:
            kwargs.update(
                tls_context=tls,
                require_starttls=True,
                auth_required=True,
                auth_require_tls=True,
                authenticator=self._authenticate,
            )
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, **kwargs)

    @staticmethod
    def _authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == USER.encode()
            and auth_data.password == PASSWORD.encode()
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    @property
    def received(self) -> list[Captured]:
        return self.handler.received

    def start(self) -> SmtpSink:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    s = SmtpSink().start()
    yield s
    s.stop()


@pytest.fixture
def relay_url(sink: SmtpSink) -> str:
    return f"smtp://127.0.0.1:{sink.port}"


@pytest.fixture
def settings(settings: Settings, relay_url: str) -> Settings:
    return settings.model_copy(
        update={
            "smtp_relay": relay_url or None,
            "mail_domain": "support.example.com",
            "timers_backoff_seconds": 0.2,
        }
    )


# -- helpers ------------------------------------------------------------------------------------


async def email_conversation(app: Any, *, config: dict[str, Any] | None = None) -> tuple[uuid.UUID, uuid.UUID]:
    """A customer's email (with a Message-ID) in an email inbox; (conversation id, inbox id)."""
    db = app.state.db
    async with db.transaction() as s:
        inbox = Inbox(
            name=f"mail-{uuid.uuid4().hex[:6]}",
            channel="email",
            public_token=uuid.uuid4().hex,
            config=config
            if config is not None
            else {"address": "help@shop.example.com", "from_name": "Магазин «Ромашка»"},
        )
        s.add(inbox)
    result = await app.state.ingest.submit(
        InboundMessage(
            identity_kind="email",
            identity_value=CUSTOMER,
            name="Иван Петров",
            channel="email",
            external_id=CUSTOMER_MSGID,
            subject=SUBJECT,
            text="Где мой заказ?",
            inbox_id=inbox.id,
            meta={"from": f"Иван Петров <{CUSTOMER}>", "references": ["older-1@mail.example.org"]},
        )
    )
    return result.conversation_id, inbox.id


async def reply(client: Any, app: Any, conversation_id: uuid.UUID, **body: Any) -> dict[str, Any]:
    headers = await auth_headers(app, "agent")
    r = await client.post(
        f"/api/v1/conversations/{conversation_id}/messages", json={"text": REPLY_TEXT, **body}, headers=headers
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


async def settled(app: Any, message_id: str, *, timeout: float = 20.0) -> Message:
    """The message once its delivery is decided (sent or failed)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        async with app.state.db.transaction() as s:
            msg = await s.get(Message, uuid.UUID(message_id))
        assert msg is not None
        if msg.delivery_status in ("sent", "delivered", "failed", "caught"):
            return msg
        assert asyncio.get_running_loop().time() < deadline, f"still {msg.delivery_status}: {msg.error}"
        await asyncio.sleep(0.05)


# -- tests --------------------------------------------------------------------------------------


async def test_agent_reply_arrives_threaded_with_both_parts(app: Any, client: Any, sink: SmtpSink):
    conversation_id, _ = await email_conversation(app)
    sent = await reply(client, app, conversation_id)
    msg = await settled(app, sent["id"])
    assert msg.delivery_status == "sent", msg.error
    assert len(sink.received) == 1
    got = sink.received[0]
    mail = got.message()

    # Envelope and addresses.
    assert got.mail_from == "help@shop.example.com"
    assert got.rcpt_tos == [CUSTOMER]
    assert mail["To"].addresses[0].addr_spec == CUSTOMER
    assert mail["From"].addresses[0].display_name == "Магазин «Ромашка»"
    assert mail["From"].addresses[0].addr_spec == "help@shop.example.com"

    # Threading headers: our Message-ID is the stored provider id; replies point at the customer.
    assert mail["Message-ID"] == f"<{sent['id']}@support.example.com>"
    assert msg.external_id == f"{sent['id']}@support.example.com"
    assert mail["In-Reply-To"] == f"<{CUSTOMER_MSGID}>"
    assert mail["References"].split() == ["<older-1@mail.example.org>", f"<{CUSTOMER_MSGID}>"]
    reply_to = mail["Reply-To"].addresses[0].addr_spec
    assert reply_to.startswith("reply+")
    assert reply_to.endswith("@support.example.com")
    assert conversation_from_address(reply_to, app.state.settings) == conversation_id
    assert mail["Auto-Submitted"] is None

    # Cyrillic survives, encoded for any relay (7-bit clean on the wire).
    assert mail["Subject"] == f"Re: {SUBJECT}"
    assert all(b < 0x80 for b in got.data), "the wire format must be 7-bit"
    assert b"=?utf-8?" in got.data.lower()
    assert mail.get_content_type() == "multipart/alternative"
    plain = mail.get_body(("plain",))
    html = mail.get_body(("html",))
    assert plain is not None
    assert html is not None
    assert plain.get_content().replace("\r\n", "\n").rstrip("\n") == REPLY_TEXT
    html_text = html.get_content()
    assert "Здравствуйте, Иван!" in html_text
    assert "&lt;b&gt;не тег&lt;/b&gt;" in html_text  # the agent's text is escaped, not markup
    assert "<b>" not in html_text


async def test_the_customers_answer_threads_back_by_in_reply_to(app: Any, client: Any, sink: SmtpSink):
    """The Message-ID we sent is the stored provider id, so an answer quoting it joins the thread —
    even after the conversation was resolved and without the reply+ address."""
    from sqlalchemy import update

    from frontdesk.channels.email.inbound import receive_raw
    from frontdesk.models import Conversation

    conversation_id, inbox_id = await email_conversation(app)
    sent = await reply(client, app, conversation_id)
    assert (await settled(app, sent["id"])).delivery_status == "sent"
    ours = sink.received[0].message()
    async with app.state.db.transaction() as s:
        await s.execute(update(Conversation).where(Conversation.id == conversation_id).values(status="resolved"))
    answer = EmailMessage()
    answer["From"] = f"Иван Петров <{CUSTOMER}>"
    answer["To"] = "help@shop.example.com"
    answer["Subject"] = ours["Subject"]
    answer["Message-ID"] = "<answer-1@mail.example.org>"
    answer["In-Reply-To"] = ours["Message-ID"]
    answer["References"] = f"{ours['References']} {ours['Message-ID']}"
    answer.set_content("Спасибо, получил!")
    outcome = await receive_raw(app, answer.as_bytes(), inbox_id=inbox_id, source="test")
    assert outcome.status == "accepted"
    assert outcome.conversation_id == conversation_id


async def test_html_reply_and_attachment_make_a_mixed_message(app: Any, client: Any, sink: SmtpSink):
    conversation_id, _ = await email_conversation(app)
    headers = await auth_headers(app, "agent")
    pdf = b"%PDF-1.4\n% test\n" + bytes(range(256)) * 4
    up = await client.post("/api/v1/attachments", files={"file": ("счёт.pdf", pdf, "application/pdf")}, headers=headers)
    assert up.status_code == 201, up.text
    sent = await reply(
        client,
        app,
        conversation_id,
        text=None,
        html="<p>Счёт во <strong>вложении</strong>.</p><script>alert(1)</script>",
        attachment_ids=[up.json()["id"]],
    )
    msg = await settled(app, sent["id"])
    assert msg.delivery_status == "sent", msg.error
    mail = sink.received[0].message()
    assert mail.get_content_type() == "multipart/mixed"
    html = mail.get_body(("html",))
    assert html is not None
    assert "<strong>вложении</strong>" in html.get_content()
    assert "<script>" not in html.get_content()
    plain = mail.get_body(("plain",))
    assert plain is not None
    assert "Счёт во вложении." in plain.get_content()
    attachments = list(mail.iter_attachments())
    assert [a.get_filename() for a in attachments] == ["счёт.pdf"]
    assert attachments[0].get_content_type() == "application/pdf"
    assert attachments[0].get_content() == pdf


async def test_relay_refusal_550_fails_the_message_visibly(app: Any, client: Any, sink: SmtpSink):
    sink.handler.rcpt_answer = "550 5.1.1 <ivan.petrov@example.org>: Recipient address rejected"
    conversation_id, _ = await email_conversation(app)
    sent = await reply(client, app, conversation_id)
    msg = await settled(app, sent["id"])
    assert msg.delivery_status == "failed"
    assert msg.error is not None
    assert "550" in msg.error
    assert "Recipient address rejected" in msg.error
    assert sink.received == []
    # The agent sees that it failed; the relay's answer is for admins.
    headers = await auth_headers(app, "agent")
    shown = (await client.get(f"/api/v1/messages/{sent['id']}", headers=headers)).json()
    assert (shown["delivery_status"], shown["error"]) == ("failed", "delivery failed")
    admin = await auth_headers(app, "admin")
    delivery = (await client.get(f"/api/v1/messages/{sent['id']}/delivery", headers=admin)).json()
    assert "550" in delivery["error_detail"]
    assert "Recipient address rejected" in delivery["error_detail"]


async def test_undeliverable_customer_address_is_not_sent(app: Any, client: Any, sink: SmtpSink):
    from sqlalchemy import update

    from frontdesk.models import Identity

    conversation_id, _ = await email_conversation(app)
    async with app.state.db.transaction() as s:
        await s.execute(update(Identity).where(Identity.value == CUSTOMER).values(undeliverable=True))
    sent = await reply(client, app, conversation_id)
    msg = await settled(app, sent["id"])
    assert msg.delivery_status == "failed"
    assert msg.error is not None
    assert "undeliverable" in msg.error
    assert sink.received == []


class TestRelayDownThenUp:
    @pytest.fixture
    def sink(self) -> Iterator[SmtpSink]:
        s = SmtpSink()  # not started: the relay is down when the reply is sent
        yield s
        if s.controller._thread is not None:
            s.stop()

    async def test_delivered_once_after_a_retry(self, app: Any, client: Any, sink: SmtpSink):
        conversation_id, _ = await email_conversation(app)
        sent = await reply(client, app, conversation_id)
        deadline = asyncio.get_running_loop().time() + 15
        while True:  # the first attempt fails: connection refused, queued for a retry
            async with app.state.db.transaction() as s:
                msg = await s.get(Message, uuid.UUID(sent["id"]))
            assert msg is not None
            if msg.error:
                break
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.02)
        assert msg.delivery_status == "queued"
        assert "retrying" in msg.error
        assert "unreachable" in msg.error
        await asyncio.to_thread(sink.start)
        msg = await settled(app, sent["id"])
        assert msg.delivery_status == "sent", msg.error
        assert msg.error is None
        await asyncio.sleep(0.5)  # nothing else arrives later
        assert len(sink.received) == 1
        assert sink.received[0].message()["Message-ID"] == f"<{sent['id']}@support.example.com>"


class TestStartTlsAndAuth:
    @pytest.fixture
    def certs(self, tmp_path: Path) -> Any:
        return make_self_signed(tmp_path / "tls")

    @pytest.fixture
    def sink(self, certs: Any) -> Iterator[SmtpSink]:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(certs.cert, certs.key)
        s = SmtpSink(tls=context).start()
        yield s
        s.stop()

    @pytest.fixture
    def relay_url(self, sink: SmtpSink, certs: Any) -> str:
        return f"smtp://{USER}:s3cret-%D0%BF%D0%B0%D1%80%D0%BE%D0%BB%D1%8C@127.0.0.1:{sink.port}?starttls=require&cafile={certs.cert}"

    async def test_login_over_starttls(self, app: Any, client: Any, sink: SmtpSink):
        conversation_id, _ = await email_conversation(app)
        sent = await reply(client, app, conversation_id)
        msg = await settled(app, sent["id"])
        assert msg.delivery_status == "sent", msg.error
        assert len(sink.received) == 1
        assert sink.received[0].tls is True
        assert sink.received[0].login == USER.encode()


class TestWrongPassword(TestStartTlsAndAuth):
    @pytest.fixture
    def relay_url(self, sink: SmtpSink, certs: Any) -> str:
        return f"smtp://{USER}:wrong@127.0.0.1:{sink.port}?starttls=require&cafile={certs.cert}"

    async def test_login_over_starttls(self, app: Any, client: Any, sink: SmtpSink):
        conversation_id, _ = await email_conversation(app)
        sent = await reply(client, app, conversation_id)
        msg = await settled(app, sent["id"])
        assert msg.delivery_status == "failed"
        assert msg.error is not None
        assert "535" in msg.error
        assert sink.received == []


# -- pure parts -----------------------------------------------------------------------------------


def test_relay_urls():
    plain = parse_relay("smtp://u%40x:p%3Aw@mail.example.com:587")
    assert (plain.host, plain.port, plain.username, plain.password) == ("mail.example.com", 587, "u@x", "p:w")
    assert not plain.implicit_tls
    assert not plain.require_starttls
    implicit = parse_relay("smtps://mail.example.com")
    assert (implicit.port, implicit.implicit_tls) == (465, True)
    assert parse_relay("smtp://relay?starttls=require").require_starttls
    assert parse_relay("smtp://relay").port == 25
    for bad in (None, "", "http://relay", "smtp://"):
        with pytest.raises(PermanentError):
            parse_relay(bad)
    with pytest.raises(PermanentError, match="FRONTDESK_SMTP_RELAY"):
        parse_relay(None)


class TestNoRelay:
    @pytest.fixture
    def relay_url(self) -> str:
        return ""

    async def test_kept_in_the_local_mail_catcher_not_failed(self, app: Any, client: Any, sink: SmtpSink):
        """tests/integration/test_mail_catcher.py reads what was kept."""
        conversation_id, _ = await email_conversation(app)
        sent = await reply(client, app, conversation_id)
        msg = await settled(app, sent["id"])
        assert (msg.delivery_status, msg.error) == ("caught", None)
        assert sink.received == []


def test_references_are_deduplicated_and_bounded():
    def m(ext: str, direction: str = "in", refs: list[str] | None = None) -> Message:
        return Message(external_id=ext, direction=direction, meta={"references": refs} if refs else {})

    earlier = [m("a@x", refs=["root@x"]), m("b@y", "out"), m("c@x", refs=["root@x", "a@x", "b@y"])]
    in_reply_to, refs = thread_headers(earlier)
    assert in_reply_to == "<c@x>"
    assert refs == ["<root@x>", "<a@x>", "<b@y>", "<c@x>"]
    many = [m(f"{i}@x") for i in range(40)]
    _, refs = thread_headers(many)
    assert len(refs) == 20
    assert refs[0] == "<0@x>"
    assert refs[-1] == "<39@x>"
