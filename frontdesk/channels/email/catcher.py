"""The local mail catcher: where outgoing e-mail goes when no SMTP relay is configured.

A development mail catcher inside the product. :func:`keep` is called by the e-mail adapter
(``outbound.EmailAdapter``) with the message exactly as it would have handed it to a relay; the
message is marked ``caught`` (not ``sent``: no customer got it) and admins read it on the admin
page (``/admin#mail``) or through ``/api/v1/caught-mail``.

Storage: a ``caught_mails`` row per outbound message (to list, page and clear with plain
queries) and the RFC 5322 bytes in the attachment store under ``mail-catcher/<message id>.eml``
— the same store that keeps received e-mails' raw bytes and attachments, so a catcher of large
mails does not bloat the database and works on S3 as it does on the local disk. The object is
written first (its key is derived from the message id, so a resend overwrites it) and the row
second with ``ON CONFLICT DO NOTHING``: a resend after a crash keeps one copy. Deleting removes
the rows in the request's transaction and the objects after the commit; a crash in between
leaves an object no row names (harmless, like an attachment upload that was rolled back).
"""

from __future__ import annotations

import uuid
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk import timers
from frontdesk.audit.service import Actor, record
from frontdesk.channels.base import OutboundMessage, TransientError
from frontdesk.db import Database, get_or_404
from frontdesk.errors import Invalid
from frontdesk.ids import new_id
from frontdesk.models import CaughtMail
from frontdesk.pagination import decode_cursor, encode_cursor
from frontdesk.storage import AttachmentStore, StorageError

PREFIX = "mail-catcher"
MAX_BODY_CHARS = 1_000_000  # text or HTML shown on the admin page; the .eml has everything
MAX_HEADER_CHARS = 2000
MAX_KEPT = 1000  # the newest caught mails kept; older ones go (a development outbox, not an archive)


def storage_key(message_id: uuid.UUID) -> str:
    return f"{PREFIX}/{message_id}.eml"


def _header(msg: EmailMessage, name: str, limit: int) -> str:
    value = msg.get(name)
    return " ".join(str(value).split())[:limit] if value is not None else ""


async def keep(db: Database, store: AttachmentStore, message: OutboundMessage, msg: EmailMessage, data: bytes) -> None:
    """Keep ``data`` (the encoded ``msg`` of ``message``) in the catcher; idempotent per message."""
    key = storage_key(message.message_id)
    try:
        await store.put(key, data, "message/rfc822")
    except StorageError as exc:
        raise TransientError(f"attachment store unreachable: {exc}") from exc
    insert_fn: Any = pg_insert if db.dialect == "postgresql" else sqlite_insert
    async with db.transaction() as session:
        await session.execute(
            insert_fn(CaughtMail)
            .values(
                id=new_id(),
                message_id=message.message_id,
                conversation_id=message.conversation_id,
                mail_from=_header(msg, "From", 500),
                mail_to=_header(msg, "To", 500),
                subject=_header(msg, "Subject", 1000),
                header_message_id=_header(msg, "Message-ID", 500),
                size=len(data),
                storage_key=key,
            )
            .on_conflict_do_nothing(index_elements=["message_id"])
        )
        await _trim(session, MAX_KEPT)


async def keep_system(session: AsyncSession, store: AttachmentStore, msg: EmailMessage, data: bytes) -> None:
    """Keep a system mail (no conversation: a confirmation link…) in the catcher, in ``session``'s
    unit of work. The file goes first; a rolled-back unit leaves only an unlisted file behind."""
    mail_id = new_id()
    key = storage_key(mail_id)
    try:
        await store.put(key, data, "message/rfc822")
    except StorageError as exc:
        raise TransientError(f"attachment store unreachable: {exc}") from exc
    session.add(
        CaughtMail(
            id=mail_id,
            message_id=None,
            conversation_id=None,
            mail_from=_header(msg, "From", 500),
            mail_to=_header(msg, "To", 500),
            subject=_header(msg, "Subject", 1000),
            header_message_id=_header(msg, "Message-ID", 500),
            size=len(data),
            storage_key=key,
        )
    )
    await session.flush()
    await _trim(session, MAX_KEPT)


async def _trim(session: AsyncSession, max_kept: int) -> None:
    """Keep the newest ``max_kept`` caught mails: a catcher left running does not fill the store."""
    total = await session.scalar(select(func.count()).select_from(CaughtMail)) or 0
    if total <= max_kept:
        return
    oldest = (
        await session.execute(
            select(CaughtMail.id, CaughtMail.storage_key)
            .order_by(CaughtMail.created_at, CaughtMail.id)
            .limit(total - max_kept)
        )
    ).all()
    await session.execute(delete(CaughtMail).where(CaughtMail.id.in_([row[0] for row in oldest])))
    await timers.delete_objects_later(session, [row[1] for row in oldest])


# -- reading (admins) ------------------------------------------------------------------------------


async def list_mail(
    session: AsyncSession, *, limit: int = 50, cursor: str | None = None
) -> tuple[list[CaughtMail], str | None]:
    """Newest first (keyset on the time-ordered ids)."""
    stmt = select(CaughtMail).order_by(CaughtMail.id.desc()).limit(limit + 1)
    if cursor:
        (raw,) = decode_cursor(cursor, 1)
        try:
            stmt = stmt.where(CaughtMail.id < uuid.UUID(raw))
        except ValueError:
            raise Invalid("cursor is not one this server issued", field="cursor") from None
    rows = list((await session.scalars(stmt)).all())
    if len(rows) <= limit:
        return rows, None
    return rows[:limit], encode_cursor(rows[limit - 1].id)


async def get_mail(session: AsyncSession, mail_id: uuid.UUID) -> CaughtMail:
    mail: CaughtMail = await get_or_404(session, CaughtMail, mail_id, "caught mail")
    return mail


async def raw_of(store: AttachmentStore, mail: CaughtMail) -> bytes:
    """The .eml bytes (``ObjectMissing``/``StorageError`` from the store pass through)."""
    return await store.get(mail.storage_key)


def _text(part: Any) -> str | None:
    if part is None:
        return None
    try:
        content = part.get_content()
    except (LookupError, ValueError, AssertionError):
        payload = part.get_payload(decode=True) or b""
        content = payload.decode("utf-8", "replace")
    return str(content).replace("\r\n", "\n")[:MAX_BODY_CHARS]  # the wire's CRLF, shown as lines


def read(data: bytes) -> dict[str, Any]:
    """Headers (in order), the text and HTML bodies and the attachments of an .eml."""
    msg = message_from_bytes(data, policy=default_policy)
    assert isinstance(msg, EmailMessage)
    headers = [[name, " ".join(str(value).split())[:MAX_HEADER_CHARS]] for name, value in msg.items()]
    attachments = []
    for part in msg.iter_attachments():
        payload = part.get_payload(decode=True)
        attachments.append(
            {
                "filename": part.get_filename() or "",
                "content_type": part.get_content_type(),
                "size": len(payload) if isinstance(payload, bytes) else 0,
            }
        )
    return {
        "headers": headers,
        "text": _text(msg.get_body(preferencelist=("plain",))),
        "html": _text(msg.get_body(preferencelist=("html",))),
        "attachments": attachments,
    }


# -- deleting (admins) -----------------------------------------------------------------------------


async def delete_mail(session: AsyncSession, actor: Actor | None, mail_id: uuid.UUID) -> None:
    mail = await get_mail(session, mail_id)
    key = mail.storage_key
    await session.delete(mail)
    await session.flush()
    await record(session, actor, "mail_catcher.deleted", "caught_mail", mail_id, {"to": mail.mail_to})
    await timers.delete_objects_later(session, [key])  # the file goes by due work: a crash cannot leave it


async def clear(session: AsyncSession, actor: Actor | None) -> int:
    """Delete every caught mail; how many there were."""
    keys = list((await session.scalars(select(CaughtMail.storage_key))).all())
    if not keys:
        return 0
    await session.execute(delete(CaughtMail))
    await session.flush()
    await record(session, actor, "mail_catcher.cleared", "caught_mail", None, {"deleted": len(keys)})
    await timers.delete_objects_later(session, keys)
    return len(keys)
