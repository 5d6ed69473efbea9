"""The one way an email comes in: :func:`receive_raw` (the SMTP receiver and IMAP polling call it).

The message comes as bytes (IMAP) or as a :class:`.spool.RawMessage` file (the SMTP receiver
spools DATA to disk as it arrives); a large one is parsed from its file with its big parts decoded
to disk (:func:`.parse.parse_message`), and stored from there, so it is never held whole.

1. Parse (:mod:`.parse`; total — any bytes parse).
2. Already stored under this Message-ID? Answer ``duplicate`` and touch nothing.
3. Keep the raw message in the attachment store (``raw/YYYY/MM/<sha256>.eml``).
4. Classify: auto-replies, bounces and loops never open a conversation; they are kept in
   ``rejected_inputs`` (reason ``ignored …``) for inspection, and a bounce marks the failed
   recipient's email identity ``undeliverable`` (and the returned outbound message ``failed``).
5. Check who sent it (:mod:`.auth`: SPF, DKIM, DMARC) and decide whose timeline it joins
   (:mod:`.sender`: only a DMARC pass proves the From address; unproven mail never joins a
   customer who holds the address verified). The verdict is kept in ``meta["auth"]``.
6. Store attachments and inline images (``Attachment`` rows, no message yet), find the thread
   (reply+ address, then In-Reply-To/References), and hand an :class:`InboundMessage` to the
   ingest writer; the attachments are linked in the same commit.

A malformed or hostile email never raises out: it is kept raw in ``rejected_inputs`` and the
outcome says ``rejected``. Only an infrastructure failure (database or store unreachable) raises
:class:`Deferred`, so the SMTP receiver answers 451 and the sender retries later.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import delete, select
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from frontdesk import clock
from frontdesk.channels.email import mailthread, sender
from frontdesk.channels.email.auth import AuthVerdict, MailAuth, unchecked
from frontdesk.channels.email.parse import Kind, ParsedEmail, classify, parse_message
from frontdesk.channels.email.spool import RawMessage, spool_dir_of
from frontdesk.conversations import delivery
from frontdesk.conversations.ingest import MAX_HTML_BYTES, MAX_TEXT_BYTES, InboundMessage, IngestWriter
from frontdesk.customers import service as customers
from frontdesk.customers.identity import normalise_email
from frontdesk.db import Database
from frontdesk.errors import Invalid, ServiceUnavailable
from frontdesk.ids import new_id
from frontdesk.models import Attachment, Inbox, Message
from frontdesk.models.enums import Channel, IdentityKind
from frontdesk.settings import Settings
from frontdesk.storage import AttachmentStore, StorageError, app_store, new_key

log = logging.getLogger(__name__)

MAX_ATTACHMENTS = 100
MAX_FULL_TEXT = 256 * 1024
INBOX_CACHE_SECONDS = 10.0
_TRANSIENT: tuple[type[BaseException], ...] = (
    StorageError,
    OperationalError,
    InterfaceError,
    PoolTimeout,
    ServiceUnavailable,
    OSError,
    TimeoutError,
)

Status = Literal["accepted", "duplicate", "ignored", "rejected"]


class Deferred(Exception):
    """The email could not be stored now (database or store unreachable); retry it later."""


@dataclass
class EmailComponents:
    """What :func:`receive_raw` needs; made from the app by :func:`components_of`."""

    db: Database
    settings: Settings
    ingest: IngestWriter
    store: AttachmentStore
    _inboxes: tuple[float, dict[str, uuid.UUID]] | None = field(default=None, repr=False)
    _auth: MailAuth | None = field(default=None, repr=False)
    _spool_dir: str | None = field(default=None, repr=False)

    @property
    def auth(self) -> MailAuth:
        """The sender checker (SPF, DKIM, DMARC) with the configured DNS resolver."""
        if self._auth is None:
            self._auth = MailAuth.from_settings(self.settings)
        return self._auth

    @property
    def spool_dir(self) -> str:
        """``<data_dir>/spool``: where large messages and parts go while they are read."""
        if self._spool_dir is None:
            self._spool_dir = spool_dir_of(self.settings.data_dir)
        return self._spool_dir

    async def inbox_addresses(self) -> dict[str, uuid.UUID]:
        """Configured inbox addresses (``config.address`` of email inboxes) → inbox id; cached briefly."""
        now = time.monotonic()
        if self._inboxes is not None and now - self._inboxes[0] < INBOX_CACHE_SECONDS:
            return self._inboxes[1]
        i = Inbox.__table__.c
        async with self.db.engine.connect() as conn:
            rows = (
                await conn.execute(select(i.id, i.config).where(i.channel == Channel.email.value, i.is_active))
            ).all()
        found: dict[str, uuid.UUID] = {}
        for inbox_id, config in rows:
            address = (config or {}).get("address") if isinstance(config, dict) else None
            if isinstance(address, str) and "@" in address:
                found[address.strip().lower()] = inbox_id
        self._inboxes = (now, found)
        return found

    def forget_inboxes(self) -> None:
        self._inboxes = None


def components_of(app_or_components: Any) -> EmailComponents:
    """The :class:`EmailComponents` of a FastAPI app (made once, kept on ``app.state``)."""
    if isinstance(app_or_components, EmailComponents):
        return app_or_components
    state = app_or_components.state
    found: EmailComponents | None = getattr(state, "email_components", None)
    if found is not None:
        return found
    found = EmailComponents(db=state.db, settings=state.settings, ingest=state.ingest, store=app_store(state))
    state.email_components = found
    return found


@dataclass(frozen=True, slots=True)
class Outcome:
    status: Status
    kind: Kind | None = None
    reason: str = ""
    external_id: str | None = None
    message_id: uuid.UUID | None = None
    conversation_id: uuid.UUID | None = None
    customer_id: uuid.UUID | None = None
    raw_key: str | None = None
    rejected_id: uuid.UUID | None = None
    attachment_ids: tuple[uuid.UUID, ...] = ()

    @property
    def stored(self) -> bool:
        """The message is in a conversation (now or before)."""
        return self.status in ("accepted", "duplicate")


def external_id_of(parsed: ParsedEmail) -> str:
    """The idempotency key: the Message-ID without ``<>``, or a hash of the bytes when unusable."""
    mid = parsed.message_id
    if mid and len(mid) <= 500 and mid.isprintable() and not any(c.isspace() for c in mid):
        return mid
    return f"sha256:{parsed.sha256}"


def raw_key_of(parsed: ParsedEmail) -> str:
    now = clock.now()
    return f"raw/{now:%Y}/{now:%m}/{parsed.sha256}.eml"


def _address_of(value: str | None) -> str:
    return (value or "").strip().strip("<>").lower()


async def receive_raw(
    app_or_components: Any,
    raw: bytes | RawMessage,
    *,
    inbox_id: uuid.UUID | None = None,
    source: str = "email.smtp",
    envelope_from: str | None = None,
    envelope_to: tuple[str, ...] = (),
    peer_ip: str | None = None,
    helo: str | None = None,
    trusted_authserv_ids: Iterable[str] = (),
    origin: str | None = None,
) -> Outcome:
    """Store one raw email (idempotent by Message-ID). Never raises for what the email contains.

    ``raw`` is the message's bytes or its spooled file (the caller closes the file).
    ``envelope_from`` is the SMTP ``MAIL FROM`` (``""`` = the null sender of bounces; ``None`` when
    unknown, as with IMAP), ``envelope_to`` the ``RCPT TO`` addresses, ``peer_ip`` and ``helo`` the
    connecting server (for SPF). Mail without a peer (IMAP) is authenticated only from the
    ``Authentication-Results`` of a server in ``trusted_authserv_ids``. ``origin`` is who delivered
    it (``smtp:<peer ip>``; an IMAP inbox by default), what the rejected-input limits count against.
    Raises :class:`Deferred` only when the database or the attachment store cannot be reached.
    """
    comp = components_of(app_or_components)
    message = raw if isinstance(raw, RawMessage) else RawMessage.from_bytes(raw)
    via = _Via(
        source=source,
        inbox_id=inbox_id,
        mail_from=envelope_from,
        rcpt_to=tuple(envelope_to),
        origin=origin or (f"inbox:{inbox_id}" if inbox_id else None),
        peer_ip=peer_ip,
        helo=helo,
        trusted_authserv_ids=tuple(trusted_authserv_ids),
    )
    try:
        return await _receive(comp, message, via)
    except Deferred:
        raise
    except _TRANSIENT as exc:
        log.warning("email: could not store a message now (%s: %s); deferred", type(exc).__name__, exc)
        raise Deferred(f"{type(exc).__name__}: {str(exc)[:200]}") from exc
    except Exception as exc:  # a bug or an email we did not foresee: keep it, never crash the receiver
        log.exception("email: unexpected failure; the message is kept as rejected")
        return await _reject(comp, message, via, f"internal error while reading: {type(exc).__name__}: {exc}"[:2000])


@dataclass(frozen=True, slots=True)
class _Via:
    """How an email came in: the SMTP envelope and peer (what SPF checks), and what is kept with a
    rejected one so an admin can replay it the same way."""

    source: str
    inbox_id: uuid.UUID | None = None
    mail_from: str | None = None
    rcpt_to: tuple[str, ...] = ()
    origin: str | None = None  # the sender the rejected-input limits count against (smtp:<peer ip>)
    peer_ip: str | None = None
    helo: str | None = None
    trusted_authserv_ids: tuple[str, ...] = ()

    def meta(self) -> dict[str, Any]:
        return {
            "inbox_id": str(self.inbox_id) if self.inbox_id else None,
            "envelope_from": self.mail_from,
            "envelope_to": list(self.rcpt_to[:50]),
            "peer_ip": self.peer_ip,
            "helo": self.helo,
        }


async def _receive(comp: EmailComponents, raw: RawMessage, via: _Via) -> Outcome:
    parsed = await _parse(comp, raw)
    try:
        return await _receive_parsed(comp, raw, parsed, via)
    finally:
        for part in parsed.attachments:
            if part.spooled is not None:
                part.spooled.close()


async def _receive_parsed(comp: EmailComponents, raw: RawMessage, parsed: ParsedEmail, via: _Via) -> Outcome:
    inbox_id, source, envelope_to = via.inbox_id, via.source, via.rcpt_to
    external_id = external_id_of(parsed)
    known = await _existing(comp.db, external_id)
    if known is not None:
        return Outcome("duplicate", Kind.message, "already received", external_id, *known)

    raw_key = raw_key_of(parsed)
    await comp.store.put_file(raw_key, raw.file, "message/rfc822")

    settings = comp.settings
    inbox_addresses = await comp.inbox_addresses()
    own = set(inbox_addresses)
    if settings.mail_from:
        own.add(_address_of(parsed_address(settings.mail_from)))
    verdict = classify(
        parsed, mail_domain=settings.mail_domain, own_addresses=frozenset(own), envelope_from=via.mail_from
    )
    if verdict.kind is not Kind.message:
        return await _ignore(comp, raw, via, parsed, verdict.kind, verdict.reason, raw_key)

    if not parsed.from_address:
        return await _reject(comp, raw, via, "no sender address (From)", raw_key)
    try:
        sender_address = normalise_email(parsed.from_address, field="from")
    except Invalid as exc:
        return await _reject(comp, raw, via, f"the From address is not valid: {exc.detail}", raw_key)

    if inbox_id is None:
        for rcpt in (*envelope_to, *parsed.to, *parsed.cc):
            inbox_id = inbox_addresses.get(_address_of(rcpt))
            if inbox_id is not None:
                break

    reply_thread = mailthread.conversation_from_addresses([*envelope_to, *parsed.to, *parsed.cc], settings)
    thread = reply_thread
    if thread is None and (parsed.in_reply_to or parsed.references):
        async with comp.db.engine.connect() as conn:
            thread = await mailthread.conversation_from_headers(conn, parsed.in_reply_to, parsed.references)

    full_text = parsed.text
    shown = parsed.shown_text
    flags = [f"defect:{d}" for d in parsed.defects[:20]]
    if shown != full_text:
        flags.append("quoted_trimmed")
    if len(parsed.attachments) > MAX_ATTACHMENTS:
        flags.append(f"attachments_truncated:{len(parsed.attachments)}")
    text = _fit(shown, MAX_TEXT_BYTES - 64)
    meta: dict[str, Any] = {
        "message_id": parsed.message_id,
        "in_reply_to": parsed.in_reply_to,
        "references": parsed.references,
        "from": sender_address,
        "to": parsed.to,
        "cc": parsed.cc,
        "reply_to": parsed.reply_to,
        "date": parsed.date.isoformat() if parsed.date else None,
        "raw_key": raw_key,
        "full_text": _fit(full_text, MAX_FULL_TEXT),
        "flags": flags,
        "source": source,
    }
    item = InboundMessage(
        identity_kind=IdentityKind.email,
        identity_value=sender_address,
        channel=Channel.email,
        external_id=external_id,
        text=text,
        name=parsed.from_name,
        inbox_id=inbox_id,
        html=None,
        subject=parsed.subject or None,
        conversation_id=thread,
        meta=meta,
        allow_empty=True,
    )
    try:  # refused input is refused before anything is created for it
        item.prepared()
    except Invalid as exc:
        return await _reject(comp, raw, via, _invalid_reason(exc), raw_key, sender=sender_address)

    auth = await _authenticate(comp, raw, parsed, via)
    placement = await sender.place(
        comp.db,
        sender_address,
        parsed.from_name,
        auth,
        reply_conversation_id=reply_thread,
        message_id=parsed.message_id,
    )
    meta["auth"] = {**auth.as_meta(), "sender": placement.as_meta()}

    attachments, images = await _store_attachments(comp, parsed)
    html = parsed.html_with(images)
    if html is not None and len(html.encode("utf-8")) > MAX_HTML_BYTES:
        html = None
        flags.append("html_too_large")
    # No body: the message is its attachments (or its subject) alone; the desk says so in the
    # agent's language, nothing is made up here.
    item = dataclasses.replace(
        item,
        html=html,
        attachment_ids=tuple(a.id for a in attachments),
        customer_id=placement.customer_id,
    )
    try:
        result = await comp.ingest.submit(item)
    except Invalid as exc:
        await _drop_attachments(comp, attachments)
        return await _reject(comp, raw, via, _invalid_reason(exc), raw_key, sender=sender_address)
    except Exception:
        await _drop_attachments(comp, attachments)
        raise
    if not result.created:  # stored concurrently by another delivery of the same email
        await _drop_attachments(comp, attachments)
        return Outcome(
            "duplicate", Kind.message, "already received", external_id,
            result.message_id, result.conversation_id, result.customer_id, raw_key,
        )  # fmt: skip
    return Outcome(
        "accepted",
        Kind.message,
        "",
        external_id,
        result.message_id,
        result.conversation_id,
        result.customer_id,
        raw_key,
        attachment_ids=tuple(a.id for a in attachments),
    )


def _invalid_reason(exc: Invalid) -> str:
    errors = exc.extra.get("errors") or [{}]
    where = f" ({errors[0].get('field')})" if errors[0].get("field") else ""
    return f"not accepted{where}: {exc.detail}"


async def _authenticate(comp: EmailComponents, raw: RawMessage, parsed: ParsedEmail, via: _Via) -> AuthVerdict:
    try:
        return await comp.auth.check(
            raw.file,
            parsed.from_address,
            peer_ip=via.peer_ip,
            helo=via.helo,
            mail_from=via.mail_from,
            trusted_authserv_ids=via.trusted_authserv_ids,
        )
    except Exception as exc:  # check() does not raise; never lose a message to it
        log.exception("email: the sender check failed")
        return unchecked(f"check failed: {type(exc).__name__}")


def parsed_address(value: str) -> str:
    from email.utils import parseaddr

    return parseaddr(value)[1] or value


async def _parse(comp: EmailComponents, raw: RawMessage) -> ParsedEmail:
    # Large messages are parsed off the event loop so the receiver keeps answering.
    if raw.size > 256 * 1024:
        return await asyncio.to_thread(parse_message, raw, spool_dir=comp.spool_dir)
    return parse_message(raw)


def _fit(text: str, limit: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[: limit - 40].decode("utf-8", "ignore") + "\n\n[… cut; the whole message is kept]"


async def _existing(db: Database, external_id: str) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID] | None:
    m = Message.__table__.c
    async with db.engine.connect() as conn:
        row = (
            await conn.execute(
                select(m.id, m.conversation_id, m.customer_id).where(
                    m.channel == Channel.email.value, m.external_id == external_id
                )
            )
        ).first()
    return None if row is None else (row[0], row[1], row[2])


async def _store_attachments(comp: EmailComponents, parsed: ParsedEmail) -> tuple[list[Attachment], dict[str, str]]:
    from frontdesk.conversations.service import safe_filename

    rows: list[Attachment] = []
    images: dict[str, str] = {}
    now = clock.now()
    for part in parsed.attachments[:MAX_ATTACHMENTS]:
        attachment_id = new_id()
        key = new_key(attachment_id)
        content_type = _media_type(part.content_type)
        if part.spooled is not None:
            await comp.store.put_file(key, part.spooled.file, content_type)
        else:
            await comp.store.put(key, part.data, content_type)
        rows.append(
            Attachment(
                id=attachment_id,
                message_id=None,
                filename=safe_filename(part.filename),
                content_type=content_type,
                size=part.size,
                sha256=part.sha256,
                storage_key=key,
                created_at=now,
            )
        )
        if part.content_id:
            images[part.content_id] = f"/api/v1/attachments/{attachment_id}"
    if rows:
        try:
            async with comp.db.transaction() as s:
                s.add_all(rows)
        except BaseException:
            await _delete_objects(comp, [r.storage_key for r in rows])
            raise
    return rows, images


def _media_type(value: str) -> str:
    value = (value or "").split(";", 1)[0].strip().lower()
    if "/" not in value or len(value) > 200 or not all(c.isalnum() or c in "/.+-_" for c in value):
        return "application/octet-stream"
    return value


async def _delete_objects(comp: EmailComponents, keys: list[str]) -> None:
    for key in keys:
        try:
            await comp.store.delete(key)
        except Exception:
            log.warning("email: could not delete orphan attachment object %s", key)


async def _drop_attachments(comp: EmailComponents, rows: list[Attachment]) -> None:
    """Remove attachments stored for a message that was not written (best effort)."""
    if not rows:
        return
    try:
        a = Attachment.__table__.c
        async with comp.db.transaction() as s:
            await s.execute(delete(Attachment).where(a.id.in_([r.id for r in rows]), a.message_id.is_(None)))
    except Exception:
        log.warning("email: could not delete %d orphan attachment rows", len(rows))
        return
    await _delete_objects(comp, [r.storage_key for r in rows])


async def _keep(
    s: Any, comp: EmailComponents, raw: RawMessage, via: _Via, reason: str, raw_key: str | None, sender: str | None
) -> uuid.UUID | None:
    """Keep the email through the one rejected-input keeper (``frontdesk.rejected``), in ``s``: its
    first bytes (the keeper cuts them to its limit), the whole message stays at ``raw_key``."""
    from frontdesk.rejected.service import Limits, keep

    body = raw.head(Limits.of(comp.settings).max_body + 1)
    if raw.size > len(body):
        reason = f"{reason} (the whole {raw.size}-byte message is at raw_key)"
    row = await keep(
        s, source=via.source, reason=reason, body=body, content_type="message/rfc822", origin=via.origin,
        meta=via.meta(), storage_key=raw_key, identity=("email", sender) if sender else None, settings=comp.settings,
    )  # fmt: skip
    return row.id if row is not None else None


async def _reject(
    comp: EmailComponents,
    raw: RawMessage,
    via: _Via,
    reason: str,
    raw_key: str | None = None,
    sender: str | None = None,
) -> Outcome:
    """Keep a message we cannot accept, raw, flagged with ``reason``."""
    try:
        note = f"rejected: {reason} (raw_key={raw_key or '-'}; sha256={raw.sha256})"
        async with comp.db.transaction() as s:
            rejected_id = await _keep(s, comp, raw, via, note, raw_key, sender)
    except _TRANSIENT as exc:
        raise Deferred(f"could not keep a rejected email: {exc}") from exc
    log.info("email: rejected a message from %s: %s", via.source, reason)
    return Outcome("rejected", None, reason, raw_key=raw_key, rejected_id=rejected_id)


async def _ignore(
    comp: EmailComponents, raw: RawMessage, via: _Via, parsed: ParsedEmail, kind: Kind, reason: str, raw_key: str
) -> Outcome:
    """Auto-replies, bounces and loops: kept for inspection, never a conversation or a reply."""
    marked: list[str] = []
    note = f"ignored {kind.value}: {reason} (raw_key={raw_key}; message_id={parsed.message_id or '-'})"
    async with comp.db.transaction() as s:
        if kind is Kind.bounce:
            marked = await _apply_bounce(s, parsed)
            if marked:
                note += f"; undeliverable: {', '.join(marked)[:1000]}"
        rejected_id = await _keep(s, comp, raw, via, note, raw_key, parsed.from_address or None)
    log.info("email: %s from %s not opened as a conversation (%s)", kind.value, via.source, reason)
    return Outcome("ignored", kind, reason, external_id_of(parsed), raw_key=raw_key, rejected_id=rejected_id)


async def _apply_bounce(session: Any, parsed: ParsedEmail) -> list[str]:
    """Mark the failed recipients' email identities undeliverable, and the returned message failed."""
    addresses: list[str] = []
    for addr in parsed.failed_recipients:
        try:
            addresses.append(normalise_email(addr))
        except Invalid:
            continue
    await customers.mark_identities_undeliverable(session, IdentityKind.email.value, addresses)
    if parsed.bounced_message_ids:
        ids = [x for mid in parsed.bounced_message_ids[:20] for x in (mid, f"<{mid}>")]
        detail = "bounced" + (f": {parsed.bounce_diagnostic}" if parsed.bounce_diagnostic else "")
        await delivery.mark_bounced(session, Channel.email.value, ids, detail)
    return addresses


__all__ = ["Deferred", "EmailComponents", "Outcome", "components_of", "external_id_of", "receive_raw"]
