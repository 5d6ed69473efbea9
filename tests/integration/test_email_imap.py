# ruff: noqa: RUF001  (Russian text is Cyrillic on purpose)
"""IMAP polling against a real IMAP server: Dovecot, started by the test on loopback.

Each test runs its own ``dovecot -F`` with a config in a temporary directory (no system config):
a passwd-file user, maildir storage in the tmp dir, ``ssl = required`` with a certificate made
by the test, IMAPS on a free port. Messages are put in the mailbox with IMAP APPEND (as a mail
server's delivery would), then Frontdesk's poller — running inside the server's lifespan —
takes them in. Needs Debian's ``dovecot-imapd``; without it these tests skip locally and fail
under ``FRONTDESK_TEST_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import imapclient
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import func, select, update

from frontdesk import clock
from frontdesk.app import create_app
from frontdesk.channels.email.imap import ImapConfig, ImapConfigError, state_of
from frontdesk.db import Database
from frontdesk.models import Conversation, Customer, Identity, Inbox, Message
from frontdesk.models.mailbox import MailboxState
from frontdesk.settings import Settings
from tests import peers
from tests.builders.conversations import make_inbox
from tests.integration.tls_certs import CertFiles, make_self_signed
from tests.integration.webhook_sink import free_port

DOVECOT = shutil.which("dovecot") or ("/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else None)
USER, PASSWORD = "support", "imap-pass-123"


def _require_dovecot() -> str:
    peers.require(peers.DOVECOT, DOVECOT is not None, "dovecot is not installed (Debian package dovecot-imapd)")
    assert DOVECOT is not None
    return DOVECOT


@dataclass
class Dovecot:
    port: int
    certs: CertFiles
    root: Path
    process: subprocess.Popen[bytes]

    def client(self) -> imapclient.IMAPClient:
        ctx = ssl.create_default_context(cafile=str(self.certs.cert))
        c = imapclient.IMAPClient("127.0.0.1", self.port, ssl=True, ssl_context=ctx, timeout=10)
        c.login(USER, PASSWORD)
        return c

    def append(self, raw: bytes, folder: str = "INBOX") -> None:
        c = self.client()
        try:
            c.append(folder, raw)
        finally:
            c.logout()

    def seen(self) -> dict[int, bool]:
        c = self.client()
        try:
            c.select_folder("INBOX", readonly=True)
            flags = c.get_flags(c.search(["ALL"]))
        finally:
            c.logout()
        return {int(uid): imapclient.SEEN in f for uid, f in flags.items()}

    def imap_config(self, **over: Any) -> dict[str, Any]:
        return {
            "host": "127.0.0.1",
            "port": self.port,
            "username": USER,
            "password": PASSWORD,
            "folder": "INBOX",
            "tls": True,
            "ca_file": str(self.certs.cert),
            **over,
        }

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _config(root: Path, port: int, certs: CertFiles) -> Path:
    if os.getuid() == 0:
        # Dovecot refuses to give mail processes uid 0: run them as its own system user.
        account = pwd.getpwnam("dovecot")
        uid, gid = account.pw_uid, account.pw_gid
        users = ""
    else:
        uid, gid = os.getuid(), os.getgid()
        me = pwd.getpwuid(uid).pw_name
        users = f"default_internal_user = {me}\ndefault_login_user = {me}\n"
    mail = root / "mail"
    mail.mkdir(parents=True)
    if os.getuid() == 0:
        os.chown(mail, uid, gid)
    (root / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
    config = root / "dovecot.conf"
    config.write_text(
        f"""
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
ssl = required
ssl_cert = <{certs.cert}
ssl_key = <{certs.key}
disable_plaintext_auth = yes
auth_mechanisms = plain login
first_valid_uid = 1
{users}mail_location = maildir:{mail}/%u
passdb {{
  driver = passwd-file
  args = username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = {port}
    ssl = yes
  }}
}}
"""
    )
    return config


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    binary = _require_dovecot()
    # Not under pytest's tmp_path: its directories are private (0700) and Dovecot's auth and
    # mail processes run as Dovecot's own user, which must reach the passwd file and maildir.
    root = Path(tempfile.mkdtemp(prefix="frontdesk-dovecot-"))
    root.chmod(0o755)
    try:
        yield from _run_dovecot(binary, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _run_dovecot(binary: str, root: Path) -> Iterator[Dovecot]:
    certs = make_self_signed(root / "tls")
    port = free_port()
    config = _config(root, port, certs)
    process = subprocess.Popen([binary, "-F", "-c", str(config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    server = Dovecot(port=port, certs=certs, root=root, process=process)
    deadline = time.monotonic() + 15
    while True:
        if process.poll() is not None:
            output = process.stdout.read().decode(errors="replace") if process.stdout else ""
            pytest.fail(f"dovecot exited with {process.returncode}: {output}\n{server.log()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            break
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"dovecot did not listen on {port} within 15 s\n{server.log()}")
        time.sleep(0.05)
    try:
        yield server
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Dovecot listens on 127.0.0.1: allowed explicitly (netguard refuses it by default).
    update = {"imap_poll_seconds": 0.2, "mail_domain": "support.example.com", "outbound_allow": "127.0.0.1/32"}
    return settings.model_copy(update=update)


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Any]:
    """The whole server (its lifespan starts the IMAP poller), as ``frontdesk serve`` would."""
    app = create_app(settings)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60):
        yield app


def mail(subject: str, body: str, *, sender: str = "olga@example.net", charset: str = "utf-8") -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Ольга Смирнова <{sender}>"
    msg["To"] = "support@shop.example.com"
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain="example.net")
    msg["Date"] = "Mon, 23 Nov 2026 09:00:00 +0000"
    msg.set_content(body, charset=charset)
    return msg.as_bytes()


async def imap_inbox(db: Database, imap: dict[str, Any]) -> uuid.UUID:
    inbox = await make_inbox(db, "email", config={"address": "support@shop.example.com", "imap": imap})
    return inbox.id


async def stored(db: Database, inbox_id: uuid.UUID) -> list[Message]:
    async with db.transaction() as s:
        rows = await s.scalars(
            select(Message)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(Conversation.inbox_id == inbox_id, Message.channel == "email")
            .order_by(Message.created_at)
        )
        return list(rows)


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def one_state(db: Database, inbox_id: uuid.UUID) -> MailboxState | None:
    states = await state_of(db, inbox_id)
    return states[0] if states else None


async def polled_since(db: Database, inbox_id: uuid.UUID, since: Any) -> bool:
    state = await one_state(db, inbox_id)
    return state is not None and state.locked_by is None and (state.last_polled_at or since) > since


# -- tests --------------------------------------------------------------------------------------


async def test_messages_land_once_across_restarts(settings: Settings, db: Database, dovecot: Dovecot):
    dovecot.append(mail("Где мой заказ?", "Заказ №42 не пришёл."))
    dovecot.append(mail("Счёт", "Пришлите счёт, пожалуйста.", charset="koi8-r"))
    inbox_id = await imap_inbox(db, dovecot.imap_config())

    async with running(settings):

        async def two() -> bool:
            return len(await stored(db, inbox_id)) == 2

        await until(two, "both messages to be stored")
        after = clock.now()
        await until(lambda: polled_since(db, inbox_id, after), "a poll after storing")
    messages = await stored(db, inbox_id)
    assert sorted(m.text.strip() for m in messages) == ["Заказ №42 не пришёл.", "Пришлите счёт, пожалуйста."]
    assert all(m.direction == "in" and m.meta.get("source") == "email.imap" for m in messages)
    state = await one_state(db, inbox_id)
    assert state is not None
    assert (state.last_uid, state.messages_fetched, state.last_error) == (2, 2, None)
    assert state.uidvalidity is not None
    assert state.last_success_at is not None
    assert dovecot.seen() == {1: True, 2: True}  # flagged \Seen once taken in

    # A restart neither repeats nor loses: nothing is fetched again, a new message is.
    restarted = clock.now()
    async with running(settings):
        await until(lambda: polled_since(db, inbox_id, restarted), "the first poll after the restart")
        state = await one_state(db, inbox_id)
        assert state is not None
        assert state.messages_fetched == 2
        assert len(await stored(db, inbox_id)) == 2

        dovecot.append(mail("Ещё вопрос", "А когда доставка?"))

        async def three() -> bool:
            return len(await stored(db, inbox_id)) == 3

        await until(three, "the new message to be stored")
    state = await one_state(db, inbox_id)
    assert state is not None
    assert (state.last_uid, state.messages_fetched) == (3, 3)
    texts = [m.text.strip() for m in await stored(db, inbox_id)]
    assert sorted(texts) == sorted(["Заказ №42 не пришёл.", "Пришлите счёт, пожалуйста.", "А когда доставка?"])
    assert dovecot.seen() == {1: True, 2: True, 3: True}


async def test_changed_uidvalidity_reads_the_folder_again_without_duplicates(
    settings: Settings, db: Database, dovecot: Dovecot
):
    dovecot.append(mail("Первое", "Раз."))
    inbox_id = await imap_inbox(db, dovecot.imap_config())
    async with running(settings):

        async def one() -> bool:
            state = await one_state(db, inbox_id)
            return state is not None and state.last_uid == 1

        await until(one, "the first message")
    async with db.transaction() as s:  # as if the server had renumbered the folder
        await s.execute(update(MailboxState).where(MailboxState.inbox_id == inbox_id).values(uidvalidity=1))
    async with running(settings):

        async def refetched() -> bool:
            state = await one_state(db, inbox_id)
            return state is not None and state.uidvalidity != 1 and state.messages_fetched == 2

        await until(refetched, "the folder to be read again")
    assert len(await stored(db, inbox_id)) == 1  # handed in twice, stored once (Message-ID)


async def test_failures_are_recorded_and_the_server_keeps_running(settings: Settings, db: Database, dovecot: Dovecot):
    dovecot.append(mail("Тест", "Текст."))
    wrong_password = await imap_inbox(db, dovecot.imap_config(password="nope"))
    untrusted = await imap_inbox(db, dovecot.imap_config(ca_file=None))
    down = await imap_inbox(db, dovecot.imap_config(port=free_port()))
    broken = await imap_inbox(db, {"host": "127.0.0.1"})
    async with running(settings) as app:

        async def all_failed() -> bool:
            for inbox_id in (wrong_password, untrusted, down, broken):
                state = await one_state(db, inbox_id)
                if state is None or state.last_error is None:
                    return False
            return True

        await until(all_failed, "every broken mailbox to report its error")
        errors = {i: (await one_state(db, i)).last_error for i in (wrong_password, untrusted, down, broken)}  # type: ignore[union-attr]
        assert "login refused" in errors[wrong_password]
        assert "TLS" in errors[untrusted]
        assert "certificate" in errors[untrusted].lower()
        assert "cannot reach" in errors[down]
        assert errors[broken] == "configuration: imap: username, password required"
        # Still serving, still polling.
        import httpx

        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/healthz")).status_code < 500
        for inbox_id in (wrong_password, untrusted, down):
            assert await stored(db, inbox_id) == []

        # Fixing the password makes the next poll take the message in and clear the error.
        async with db.transaction() as s:
            await s.execute(
                update(Inbox).where(Inbox.id == wrong_password).values(config={"imap": dovecot.imap_config()})
            )

        async def fixed() -> bool:
            state = await one_state(db, wrong_password)
            return state is not None and state.last_error is None and state.last_uid == 1

        await until(fixed, "the fixed mailbox to be polled")
    assert len(await stored(db, wrong_password)) == 1


async def test_only_one_poller_holds_a_mailbox(settings: Settings, db: Database, dovecot: Dovecot):
    """Two servers on one database (the scaled mode) take turns; each message is handed in once."""
    for i in range(5):
        dovecot.append(mail(f"Письмо {i}", f"Текст {i}."))
    inbox_id = await imap_inbox(db, dovecot.imap_config())
    async with running(settings), running(settings):

        async def five() -> bool:
            state = await one_state(db, inbox_id)
            return state is not None and state.last_uid == 5

        await until(five, "all five messages")
    state = await one_state(db, inbox_id)
    assert state is not None
    assert state.messages_fetched == 5
    async with db.transaction() as s:
        count = await s.scalar(
            select(func.count())
            .select_from(Message)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(Conversation.inbox_id == inbox_id)
        )
    assert count == 5


def test_config_parsing():
    assert ImapConfig.from_inbox({}) is None
    assert ImapConfig.from_inbox({"imap": None}) is None
    cfg = ImapConfig.from_inbox({"imap": {"host": "h", "username": "u", "password": "p"}})
    assert cfg is not None
    assert (cfg.port, cfg.folder, cfg.tls) == (993, "INBOX", True)
    plain = ImapConfig.from_inbox({"imap": {"host": "h", "username": "u", "password": "p", "tls": False}})
    assert plain is not None
    assert plain.port == 143
    with pytest.raises(ImapConfigError, match="password"):
        ImapConfig.from_inbox({"imap": {"host": "h", "username": "u"}})
    with pytest.raises(ImapConfigError, match="port"):
        ImapConfig.from_inbox({"imap": {"host": "h", "username": "u", "password": "p", "port": "x"}})


async def test_polled_mail_is_authenticated_only_by_the_trusted_server(
    settings: Settings, db: Database, dovecot: Dovecot
):
    """IMAP mail has no peer to check: only the mailbox server's own Authentication-Results
    (its authserv-id named in ``trusted_authserv_ids``) can prove the sender."""
    async with db.transaction() as s:
        olga = Customer(name="Ольга (проверена)")
        s.add(olga)
        await s.flush()
        s.add(Identity(customer_id=olga.id, kind="email", value="olga@example.net", verified=True))
    genuine = mail("Проверено", "Это я.")
    forged = mail("Подделка", "Это не я.")
    dovecot.append(b"Authentication-Results: mx.shop.example.com; dmarc=pass header.from=example.net\n" + genuine)
    dovecot.append(b"Authentication-Results: mx.attacker.example; dmarc=pass header.from=example.net\n" + forged)
    inbox_id = await imap_inbox(db, {**dovecot.imap_config(), "trusted_authserv_ids": ["MX.shop.example.com"]})

    async with running(settings):

        async def two() -> bool:
            return len(await stored(db, inbox_id)) == 2

        await until(two, "both messages to be stored")
    by_text = {m.text.strip(): m for m in await stored(db, inbox_id)}
    assert by_text["Это я."].customer_id == olga.id
    assert by_text["Это я."].meta["auth"]["authserv_id"] == "mx.shop.example.com"
    assert by_text["Это не я."].customer_id != olga.id
    assert by_text["Это не я."].meta["auth"]["dmarc"] == "none"
    assert ImapConfig.from_inbox({"imap": {"host": "h", "username": "u", "password": "p"}}).trusted_authserv_ids == ()
    with pytest.raises(ImapConfigError, match="trusted_authserv_ids"):
        ImapConfig.from_inbox({"imap": {"host": "h", "username": "u", "password": "p", "trusted_authserv_ids": 5}})
