"""Audit log entries as the API shows them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class AuditEntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    actor_id: uuid.UUID | None
    actor_kind: str
    action: str
    entity_type: str
    entity_id: str | None
    data: dict[str, Any]
    ip: str | None
    created_at: datetime
