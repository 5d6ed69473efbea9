"""What a visitor may upload (images and PDF whose bytes look like it), and which files they may read."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.errors import NotFound
from frontdesk.models import Attachment, Message, WebchatUpload
from frontdesk.models.enums import Direction

ALLOWED_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf")
_MAGIC: dict[str, tuple[bytes, ...]] = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
    "application/pdf": (b"%PDF-",),
}


def check_upload(content_type: str, data: bytes) -> None:
    """Only images and PDF whose bytes look like what they claim (415 otherwise)."""
    from frontdesk.conversations.service import UnsupportedMediaType

    if content_type not in ALLOWED_TYPES:
        raise UnsupportedMediaType(f"Files of type {content_type} are not accepted here; send images or PDF.")
    if not any(data.startswith(m) for m in _MAGIC[content_type]) or (
        content_type == "image/webp" and data[8:12] != b"WEBP"
    ):
        raise UnsupportedMediaType(f"The file's content is not {content_type}.")


async def uploads_owned(session: AsyncSession, visitor_id: uuid.UUID, attachment_ids: Sequence[uuid.UUID]) -> bool:
    """Whether every id is an upload of this visitor (so nobody attaches another's file)."""
    if not attachment_ids:
        return True
    ids = set(attachment_ids)
    owned = set(
        await session.scalars(
            select(WebchatUpload.attachment_id).where(
                WebchatUpload.attachment_id.in_(ids), WebchatUpload.visitor_id == visitor_id
            )
        )
    )
    return owned == ids


async def visible_attachment(
    session: AsyncSession, customer_id: uuid.UUID, visitor_id: uuid.UUID, attachment_id: uuid.UUID
) -> Attachment:
    """An attachment the visitor may download: on a message of their customer's conversations, or their own upload."""
    attachment = await session.get(Attachment, attachment_id)
    if attachment is not None:
        if attachment.message_id is not None:
            message = await session.get(Message, attachment.message_id)
            if message is not None and message.customer_id == customer_id and message.direction != Direction.note.value:
                return attachment
        elif await uploads_owned(session, visitor_id, [attachment_id]):
            return attachment
    raise NotFound(f"No attachment {attachment_id} in your conversations.")
