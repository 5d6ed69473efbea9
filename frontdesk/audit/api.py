"""Read the audit log (supervisors and admins)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from frontdesk.audit import service
from frontdesk.audit.schemas import AuditEntryOut
from frontdesk.auth.deps import SupervisorDep
from frontdesk.deps import SessionDep
from frontdesk.pagination import Page, decode_cursor, encode_cursor

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("", response_model=Page[AuditEntryOut], summary="Audit log, newest first")
async def list_audit(
    session: SessionDep,
    _: SupervisorDep,
    entity_type: Annotated[str | None, Query(max_length=50)] = None,
    entity_id: Annotated[str | None, Query(max_length=64)] = None,
    actor_id: uuid.UUID | None = None,
    action: Annotated[str | None, Query(max_length=100)] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[AuditEntryOut]:
    before = None
    if cursor:
        try:
            before = uuid.UUID(decode_cursor(cursor, 1)[0])
        except ValueError:
            from frontdesk.errors import Invalid

            raise Invalid("cursor is not one this server issued", field="cursor") from None
    rows = await service.list_entries(
        session,
        entity_type=entity_type,
        entity_id=entity_id,
        actor_id=actor_id,
        action=action,
        before=before,
        limit=limit + 1,
    )
    items = [AuditEntryOut.model_validate(r) for r in rows[:limit]]
    next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return Page[AuditEntryOut](items=items, next_cursor=next_cursor)
