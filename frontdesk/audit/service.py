"""Write audit entries. Call from services in the same unit of work as the change they describe."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.events import Actor as Actor  # the one Actor type (user, token or system)
from frontdesk.models import AuditEntry


@dataclass(frozen=True)
class SystemActor:
    """Something other than a user or token acting on the system's behalf, named in the audit log
    (``actor_kind``, at most 16 characters): e.g. ``email_link`` for a confirmed e-mail link."""

    actor_kind: str
    user_id: uuid.UUID | None = None


async def record(
    session: AsyncSession,
    actor: Actor | None,
    action: str,
    entity_type: str,
    entity_id: uuid.UUID | str | None = None,
    data: dict[str, Any] | None = None,
    ip: str | None = None,
) -> None:
    """Add one audit row; ``actor`` ``None`` means the system did it."""
    session.add(
        AuditEntry(
            actor_id=actor.user_id if actor else None,
            actor_kind=actor.actor_kind if actor else "system",
            action=action,
            entity_type=entity_type,
            entity_id=str(entity_id) if entity_id is not None else None,
            data=data or {},
            ip=ip,
        )
    )


async def list_entries(
    session: AsyncSession,
    *,
    entity_type: str | None = None,
    entity_id: str | None = None,
    actor_id: uuid.UUID | None = None,
    action: str | None = None,
    before: uuid.UUID | None = None,
    limit: int = 50,
) -> list[AuditEntry]:
    """Newest first; ``before`` is the id of the last entry of the previous page (ids are time-ordered)."""
    stmt = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if entity_type:
        stmt = stmt.where(AuditEntry.entity_type == entity_type)
    if entity_id:
        stmt = stmt.where(AuditEntry.entity_id == entity_id)
    if actor_id:
        stmt = stmt.where(AuditEntry.actor_id == actor_id)
    if action:
        stmt = stmt.where(AuditEntry.action == action)
    if before:
        stmt = stmt.where(AuditEntry.id < before)
    return list((await session.scalars(stmt)).all())
