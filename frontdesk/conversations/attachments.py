"""Attachments: safe names, allowed media types, storing the bytes and the row (a reply claims it by id)."""

from __future__ import annotations

import hashlib
import mimetypes
import re
import unicodedata
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk import clock
from frontdesk.conversations.schemas import (
    AttachmentOut,
)
from frontdesk.db import get_or_404
from frontdesk.errors import Invalid, ProblemError
from frontdesk.ids import new_id
from frontdesk.models import (
    Attachment,
)
from frontdesk.storage import AttachmentStore, new_key

ATTACHMENT_URL = "/api/v1/attachments/{id}"


class PayloadTooLarge(ProblemError):
    status, title, slug = 413, "Payload too large", "too-large"


class UnsupportedMediaType(ProblemError):
    status, title, slug = 415, "Unsupported media type", "unsupported-media-type"


def attachment_view(attachment: Attachment) -> AttachmentOut:
    return AttachmentOut(
        id=attachment.id,
        message_id=attachment.message_id,
        filename=attachment.filename,
        content_type=attachment.content_type,
        size=attachment.size,
        sha256=attachment.sha256,
        created_at=attachment.created_at,
        url=ATTACHMENT_URL.format(id=attachment.id),
    )


# -- attachments ---------------------------------------------------------------------------------

ALLOWED_CONTENT_TYPES = frozenset(
    {
        "image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp", "image/tiff", "image/heic",
        "image/heif", "image/avif",
        "application/pdf",
        "text/plain", "text/csv", "text/markdown", "text/calendar",
        "application/rtf", "text/rtf",
        "application/msword", "application/vnd.ms-excel", "application/vnd.ms-powerpoint",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "application/vnd.oasis.opendocument.text", "application/vnd.oasis.opendocument.spreadsheet",
        "application/vnd.oasis.opendocument.presentation",
        "application/zip", "application/x-zip-compressed",
    }
)  # fmt: skip
# SVG and HTML are deliberately absent: they can carry scripts.

_UNSAFE_FILENAME = re.compile(r"[\x00-\x1f\x7f\"\\/:*?<>|]+")


def safe_filename(name: str | None) -> str:
    """A file name with no directories, control or shell-special characters; at most 200 characters."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = unicodedata.normalize("NFC", base)
    base = _UNSAFE_FILENAME.sub("_", base).strip(" .")
    if len(base) > 200:
        stem, dot, ext = base.rpartition(".")
        base = (stem[: 200 - len(ext) - 1] + "." + ext) if dot and len(ext) <= 16 else base[:200]
    return base or "attachment"


def resolve_content_type(declared: str | None, filename: str) -> str:
    """The normalised media type; ``application/octet-stream`` is guessed from the file name. 415 if not allowed."""
    content_type = (declared or "").split(";", 1)[0].strip().lower()
    if content_type in ("", "application/octet-stream"):
        content_type = (mimetypes.guess_type(filename, strict=False)[0] or "application/octet-stream").lower()
    if content_type not in ALLOWED_CONTENT_TYPES:
        raise UnsupportedMediaType(
            f"Files of type {content_type or 'unknown'} are not accepted; send images, PDF, text, "
            "office documents or zip archives."
        )
    return content_type


async def create_attachment(
    session: AsyncSession,
    store: AttachmentStore,
    *,
    filename: str | None,
    content_type: str | None,
    data: bytes,
    max_bytes: int,
) -> Attachment:
    """Store the bytes, then the row (not yet on a message; a reply claims it by id)."""
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"Attachments are limited to {max_bytes // (1024 * 1024)} MB.")
    if not data:
        raise Invalid("the file is empty", field="file")
    name = safe_filename(filename)
    media_type = resolve_content_type(content_type, name)
    attachment_id = new_id()
    key = new_key(attachment_id)
    await store.put(key, data, media_type)
    attachment = Attachment(
        id=attachment_id,
        message_id=None,
        filename=name,
        content_type=media_type,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        storage_key=key,
        created_at=clock.now(),
    )
    session.add(attachment)
    await session.flush()
    return attachment


async def get_attachment(session: AsyncSession, attachment_id: uuid.UUID) -> Attachment:
    attachment = await get_or_404(session, Attachment, attachment_id, "attachment")
    return attachment
