"""Email threading: per-conversation reply addresses and In-Reply-To/References lookup.

A reply address is ``reply+<token>@<mail_domain>`` where the token is the conversation id (32 hex
digits) followed by a 12-character HMAC of it (``settings.secret()``), all lower case so an MTA
that folds the local part's case does not break it. Nobody can forge an address that joins a
conversation they do not know the token of; the ingest writer also joins a thread hint only when
the conversation belongs to the sender.

Message-IDs are stored in ``Message.external_id`` on channel ``email`` without the angle
brackets (inbound and outbound alike); the lookup also tries the ``<…>`` form to be lenient.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from frontdesk.models import Message
from frontdesk.models.enums import Channel
from frontdesk.settings import Settings

REPLY_PREFIX = "reply+"
_MAC_CHARS = 12
_TOKEN = re.compile(rf"^([0-9a-f]{{32}})([a-z2-7]{{{_MAC_CHARS}}})$")


def _mac(conversation_hex: str, secret: str) -> str:
    digest = hmac.new(secret.encode(), f"email-reply:{conversation_hex}".encode(), hashlib.sha256).digest()
    return base64.b32encode(digest).decode().lower()[:_MAC_CHARS]


def reply_token(conversation_id: uuid.UUID, settings: Settings) -> str:
    return conversation_id.hex + _mac(conversation_id.hex, settings.secret())


def reply_address(conversation_id: uuid.UUID, settings: Settings) -> str:
    """``reply+<token>@<mail_domain>``: replies to it join ``conversation_id``."""
    return f"{REPLY_PREFIX}{reply_token(conversation_id, settings)}@{settings.mail_domain.lower()}"


def conversation_from_address(address: str, settings: Settings) -> uuid.UUID | None:
    """The conversation a reply address names, or ``None`` (not ours, malformed, or forged)."""
    local, _, domain = (address or "").strip().strip("<>").lower().rpartition("@")
    if domain.rstrip(".") != settings.mail_domain.lower().rstrip(".") or not local.startswith(REPLY_PREFIX):
        return None
    m = _TOKEN.match(local[len(REPLY_PREFIX) :])
    if m is None:
        return None
    if not hmac.compare_digest(m.group(2), _mac(m.group(1), settings.secret())):
        return None
    return uuid.UUID(hex=m.group(1))


def conversation_from_addresses(addresses: Sequence[str], settings: Settings) -> uuid.UUID | None:
    for address in addresses:
        found = conversation_from_address(address, settings)
        if found is not None:
            return found
    return None


def _candidates(ids: Sequence[str]) -> list[str]:
    out: list[str] = []
    for i in ids:
        bare = i.strip().strip("<>")
        if bare and len(bare) <= 498:
            out.extend((bare, f"<{bare}>"))
    return out


async def conversation_from_headers(
    conn: AsyncConnection | AsyncSession, in_reply_to: Sequence[str], references: Sequence[str]
) -> uuid.UUID | None:
    """The conversation of the message this one answers: In-Reply-To first, then References
    from the newest to the oldest."""
    ordered: list[str] = []
    for i in [*in_reply_to, *reversed(references)]:
        if i not in ordered:
            ordered.append(i)
    ordered = ordered[:60]
    if not ordered:
        return None
    m = Message.__table__.c
    rows = (
        await conn.execute(
            select(m.external_id, m.conversation_id).where(
                m.channel == Channel.email.value, m.external_id.in_(_candidates(ordered))
            )
        )
    ).all()
    found = {str(r[0]).strip("<>"): r[1] for r in rows}
    for i in ordered:
        conv = found.get(i.strip().strip("<>"))
        if conv is not None:
            return conv  # type: ignore[no-any-return]
    return None


__all__ = [
    "conversation_from_address",
    "conversation_from_addresses",
    "conversation_from_headers",
    "reply_address",
    "reply_token",
]
