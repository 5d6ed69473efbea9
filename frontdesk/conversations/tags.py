"""Conversation tags: the normal form of a tag and inserting them (idempotent)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk import clock
from frontdesk.errors import Invalid
from frontdesk.models import (
    ConversationTag,
)

# -- tags ----------------------------------------------------------------------------------------

_TAG_OK = re.compile(r"^[a-z0-9_-]{1,64}$")


def normalise_tag(value: str, field: str = "tag") -> str:
    """``"  Refund Request "`` → ``"refund-request"``; anything outside ``[a-z0-9_-]`` is refused (422)."""
    tag = re.sub(r"\s+", "-", value.strip().lower())
    if not _TAG_OK.match(tag):
        raise Invalid(
            f"tag {value[:80]!r} must be 1-64 characters of a-z, 0-9, '_' or '-' (after lower-casing)", field=field
        )
    return tag


async def _insert_tags(session: AsyncSession, conversation_id: uuid.UUID, tags: Iterable[str]) -> None:
    rows = [{"conversation_id": conversation_id, "tag": t, "created_at": clock.now()} for t in tags]
    if not rows:
        return
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    await session.execute(insert(ConversationTag).values(rows).on_conflict_do_nothing())
