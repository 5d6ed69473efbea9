"""IMAP polling: take in the mail of an existing mailbox, for inboxes configured with ``imap``.

Inbox config (``channel == "email"``)::

    "imap": {"host": "imap.example.com", "port": 993, "username": "support@example.com",
             "password": "…", "folder": "INBOX", "tls": true}

``trusted_authserv_ids`` names the mailbox server's authserv-id(s): only then is the sender
verdict of polled mail read from that server's ``Authentication-Results`` (see :mod:`.auth`).
``tls: true`` (the default) is IMAP over TLS from the first byte (port 993); ``tls: false`` with
``starttls: true`` upgrades a plain connection (port 143); ``tls: false`` alone is clear text
(test rigs only). ``ca_file`` trusts a private CA; ``verify: false`` skips certificate checks.
The host must be public or allowed by ``FRONTDESK_OUTBOUND_ALLOW`` (``frontdesk.netguard``): it
is resolved and checked before each poll, and the connection goes to the checked address.

Every ``settings.imap_poll_seconds`` the poller (started with the server, one asyncio task; the
blocking imapclient calls run in a thread) polls every active email inbox that has ``imap``:

1. take a short lease on the mailbox's :class:`MailboxState` row, so one node polls it at a time;
2. log in, select the folder; a UIDVALIDITY other than the stored one means the server renumbered
   the folder: it is read again from UID 1 (nothing duplicates: the store is idempotent by
   Message-ID);
3. fetch the messages with a UID above ``last_uid`` (``BODY.PEEK[]``: reading does not mark them
   read), oldest first; hand each to ``inbound.receive_raw(ctx, raw, inbox_id=…,
   source="email.imap")``; only once that has returned (committed) record its UID, then flag it
   ``\\Seen``.

A crash between the commit and recording the UID makes the next poll fetch that message again;
the store recognises its Message-ID, so nothing repeats and nothing is lost. Any failure (login
refused, server down, TLS, a message the receiver could not store) stops that mailbox's poll,
is logged and kept in ``MailboxState.last_error``; the next poll tries again. The server never
crashes because of a mailbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import imapclient
from imapclient.exceptions import IMAPClientError, LoginError
from imapclient.imap4 import IMAP4WithTimeout
from imapclient.tls import IMAP4_TLS
from imapclient.tls import wrap_socket as tls_wrap_socket
from sqlalchemy import or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from frontdesk import clock, netguard
from frontdesk.channels.context import ListenerContext
from frontdesk.channels.email.inbound import receive_raw
from frontdesk.channels.listeners import Stop
from frontdesk.db import Database
from frontdesk.ids import new_id
from frontdesk.models import Inbox
from frontdesk.models.enums import Channel
from frontdesk.models.mailbox import MailboxState
from frontdesk.timers import worker_name

log = logging.getLogger(__name__)

SOURCE = "email.imap"
FETCH_CHUNK = 10
MAX_PER_POLL = 500
LEASE_SECONDS = 300.0
TIMEOUT_SECONDS = 30.0
ERROR_MAX_CHARS = 2000
CONCURRENT_MAILBOXES = 4
STOP_TIMEOUT_SECONDS = 15.0


class ImapConfigError(ValueError):
    """The inbox's ``imap`` settings are incomplete or wrong."""


@dataclass(frozen=True)
class ImapConfig:
    host: str
    username: str
    password: str
    port: int = 993
    folder: str = "INBOX"
    tls: bool = True
    starttls: bool = False
    ca_file: str | None = None
    verify: bool = True
    timeout: float = TIMEOUT_SECONDS
    # authserv-ids whose Authentication-Results header this mailbox's server adds (and strips
    # from incoming mail): the only source of a sender verdict for polled mail (see .auth).
    trusted_authserv_ids: tuple[str, ...] = ()

    @classmethod
    def from_inbox(cls, config: dict[str, Any] | None) -> ImapConfig | None:
        """The ``imap`` section of an inbox's config; ``None`` when polling is not configured."""
        raw = (config or {}).get("imap")
        if not raw:
            return None
        if not isinstance(raw, dict):
            raise ImapConfigError("imap must be an object with host, username and password")
        missing = [k for k in ("host", "username", "password") if not isinstance(raw.get(k), str) or not raw[k]]
        if missing:
            raise ImapConfigError(f"imap: {', '.join(missing)} required")
        tls = _flag(raw.get("tls"), True)
        try:
            port = int(raw.get("port") or (993 if tls else 143))
            timeout = float(raw.get("timeout") or TIMEOUT_SECONDS)
        except (TypeError, ValueError) as exc:
            raise ImapConfigError("imap: port and timeout must be numbers") from exc
        if not 0 < port < 65536:
            raise ImapConfigError("imap: port must be 1-65535")
        folder = raw.get("folder") or "INBOX"
        if not isinstance(folder, str):
            raise ImapConfigError("imap: folder must be a string")
        return cls(
            host=raw["host"],
            username=raw["username"],
            password=raw["password"],
            port=port,
            folder=folder[:200],
            tls=tls,
            starttls=_flag(raw.get("starttls"), False),
            ca_file=raw.get("ca_file") or None,
            verify=_flag(raw.get("verify"), True),
            timeout=timeout,
            trusted_authserv_ids=_names(raw.get("trusted_authserv_ids")),
        )

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_file)
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


def _names(value: Any) -> tuple[str, ...]:
    """A string or a list of strings (authserv-ids); anything else is a configuration error."""
    if value is None or value == "":
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        raise ImapConfigError("imap: trusted_authserv_ids must be a string or a list of strings")
    return tuple(v.strip().lower() for v in items if v.strip())[:20]


def _flag(value: Any, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


# -- the blocking IMAP conversation (runs in a worker thread) -----------------------------------


class _CheckedIMAP4(IMAP4WithTimeout):
    """Plain IMAP (or STARTTLS later) to addresses netguard checked; ``host`` stays the name."""

    def __init__(self, addresses: list[netguard.IPAddress], host: str, port: int, timeout: float | None) -> None:
        self._addresses = addresses
        super().__init__(host, port, timeout)

    def _create_socket(self, timeout: float | None = None) -> socket.socket:
        return netguard.connect_tcp_sync(self._addresses, self.port, timeout if timeout is not None else self._timeout)


class _CheckedIMAP4TLS(IMAP4_TLS):
    """IMAP over TLS to addresses netguard checked; the certificate is verified for ``host``."""

    def __init__(
        self,
        addresses: list[netguard.IPAddress],
        host: str,
        port: int,
        ssl_context: ssl.SSLContext | None,
        timeout: float | None,
    ) -> None:
        self._addresses = addresses
        super().__init__(host, port, ssl_context, timeout)

    def _create_socket(self, timeout: float | None = None) -> socket.socket:
        sock = netguard.connect_tcp_sync(self._addresses, self.port, timeout if timeout is not None else self._timeout)
        return tls_wrap_socket(sock, self.ssl_context, self.host)


class _CheckedIMAPClient(imapclient.IMAPClient):
    """``IMAPClient`` that connects to the given (checked) addresses instead of resolving again."""

    def __init__(self, addresses: list[netguard.IPAddress], host: str, **kwargs: Any) -> None:
        self._addresses = list(addresses)
        super().__init__(host, **kwargs)

    def _create_IMAP4(self) -> Any:
        timeout = getattr(self._timeout, "connect", None)
        if self.ssl:
            return _CheckedIMAP4TLS(self._addresses, self.host, self.port, self.ssl_context, timeout)
        return _CheckedIMAP4(self._addresses, self.host, self.port, timeout)


class ImapSession:
    """One logged-in IMAP connection on one folder. Every method but :meth:`checked_addresses`
    blocks: call it in a thread."""

    def __init__(self, config: ImapConfig, policy: netguard.Policy | None = None) -> None:
        self.config = config
        self.policy = policy or netguard.Policy()
        self.client: imapclient.IMAPClient | None = None

    async def checked_addresses(self) -> list[netguard.IPAddress]:
        """The server's addresses, each allowed by the outbound policy (``DestinationRefused`` if not)."""
        return await netguard.checked_addresses(self.config.host, self.config.port, self.policy)

    def open(self, addresses: list[netguard.IPAddress]) -> int:
        """Connect to one of ``addresses`` (from :meth:`checked_addresses`: no second lookup, so no
        DNS-rebinding gap), log in, select the folder; the folder's UIDVALIDITY."""
        c = self.config
        client = _CheckedIMAPClient(
            addresses,
            c.host,
            port=c.port,
            ssl=c.tls,
            ssl_context=c.ssl_context() if c.tls else None,
            timeout=c.timeout,
        )
        self.client = client
        if not c.tls and c.starttls:
            client.starttls(c.ssl_context())
        client.login(c.username, c.password)
        info = client.select_folder(c.folder)
        uidvalidity = info.get(b"UIDVALIDITY")
        if uidvalidity is None:
            raise IMAPClientError(f"the server gave no UIDVALIDITY for folder {c.folder!r}")
        return int(uidvalidity)

    def uids_after(self, last_uid: int) -> list[int]:
        """UIDs above ``last_uid``, oldest first (``N:*`` also matches the newest: filtered)."""
        assert self.client is not None
        found = self.client.search(["UID", f"{last_uid + 1}:*"])
        return sorted(int(u) for u in found if int(u) > last_uid)

    def fetch(self, uids: list[int]) -> dict[int, bytes]:
        """Raw messages by UID, without setting ``\\Seen``."""
        assert self.client is not None
        data = self.client.fetch(uids, ["BODY.PEEK[]"])
        out: dict[int, bytes] = {}
        for uid, parts in data.items():
            raw = parts.get(b"BODY[]")
            if isinstance(raw, bytes):
                out[int(uid)] = raw
        return out

    def mark_seen(self, uids: Iterable[int]) -> None:
        assert self.client is not None
        self.client.add_flags(list(uids), [imapclient.SEEN], silent=True)

    def close(self) -> None:
        client, self.client = self.client, None
        if client is None:
            return
        try:
            client.logout()
        except Exception:  # already gone; only the socket is left to close
            with contextlib.suppress(Exception):
                client.shutdown()


def describe_error(exc: BaseException, config: ImapConfig | None) -> str:
    """A line an operator can act on."""
    where = f"{config.host}:{config.port}" if config else "the IMAP server"
    if isinstance(exc, ImapConfigError):
        return f"configuration: {exc}"
    if isinstance(exc, LoginError):
        return f"login refused by {where} for {config.username if config else '?'}: {_text(exc)}"
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return f"TLS with {where} failed: {_text(exc)}"
    if isinstance(exc, socket.timeout | TimeoutError):
        return f"{where} did not answer in time"
    if isinstance(exc, OSError):
        return f"cannot reach {where}: {_text(exc)}"
    if isinstance(exc, IMAPClientError):
        return f"IMAP error from {where}: {_text(exc)}"
    return f"{type(exc).__name__}: {_text(exc)}"


def _text(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc.args[0] if exc.args else None, bytes):
        text = exc.args[0].decode("utf-8", "replace")
    return text or type(exc).__name__


# -- the poller --------------------------------------------------------------------------------


class ImapPoller:
    """Polls every IMAP-configured email inbox every ``settings.imap_poll_seconds``."""

    def __init__(self, ctx: ListenerContext, *, worker: str | None = None, poll_seconds: float | None = None) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.worker = worker or worker_name()
        self.poll_seconds = float(poll_seconds or self.settings.imap_poll_seconds)
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    @property
    def db(self) -> Database:
        return self.ctx.db

    # -- one pass ----------------------------------------------------------------------------

    async def poll_all(self) -> int:
        """Poll every active email inbox that has ``imap`` once; messages handed in."""
        async with self.db.transaction() as session:
            inboxes = [
                (inbox.id, dict(inbox.config or {}))
                for inbox in await session.scalars(
                    select(Inbox).where(Inbox.channel == Channel.email.value, Inbox.is_active.is_(True))
                )
                if (inbox.config or {}).get("imap")
            ]
        if not inboxes:
            return 0
        sem = asyncio.Semaphore(CONCURRENT_MAILBOXES)

        async def one(inbox_id: uuid.UUID, config: dict[str, Any]) -> int:
            async with sem:
                return await self.poll_inbox(inbox_id, config)

        counts = await asyncio.gather(*(one(i, c) for i, c in inboxes))
        return sum(counts)

    async def poll_inbox(self, inbox_id: uuid.UUID, inbox_config: dict[str, Any]) -> int:
        """Poll one mailbox; the number of messages handed to the receiver. Never raises
        (except cancellation): failures are logged and stored in ``MailboxState.last_error``."""
        config: ImapConfig | None = None
        folder = "INBOX"
        try:
            config = ImapConfig.from_inbox(inbox_config)
            if config is None:
                return 0
            folder = config.folder
        except ImapConfigError as exc:
            raw_folder = (inbox_config.get("imap") or {}).get("folder") if isinstance(inbox_config, dict) else None
            folder = raw_folder if isinstance(raw_folder, str) and raw_folder else folder
            state_id = await self._state_row(inbox_id, folder[:200])
            await self._finish(state_id, describe_error(exc, None))
            log.warning("imap: inbox %s: %s", inbox_id, exc)
            return 0
        state_id = await self._state_row(inbox_id, folder)
        if not await self._take_lease(state_id):
            return 0
        session = ImapSession(config, netguard.policy_of(self.settings))
        fetched = 0
        error: str | None = None
        try:
            fetched = await self._poll(session, inbox_id, state_id, config.trusted_authserv_ids)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = describe_error(exc, config)
            log.warning("imap: inbox %s (%s): %s", inbox_id, config.host, error)
        finally:
            await asyncio.to_thread(session.close)
            await asyncio.shield(self._finish(state_id, error))
        return fetched

    async def _poll(
        self, session: ImapSession, inbox_id: uuid.UUID, state_id: uuid.UUID, trusted: tuple[str, ...] = ()
    ) -> int:
        uidvalidity = await asyncio.to_thread(session.open, await session.checked_addresses())
        last_uid = await self._check_uidvalidity(state_id, uidvalidity)
        uids = (await asyncio.to_thread(session.uids_after, last_uid))[:MAX_PER_POLL]
        fetched = 0
        for start in range(0, len(uids), FETCH_CHUNK):
            if self._stopping:
                break  # the server is stopping: the rest is fetched by the next poll
            chunk = uids[start : start + FETCH_CHUNK]
            raws = await asyncio.to_thread(session.fetch, chunk)
            taken: list[int] = []
            for uid in chunk:
                raw = raws.get(uid)
                if raw is not None:
                    try:
                        await receive_raw(self.ctx, raw, inbox_id=inbox_id, source=SOURCE, trusted_authserv_ids=trusted)
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:
                        raise RuntimeError(f"UID {uid} could not be stored, will retry: {exc}") from exc
                    fetched += 1
                # Committed (or vanished from the server): never fetch this UID again.
                await self._record_uid(state_id, uidvalidity, uid, counted=raw is not None)
                taken.append(uid)
            if taken:
                try:
                    await asyncio.to_thread(session.mark_seen, taken)
                except (IMAPClientError, OSError) as exc:
                    log.warning("imap: could not flag %d messages \\Seen: %s", len(taken), exc)
        return fetched

    # -- state rows --------------------------------------------------------------------------

    async def _state_row(self, inbox_id: uuid.UUID, folder: str) -> uuid.UUID:
        async with self.db.transaction() as session:
            insert_fn: Any = pg_insert if self.db.dialect == "postgresql" else sqlite_insert
            now = clock.now()
            await session.execute(
                insert_fn(MailboxState)
                .values(
                    id=new_id(),
                    inbox_id=inbox_id,
                    folder=folder,
                    last_uid=0,
                    messages_fetched=0,
                    created_at=now,
                    updated_at=now,
                )
                .on_conflict_do_nothing(index_elements=["inbox_id", "folder"])
            )
            row = await session.scalar(
                select(MailboxState.id).where(MailboxState.inbox_id == inbox_id, MailboxState.folder == folder)
            )
        assert row is not None
        return row

    async def _take_lease(self, state_id: uuid.UUID) -> bool:
        now = clock.now()
        async with self.db.transaction() as session:
            result: Any = await session.execute(
                update(MailboxState)
                .where(
                    MailboxState.id == state_id,
                    or_(MailboxState.locked_until.is_(None), MailboxState.locked_until < now),
                )
                .values(
                    locked_by=self.worker,
                    locked_until=now + timedelta(seconds=LEASE_SECONDS),
                    last_polled_at=now,
                )
                .execution_options(synchronize_session=False)
            )
        return bool(result.rowcount)

    async def _check_uidvalidity(self, state_id: uuid.UUID, uidvalidity: int) -> int:
        """The last UID taken in; reset to 0 when the folder's UIDVALIDITY changed."""
        async with self.db.transaction() as session:
            state = await session.get(MailboxState, state_id)
            assert state is not None
            if state.uidvalidity == uidvalidity:
                return int(state.last_uid)
            if state.uidvalidity is not None:
                log.warning(
                    "imap: folder %s of inbox %s changed UIDVALIDITY %s → %s; reading it again",
                    state.folder,
                    state.inbox_id,
                    state.uidvalidity,
                    uidvalidity,
                )
            state.uidvalidity = uidvalidity
            state.last_uid = 0
            return 0

    async def _record_uid(self, state_id: uuid.UUID, uidvalidity: int, uid: int, *, counted: bool) -> None:
        now = clock.now()
        async with self.db.transaction() as session:
            await session.execute(
                update(MailboxState)
                .where(
                    MailboxState.id == state_id,
                    MailboxState.uidvalidity == uidvalidity,
                    MailboxState.last_uid < uid,
                )
                .values(
                    last_uid=uid,
                    messages_fetched=MailboxState.messages_fetched + (1 if counted else 0),
                    locked_until=now + timedelta(seconds=LEASE_SECONDS),
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )

    async def _finish(self, state_id: uuid.UUID, error: str | None) -> None:
        now = clock.now()
        values: dict[str, Any] = {"updated_at": now}
        if error is None:
            values.update(last_error=None, last_success_at=now)
        else:
            values.update(last_error=error[:ERROR_MAX_CHARS], last_error_at=now)
        try:
            async with self.db.transaction() as session:
                await session.execute(
                    update(MailboxState)
                    .where(MailboxState.id == state_id)
                    .values(**values)
                    .execution_options(synchronize_session=False)
                )
                await session.execute(
                    update(MailboxState)
                    .where(MailboxState.id == state_id, MailboxState.locked_by == self.worker)
                    .values(locked_by=None, locked_until=None)
                    .execution_options(synchronize_session=False)
                )
        except Exception:
            log.exception("imap: could not record the outcome of polling mailbox %s", state_id)

    # -- the loop ----------------------------------------------------------------------------

    def wake(self) -> None:
        """Poll now instead of at the next interval."""
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                await self.poll_all()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("imap: polling failed; retrying at the next interval")
            if self._stopping:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self.run(), name="imap-poller")

    async def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """Let a poll in progress finish its current chunk (and release its lease), then stop."""
        self._stopping = True
        self._wake.set()
        task, self._task = self._task, None
        if task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def state_of(db: Database, inbox_id: uuid.UUID) -> list[MailboxState]:
    """The polling state of an inbox's folders (for status pages and tests)."""
    async with db.transaction() as session:
        return list(await session.scalars(select(MailboxState).where(MailboxState.inbox_id == inbox_id)))


async def start_imap_poller(ctx: ListenerContext) -> Stop | None:
    """Started with the server: polls IMAP mailboxes of email inboxes (a no-op pass when none)."""
    poller = ImapPoller(ctx)
    ctx.state.imap_poller = poller
    poller.start()
    return poller.stop
