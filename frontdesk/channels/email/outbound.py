"""Outbound email: the channel adapter the outbox dispatcher calls for ``channel == "email"``.

For one outbound message it reads the conversation (subject, the Message-IDs of its earlier
emails), the customer's email address and the message's attachments, builds a MIME message
(:func:`build_email`) and hands it to the relay named by ``FRONTDESK_SMTP_RELAY``
(:func:`deliver`, aiosmtplib). Without a relay the message is kept, exactly as it would have
been sent, in the local mail catcher (``catcher.keep``; admins read it at ``/admin#mail``) and
marked ``caught`` — not ``sent``, so nobody takes it for delivered; the desk says so.

- ``Message-ID`` is ``<message uuid@mail_domain>``: new for every message, yet the same on every
  retry of it, so a resend after a crash is recognisably the same mail. It is returned as the
  provider id (``Message.external_id``, without the brackets like every stored Message-ID), so
  the customer's answer threads by ``In-Reply-To``.
- ``In-Reply-To`` names the customer's last email in the conversation, ``References`` the
  conversation's earlier emails (oldest first, at most :data:`MAX_REFERENCES`).
- ``Reply-To`` is the conversation's reply address (``reply+<token>@mail_domain``).
- ``Auto-Submitted`` is absent on agent replies; bot replies say ``auto-replied`` and system
  messages ``auto-generated`` (RFC 3834), so vacation responders do not answer them.
- Body: ``text/plain`` and ``text/html`` alternatives (the message's sanitised HTML, or its text
  escaped), then the attachments (``multipart/mixed``).

Failures: SMTP 4xx, timeouts and connection errors are :class:`TransientError` (the outbox
retries with backoff); 5xx answers, a customer without a deliverable address
are :class:`PermanentError` (the message is ``failed`` with the reason, visible to the agent).

System mail (Frontdesk writing to an address itself, e.g. the link that confirms a chat
visitor's address): :func:`send_system_mail` builds it (:func:`build_system_mail`) and hands it to
the same relay (:func:`configured_relay`, :func:`deliver`); its caller schedules it as a timer, so
it is durable and retried like the outbox.

Relay URL: ``smtp://[user:pass@]host[:port]`` (port 25; STARTTLS when the server offers it),
``smtps://…`` (port 465, TLS from the first byte). Query options: ``starttls=require`` (refuse
to send in clear), ``cafile=/path.pem`` (trust this CA, e.g. a private relay's), ``verify=false``
(do not check the certificate — test rigs only), ``timeout=<seconds>``.
"""

from __future__ import annotations

import html as html_lib
import logging
import re
import ssl
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.errors import MessageError
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, getaddresses, parseaddr
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.channels.base import (
    ChannelContext,
    OutboundMessage,
    PermanentError,
    SendResult,
    TransientError,
)
from frontdesk.channels.email import catcher
from frontdesk.channels.email.mailthread import reply_address
from frontdesk.models import Attachment, Conversation, Identity, Message
from frontdesk.models.enums import AuthorType, Channel, DeliveryStatus, Direction, IdentityKind
from frontdesk.settings import get_settings
from frontdesk.storage import AttachmentStore, ObjectMissing, StorageError, make_store

log = logging.getLogger(__name__)

MAX_REFERENCES = 20
DEFAULT_TIMEOUT = 30.0
DEFAULT_SUBJECT = "Your conversation with us"
# 7bit: non-ASCII headers are RFC 2047-encoded and bodies quoted-printable/base64, so the mail
# passes any relay, with or without 8BITMIME/SMTPUTF8.
POLICY = SMTP.clone(cte_type="7bit", max_line_length=78)

_MSGID = re.compile(r"^<?([^<>\s@]+@[^<>\s@]+)>?$")


# -- relay configuration ---------------------------------------------------------------------


@dataclass(frozen=True)
class Relay:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    implicit_tls: bool = False
    require_starttls: bool = False
    cafile: str | None = None
    verify: bool = True
    timeout: float = DEFAULT_TIMEOUT

    def tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.cafile)
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


_TRUE = {"1", "true", "yes", "on", "require", "required"}


def parse_relay(url: str | None) -> Relay:
    """The relay described by ``FRONTDESK_SMTP_RELAY``; :class:`PermanentError` if none/invalid."""
    if not url or not url.strip():
        raise PermanentError("no SMTP relay configured (FRONTDESK_SMTP_RELAY)")
    parts = urlsplit(url.strip())
    if parts.scheme not in ("smtp", "smtps"):
        raise PermanentError("FRONTDESK_SMTP_RELAY must start with smtp:// or smtps://")
    try:
        port = parts.port
    except ValueError as exc:
        raise PermanentError("FRONTDESK_SMTP_RELAY has an invalid port") from exc
    if not parts.hostname:
        raise PermanentError("FRONTDESK_SMTP_RELAY names no host")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    implicit = parts.scheme == "smtps"
    try:
        timeout = float(query.get("timeout", DEFAULT_TIMEOUT))
    except ValueError as exc:
        raise PermanentError("FRONTDESK_SMTP_RELAY: timeout must be a number of seconds") from exc
    return Relay(
        host=parts.hostname,
        port=port or (465 if implicit else 25),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        implicit_tls=implicit,
        require_starttls=query.get("starttls", "").lower() in _TRUE,
        cafile=query.get("cafile") or None,
        verify=query.get("verify", "true").lower() in _TRUE,
        timeout=timeout,
    )


# -- what the message needs from the database -------------------------------------------------


@dataclass
class OutboundAttachment:
    filename: str
    content_type: str
    data: bytes


@dataclass
class Envelope:
    """What :func:`build_email` needs beyond the :class:`OutboundMessage`."""

    recipient: str
    subject: str | None = None
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    attachments: list[OutboundAttachment] = field(default_factory=list)


def format_msgid(value: str | None) -> str | None:
    """``<id@host>`` for a Message-ID given with or without angle brackets; ``None`` if it is not one."""
    if not value:
        return None
    match = _MSGID.match(value.strip())
    return f"<{match.group(1)}>" if match else None


def message_id_for(message_id: uuid.UUID, mail_domain: str) -> str:
    """The Message-ID of an outbound message: stable across retries of the same message."""
    return f"<{message_id}@{mail_domain}>"


def _earlier_ids(message: Message) -> list[str]:
    """The Message-IDs one earlier message contributes to References: its own, and (for an
    inbound mail) the References it carried, when the receiver kept them in ``meta``."""
    ids: list[str] = []
    meta = message.meta if isinstance(message.meta, dict) else {}
    refs = meta.get("references")
    if isinstance(refs, str):
        refs = refs.split()
    if isinstance(refs, list):
        ids.extend(r for r in (format_msgid(str(x)) for x in refs) if r)
    own = format_msgid(message.external_id) or format_msgid(str(meta.get("message_id") or ""))
    if own:
        ids.append(own)
    return ids


def thread_headers(earlier: Sequence[Message]) -> tuple[str | None, list[str]]:
    """``(In-Reply-To, References)`` from the conversation's earlier email messages (oldest first).

    In-Reply-To is the customer's last email (else the last email at all); References lists
    every Message-ID seen, oldest first, deduplicated, the first and the last
    ``MAX_REFERENCES - 1`` kept when the thread is long (RFC 5322 §3.6.4 practice).
    """
    references: list[str] = []
    for m in earlier:
        for ref in _earlier_ids(m):
            if ref not in references:
                references.append(ref)
    in_reply_to = None
    for m in reversed(earlier):
        own = format_msgid(m.external_id) or format_msgid(str((m.meta or {}).get("message_id") or ""))
        if own and m.direction == Direction.inbound.value:
            in_reply_to = own
            break
    if in_reply_to is None and references:
        in_reply_to = references[-1]
    if len(references) > MAX_REFERENCES:
        references = [references[0], *references[-(MAX_REFERENCES - 1) :]]
    return in_reply_to, references


async def load_envelope(db: Any, message: OutboundMessage, store: Callable[[], AttachmentStore]) -> Envelope:
    """Read the recipient, subject, thread ids and attachments of ``message``."""
    async with db.transaction() as session:
        conversation = await session.get(Conversation, message.conversation_id)
        identities = list(
            await session.scalars(
                select(Identity)
                .where(Identity.customer_id == message.customer_id, Identity.kind == IdentityKind.email.value)
                .order_by(Identity.created_at.desc(), Identity.id.desc())
            )
        )
        earlier = list(
            await session.scalars(
                select(Message)
                .where(
                    Message.conversation_id == message.conversation_id,
                    Message.channel == Channel.email.value,
                    Message.id != message.message_id,
                    Message.created_at <= message.created_at,
                    Message.direction != Direction.note.value,
                )
                .order_by(Message.created_at, Message.id)
            )
        )
        attachments = list(
            await session.scalars(
                select(Attachment).where(Attachment.message_id == message.message_id).order_by(Attachment.created_at)
            )
        )
    recipient = _recipient(identities, earlier)
    in_reply_to, references = thread_headers(earlier)
    envelope = Envelope(
        recipient=recipient,
        subject=conversation.subject if conversation is not None else None,
        in_reply_to=in_reply_to,
        references=references,
    )
    for attachment in attachments:
        try:
            data = await store().get(attachment.storage_key)
        except ObjectMissing as exc:
            raise PermanentError(f"attachment {attachment.filename!r} is missing from the store") from exc
        except StorageError as exc:
            raise TransientError(f"attachment store unreachable: {exc}") from exc
        envelope.attachments.append(OutboundAttachment(attachment.filename, attachment.content_type, data))
    return envelope


def _recipient(identities: Sequence[Identity], earlier: Sequence[Message]) -> str:
    """The customer's address: the one they last wrote from, else their newest deliverable one."""
    if not identities:
        raise PermanentError("the customer has no email address to reply to")
    deliverable = [i for i in identities if not i.undeliverable]
    if not deliverable:
        addresses = ", ".join(i.value for i in identities)
        raise PermanentError(f"the customer's email address is marked undeliverable ({addresses})")
    by_value = {i.value.casefold(): i.value for i in deliverable}
    for m in reversed(earlier):
        if m.direction != Direction.inbound.value:
            continue
        sender = (m.meta or {}).get("from")
        if isinstance(sender, str):
            addr = parseaddr(sender)[1].casefold()
            if addr in by_value:
                return by_value[addr]
    return deliverable[0].value


# -- the MIME message -----------------------------------------------------------------------


def _from_header(inbox_config: dict[str, Any], settings: Any) -> tuple[str | Address, str]:
    """``(From header value, envelope sender address)``."""
    address = inbox_config.get("address")
    if isinstance(address, str) and "@" in address:
        name = inbox_config.get("from_name")
        display = name.strip() if isinstance(name, str) else ""
        try:
            return Address(display_name=display, addr_spec=address.strip()), address.strip()
        except (ValueError, IndexError) as exc:
            raise PermanentError(f"the inbox's address {address!r} is not a valid email address") from exc
    if settings.mail_from:
        pairs = getaddresses([settings.mail_from])
        if pairs and "@" in pairs[0][1]:
            name, addr = pairs[0]
            try:
                return Address(display_name=name, addr_spec=addr), addr
            except (ValueError, IndexError):
                pass
        raise PermanentError("FRONTDESK_MAIL_FROM is not a valid email address")
    fallback = f"frontdesk@{settings.mail_domain}"
    return Address(addr_spec=fallback), fallback


def _html_of(message: OutboundMessage) -> str:
    if message.html and message.html.strip():
        body = message.html
    else:
        paragraphs = (html_lib.escape(p).replace("\n", "<br>\n") for p in message.text.split("\n\n"))
        body = "\n".join(f"<p>{p}</p>" for p in paragraphs)
    return f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head><body>\n{body}\n</body></html>\n'


def _subject(subject: str | None, replying: bool) -> str:
    subject = " ".join((subject or "").split()) or DEFAULT_SUBJECT
    if replying and not re.match(r"^(re|aw|sv|ответ)\s*:", subject, re.IGNORECASE):
        subject = f"Re: {subject}"
    return subject


def build_email(message: OutboundMessage, envelope: Envelope, settings: Any) -> tuple[EmailMessage, str]:
    """The MIME message for ``message`` and the envelope sender."""
    from_value, sender = _from_header(message.inbox_config, settings)
    msg = EmailMessage(policy=POLICY)
    try:
        msg["From"] = from_value
        msg["To"] = envelope.recipient
        msg["Subject"] = _subject(envelope.subject, replying=envelope.in_reply_to is not None)
        msg["Date"] = formatdate(message.created_at.timestamp(), localtime=False, usegmt=True)
        msg["Message-ID"] = message_id_for(message.message_id, settings.mail_domain)
        if envelope.in_reply_to:
            msg["In-Reply-To"] = envelope.in_reply_to
        if envelope.references:
            msg["References"] = " ".join(envelope.references)
        msg["Reply-To"] = reply_address(message.conversation_id, settings)
        if message.author_type == AuthorType.bot.value:
            msg["Auto-Submitted"] = "auto-replied"
        elif message.author_type == AuthorType.system.value:
            msg["Auto-Submitted"] = "auto-generated"
        msg["X-Frontdesk-Conversation"] = str(message.conversation_id)
    except (ValueError, IndexError) as exc:  # an address the header registry cannot write
        raise PermanentError(f"cannot address this email: {exc}") from exc
    msg.set_content(message.text or "", subtype="plain", charset="utf-8")
    msg.add_alternative(_html_of(message), subtype="html", charset="utf-8")
    for attachment in envelope.attachments:
        maintype, _, subtype = (attachment.content_type or "").partition("/")
        if not maintype or not subtype or maintype == "multipart":
            maintype, subtype = "application", "octet-stream"
        msg.add_attachment(attachment.data, maintype=maintype, subtype=subtype, filename=attachment.filename)
    return msg, sender


# -- sending --------------------------------------------------------------------------------


def _response_error(code: int, text: str, what: str) -> Exception:
    detail = f"SMTP relay {what}: {code} {text}".strip()
    return PermanentError(detail) if 500 <= code < 600 else TransientError(detail)


def encode(msg: EmailMessage) -> bytes:
    """The bytes a relay is handed (7-bit clean); :class:`PermanentError` if they cannot be made."""
    try:
        return msg.as_bytes(policy=POLICY)
    except (ValueError, UnicodeError, MessageError) as exc:
        raise PermanentError(f"cannot encode this email: {exc}") from exc


async def deliver(relay: Relay, msg: EmailMessage, sender: str, recipients: Sequence[str]) -> str:
    """Send ``msg`` through ``relay``; the relay's last answer. Raises Permanent/TransientError."""
    data = encode(msg)
    client = aiosmtplib.SMTP(
        hostname=relay.host,
        port=relay.port,
        username=relay.username,
        password=relay.password,
        use_tls=relay.implicit_tls,
        start_tls=None if relay.implicit_tls else (True if relay.require_starttls else None),
        tls_context=relay.tls_context(),
        timeout=relay.timeout,
    )
    try:
        async with client:
            errors, response = await client.sendmail(sender, list(recipients), data)
    except aiosmtplib.SMTPRecipientsRefused as exc:
        refused = exc.recipients[0] if exc.recipients else None
        if refused is None:
            raise TransientError("SMTP relay refused every recipient") from exc
        raise _response_error(refused.code, refused.message, f"refused {refused.recipient}") from exc
    except aiosmtplib.SMTPAuthenticationError as exc:
        raise _response_error(exc.code, exc.message, "refused the login") from exc
    except aiosmtplib.SMTPResponseException as exc:
        raise _response_error(exc.code, exc.message, "refused the message") from exc
    except UnicodeError as exc:  # a non-ASCII envelope address the relay cannot take
        raise PermanentError(f"cannot address this email: {exc}") from exc
    except aiosmtplib.SMTPNotSupported as exc:
        raise PermanentError(f"SMTP relay cannot do what the configuration asks: {exc}") from exc
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        raise TransientError(f"SMTP relay unreachable: {type(exc).__name__}: {exc}") from exc
    if errors:  # some recipients refused (only one is ever sent to; defensive)
        recipient, refusal = next(iter(errors.items()))
        raise _response_error(refusal.code, refusal.message, f"refused {recipient}")
    return response


def configured_relay(settings: Any) -> Relay | None:
    """The relay every outbound mail goes through (``FRONTDESK_SMTP_RELAY``); ``None`` when none is
    configured: mail is then kept in the local mail catcher (:mod:`.catcher`)."""
    secret = settings.smtp_relay
    url = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    return parse_relay(url) if url and url.strip() else None


# -- system mail: Frontdesk writing to an address itself, not a reply in a conversation ----------


def build_system_mail(
    settings: Any, *, to: str, subject: str, text: str, html: str | None = None
) -> tuple[EmailMessage, str]:
    """A mail from Frontdesk itself (a confirmation link…): From the default address, ``Auto-Submitted:
    auto-generated``, no Reply-To into a conversation. Returns the message and the envelope sender."""
    from_value, sender = _from_header({}, settings)
    msg = EmailMessage(policy=POLICY)
    try:
        msg["From"] = from_value
        msg["To"] = to
        msg["Subject"] = " ".join(subject.split())
        msg["Date"] = formatdate(localtime=False, usegmt=True)
        msg["Message-ID"] = message_id_for(uuid.uuid4(), settings.mail_domain)
        msg["Auto-Submitted"] = "auto-generated"
    except (ValueError, IndexError) as exc:
        raise PermanentError(f"cannot address this email: {exc}") from exc
    msg.set_content(text, subtype="plain", charset="utf-8")
    if html is not None:
        msg.add_alternative(html, subtype="html", charset="utf-8")
    return msg, sender


async def send_system_mail(
    session: AsyncSession, settings: Any, *, to: str, subject: str, text: str, html: str | None = None
) -> str:
    """Build and send a system mail through the configured relay; the relay's answer. Without a
    relay it is kept in the local mail catcher, in ``session``'s unit of work.

    Raises :class:`PermanentError` (refused) or :class:`TransientError` like the adapter."""
    relay = configured_relay(settings)
    msg, sender = build_system_mail(settings, to=to, subject=subject, text=text, html=html)
    if relay is None:
        store = make_store(settings)
        try:
            await catcher.keep_system(session, store, msg, encode(msg))
        finally:
            await store.close()
        log.info("system email %s kept in the local mail catcher: no SMTP relay", msg["Message-ID"])
        return "kept in the local mail catcher"
    response = await deliver(relay, msg, sender, [to])
    log.info("system email %s sent via %s:%s", msg["Message-ID"], relay.host, relay.port)
    return response


class EmailAdapter:
    name = "email"

    def __init__(self, ctx: ChannelContext) -> None:
        self.ctx = ctx
        self._store: AttachmentStore | None = None

    @property
    def settings(self) -> Any:
        return self.ctx.settings or get_settings()

    def _attachment_store(self) -> AttachmentStore:
        if self._store is None:
            self._store = make_store(self.settings)
        return self._store

    async def send(self, message: OutboundMessage) -> SendResult:
        settings = self.settings
        relay = configured_relay(settings)
        if self.ctx.db is None:
            raise TransientError("the email adapter has no database to read the conversation from")
        envelope = await load_envelope(self.ctx.db, message, self._attachment_store)
        msg, sender = build_email(message, envelope, settings)
        message_id = str(msg["Message-ID"])
        if relay is None:
            await catcher.keep(self.ctx.db, self._attachment_store(), message, msg, encode(msg))
            log.info("email %s to %s kept in the local mail catcher: no SMTP relay", message_id, envelope.recipient)
            return SendResult(
                status=DeliveryStatus.caught.value,
                external_id=message_id.strip("<>"),
                detail="kept in the local mail catcher: no SMTP relay is configured (FRONTDESK_SMTP_RELAY)",
            )
        response = await deliver(relay, msg, sender, [envelope.recipient])
        log.info("email %s sent to %s via %s:%s", message_id, envelope.recipient, relay.host, relay.port)
        # Stored without the angle brackets, like inbound Message-IDs (see mailthread).
        return SendResult(status="sent", external_id=message_id.strip("<>"), detail=response[:200] or None)
