"""The built-in SMTP receiver for inbound email (``FRONTDESK_SMTP_LISTEN=host:port``; unset = off).

aiosmtpd's SMTP protocol served by ``loop.create_server`` on the app's own event loop (not
aiosmtpd's Controller thread), so :func:`receive_raw` talks to the ingest writer directly.

- ``RCPT TO``: any address at ``mail_domain`` (including ``reply+…`` addresses) or an email inbox's
  configured ``config.address``; others get ``550 5.1.1``.
- ``DATA``: written line by line to a spool file (memory up to 1 MB, then disk, under
  ``<data_dir>/spool``) and handed on as a file, so a large message is never held in memory;
  ``250`` only after the message is committed (stored in a conversation, or kept as
  ignored/rejected); ``451 4.3.0`` when the database or store cannot be reached (the sender
  retries). ``SIZE`` (``max_attachment_mb`` MB) is announced in the EHLO answer; ``MAIL FROM …
  SIZE=`` over it and DATA over it get ``552``.
- Sessions: at most ``smtp_max_sessions`` at once; one more is answered ``421 4.3.2`` and closed.
- The peer's address, the HELO name and ``MAIL FROM`` go with the message to SPF (see
  :mod:`.auth`).

The receiver does not relay and needs no authentication: put it behind your MX (or make it the
MX of ``mail_domain``) — see ``docs/channels/email.md``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiosmtpd.smtp import MISSING, SMTP, Envelope, Session

from frontdesk.channels.context import ListenerContext
from frontdesk.channels.email.inbound import Deferred, EmailComponents, components_of, receive_raw
from frontdesk.channels.email.spool import RawMessage, SpoolWriter, spool_dir_of
from frontdesk.channels.listeners import Stop

log = logging.getLogger(__name__)

SOURCE = "email.smtp"


def parse_listen(value: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:2525`` for IPv6) → (host, port)."""
    value = value.strip()
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"FRONTDESK_SMTP_LISTEN must be host:port, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def _return_path(mail_from: str | None) -> str | None:
    """The envelope sender; ``""`` for the null return path (``MAIL FROM:<>``) of bounces."""
    if mail_from is None:
        return None
    value = mail_from.strip()
    return "" if value in ("", "<>") else value.strip("<>")


def _peer_host(peer: Any) -> str:
    return str(peer[0] if isinstance(peer, tuple | list) and peer else peer or "unknown")


class InboundHandler:
    """aiosmtpd handler: recipient policy and delivery into :func:`receive_raw`."""

    def __init__(self, components: EmailComponents) -> None:
        self.components = components
        self.domain = components.settings.mail_domain.lower().rstrip(".")

    async def accepts(self, address: str) -> bool:
        addr = address.strip().strip("<>").lower()
        _local, _, domain = addr.rpartition("@")
        if not _local:
            return False
        if domain.rstrip(".") == self.domain:
            return True
        if addr in await self.components.inbox_addresses():
            return True
        self.components.forget_inboxes()  # an inbox configured a moment ago counts at once
        return addr in await self.components.inbox_addresses()

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        try:
            ok = await self.accepts(address)
        except Exception:
            log.exception("smtp: could not check a recipient")
            return "451 4.3.0 Temporary failure checking the recipient; try again later"
        if not ok:
            return f"550 5.1.1 <{address}>: no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw: RawMessage | None = getattr(envelope, "spooled", None)
        if raw is None:  # not our SMTP subclass (kept for handlers driven by plain aiosmtpd)
            content = envelope.original_content or envelope.content or b""
            raw = RawMessage.from_bytes(
                content.encode("utf-8", "surrogateescape") if isinstance(content, str) else content
            )
        if not raw.size:
            return "554 5.6.0 Empty message"
        peer = session.peer
        try:
            outcome = await receive_raw(
                self.components,
                raw,
                source=SOURCE,
                envelope_from=_return_path(envelope.mail_from),
                envelope_to=tuple(envelope.rcpt_tos),
                peer_ip=str(peer[0]) if isinstance(peer, tuple) and peer else None,
                helo=session.host_name or None,
                origin=f"smtp:{_peer_host(session.peer)}",
            )
        except Deferred as exc:
            log.warning("smtp: deferred a message: %s", exc)
            return "451 4.3.0 Temporary failure storing the message; try again later"
        except Exception:  # receive_raw does not raise otherwise; never crash the session
            log.exception("smtp: unexpected failure")
            return "451 4.3.0 Temporary failure; try again later"
        ident = outcome.message_id or outcome.rejected_id or ""
        return f"250 2.0.0 OK {outcome.status} {ident}".rstrip()


class ReceiverSMTP(SMTP):
    """aiosmtpd's SMTP with a cap on concurrent sessions and DATA spooled to a file.

    ``smtp_DATA`` follows aiosmtpd's own (dot-unstuffing, the line-length and size checks with the
    answer delayed to the end of DATA, RFC 5321 4.2.5), but writes each line to a
    :class:`SpoolWriter` instead of a list joined into one bytes object.
    """

    def __init__(self, handler: InboundHandler, *, limits: SessionLimits, spool_dir: str, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.limits = limits
        self.spool_dir = spool_dir
        self._refused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._original_transport is None and self.transport is None:  # a new connection, not STARTTLS
            if self.limits.sessions >= self.limits.max_sessions:
                self._refused = True
                log.warning("smtp: %d sessions open; refused one more", self.limits.sessions)
                transport.write(b"421 4.3.2 Too many connections; try again later\r\n")  # type: ignore[attr-defined]
                transport.close()
                return
            self.limits.sessions += 1
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self._refused:
            return
        self.limits.sessions -= 1
        super().connection_lost(error)

    def eof_received(self) -> bool | None:
        if self._refused:
            return False
        return super().eof_received()

    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        spool = SpoolWriter(self.spool_dir)
        try:
            state = await self._read_data(spool)
            if state == "lost":
                return
            if state != "ok":
                await self.push(
                    "500 Line too long (see RFC5321 4.5.3.1.6)"
                    if state == "too_long"
                    else "552 Error: Too much mail data"
                )
                self._set_post_data_state()
                return
            self.envelope.spooled = spool.finish()  # type: ignore[attr-defined]
            status = await self._call_handler_hook("DATA")
            self._set_post_data_state()
            await self.push("250 OK" if status is MISSING else status)
        finally:
            spool.discard()

    async def _read_data(self, spool: SpoolWriter) -> str:
        """Read DATA up to the lone dot into ``spool``; ``ok``, ``too_long``, ``too_much`` or ``lost``."""
        limit = self.data_size_limit
        state = "ok"
        num_bytes = 0
        fragments: list[bytes] = []
        while self.transport is not None:
            try:
                line: bytes = await self._reader.readuntil(b"\r\n")
            except asyncio.CancelledError:
                log.info("smtp: connection lost during DATA")
                self._writer.close()
                raise
            except asyncio.LimitOverrunError as e:
                if state == "ok":
                    state = "too_long"
                line = await self._reader.read(e.consumed)
            if not fragments and line == b".\r\n":
                return state
            num_bytes += len(line)
            if state == "ok" and limit and num_bytes > limit:
                state = "too_much"
            fragments.append(line)
            if line.endswith(b"\r\n"):
                if state == "ok":
                    whole = b"".join(fragments) if len(fragments) > 1 else fragments[0]
                    if len(whole) > self.line_length_limit:
                        state = "too_long"
                    else:
                        spool.write(whole[1:] if whole.startswith(b".") else whole)
                fragments.clear()
        return "lost"  # the connection went away before the end of DATA


class SessionLimits:
    """The receiver's count of open sessions (one event loop: no lock needed)."""

    def __init__(self, max_sessions: int) -> None:
        self.max_sessions = max_sessions
        self.sessions = 0


class SMTPReceiver:
    """A running receiver: ``address`` is the bound (host, port); ``close()`` stops it."""

    def __init__(self, server: asyncio.Server, handler: InboundHandler, limits: SessionLimits) -> None:
        self.server = server
        self.handler = handler
        self.limits = limits

    @property
    def sessions(self) -> int:
        """Sessions open now."""
        return self.limits.sessions

    @property
    def address(self) -> tuple[str, int]:
        sock = self.server.sockets[0].getsockname()
        return str(sock[0]), int(sock[1])

    async def close(self) -> None:
        self.server.close()
        try:
            await asyncio.wait_for(self.server.wait_closed(), timeout=5)
        except TimeoutError:
            log.warning("smtp: sessions still open at shutdown")


async def start_receiver(app_or_components: Any, listen: str) -> SMTPReceiver:
    components = components_of(app_or_components)
    host, port = parse_listen(listen)
    handler = InboundHandler(components)
    settings = components.settings
    limit = settings.max_attachment_mb * 1024 * 1024
    hostname = settings.mail_domain
    limits = SessionLimits(settings.smtp_max_sessions)
    spool_dir = spool_dir_of(settings.data_dir)
    loop = asyncio.get_running_loop()

    def factory() -> SMTP:
        return ReceiverSMTP(
            handler,
            limits=limits,
            spool_dir=spool_dir,
            data_size_limit=limit,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=hostname,
            ident="Frontdesk ESMTP",
            timeout=300,
            loop=loop,
        )

    server = await loop.create_server(factory, host=host, port=port)
    receiver = SMTPReceiver(server, handler, limits)
    log.info("smtp: receiving mail for @%s on %s:%d", hostname, *receiver.address)
    return receiver


async def start(ctx: ListenerContext) -> Stop | None:
    """Listener starter: run the receiver when ``settings.smtp_listen`` is set."""
    listen = ctx.settings.smtp_listen
    if not listen:
        return None
    receiver = await start_receiver(ctx, listen)
    ctx.state.smtp_receiver = receiver
    return receiver.close
