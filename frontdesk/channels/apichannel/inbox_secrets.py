"""An API inbox's two secrets: ``inbound_secret`` (signs requests to Frontdesk) and ``webhook_secret``
(signs outbound deliveries to the integrator), rotated by an admin (``POST /inboxes/{id}/secrets``)."""

from __future__ import annotations

import secrets
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.audit.service import Actor, record
from frontdesk.auth import revocation
from frontdesk.db import get_or_404
from frontdesk.errors import Invalid
from frontdesk.models import Inbox
from frontdesk.models.enums import Channel

SECRET_KEYS = ("inbound_secret", "webhook_secret")


def new_secret() -> str:
    return secrets.token_urlsafe(32)


# -- secrets ------------------------------------------------------------------------------------


async def rotate_secrets(
    session: AsyncSession, actor: Actor | None, inbox_id: uuid.UUID, which: list[str]
) -> dict[str, str]:
    """Replace the named secrets of an API inbox; the new values (shown to the caller once)."""
    inbox = await get_or_404(session, Inbox, inbox_id, "inbox")
    if inbox.channel != Channel.api.value:
        raise Invalid(f"inbox {inbox_id} is a {inbox.channel} inbox; only API inboxes have these secrets", field="id")
    fresh_values = {key: new_secret() for key in dict.fromkeys(which) if key in SECRET_KEYS}
    inbox.config = {**(inbox.config or {}), **fresh_values}
    await session.flush()
    await revocation.record(session, revocation.INBOX_SIGNING_CHANGED)  # every process drops the old secret at once
    await record(session, actor, "inbox.secrets_rotated", "inbox", inbox.id, {"secrets": sorted(fresh_values)})
    return fresh_values
