"""The built-in SMTP receiver for inbound email (``FRONTDESK_SMTP_LISTEN=host:port``; unset = off).

aiosmtpd's SMTP protocol served by ``loop.create_server`` on the app's own event loop (not
aiosmtpd's Controller thread), so :func:`receive_raw` talks to the ingest writer directly.

- ``RCPT TO``: any address at ``mail_domain`` (including ``reply+…`` addresses) or an email inbox's
  configured ``config.address``; others get ``550 5.1.1``.
- ``DATA``: ``250`` only after the message is committed (stored in a conversation, or kept as
  ignored/rejected); ``451 4.3.0`` when the database or store cannot be reached (the sender
  retries); a message over ``max_attachment_mb`` MB gets ``552`` from aiosmtpd.

The receiver does not relay and needs no authentication: put it behind your MX (or make it the
MX of ``mail_domain``) — see ``docs/channels/email.md``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from frontdesk.channels.email.inbound import Deferred, EmailComponents, components_of, receive_raw
from frontdesk.channels.listeners import Stop, listener

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
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        if not raw:
            return "554 5.6.0 Empty message"
        try:
            outcome = await receive_raw(
                self.components,
                raw,
                source=SOURCE,
                envelope_from=_return_path(envelope.mail_from),
                envelope_to=tuple(envelope.rcpt_tos),
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


class SMTPReceiver:
    """A running receiver: ``address`` is the bound (host, port); ``close()`` stops it."""

    def __init__(self, server: asyncio.Server, handler: InboundHandler) -> None:
        self.server = server
        self.handler = handler

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
    limit = components.settings.max_attachment_mb * 1024 * 1024
    hostname = components.settings.mail_domain
    loop = asyncio.get_running_loop()

    def factory() -> SMTP:
        return SMTP(
            handler,
            data_size_limit=limit,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=hostname,
            ident="Frontdesk ESMTP",
            timeout=300,
            loop=loop,
        )

    server = await loop.create_server(factory, host=host, port=port)
    receiver = SMTPReceiver(server, handler)
    log.info("smtp: receiving mail for @%s on %s:%d", hostname, *receiver.address)
    return receiver


@listener
async def start(app: Any) -> Stop | None:
    """Listener starter: run the receiver when ``settings.smtp_listen`` is set."""
    listen = app.state.settings.smtp_listen
    if not listen:
        return None
    receiver = await start_receiver(app, listen)
    app.state.smtp_receiver = receiver
    return receiver.close
