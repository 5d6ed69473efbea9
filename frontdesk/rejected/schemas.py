"""Rejected inputs out, and the outcome of a replay."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

PREVIEW_BYTES = 1000


class RejectedOut(BaseModel):
    id: uuid.UUID
    source: str = Field(description="Which intake refused it: email.smtp, email.imap, api.inbound, api.events.")
    reason: str
    content_type: str | None
    received_at: datetime
    origin: str | None = Field(description="Who sent it: ip:…, user:…, inbox:…, smtp:… (null: internal).")
    anonymous: bool = Field(description="The sender named no real inbox and proved nothing: only an excerpt is kept.")
    size: int = Field(description="Bytes received.")
    kept: int = Field(description="Bytes kept here (fewer than size for an excerpt, a cut or a full budget).")
    complete: bool = Field(description="Every byte received can be downloaded (kept here or in the store).")
    replayable: bool
    not_replayable_because: str | None = None
    customer_id: uuid.UUID | None = Field(description="The customer the input names, where known.")
    replays: int = Field(description="How often an admin replayed it and it was refused again.")
    replayed_at: datetime | None
    preview: str = Field(description=f"The first {PREVIEW_BYTES} bytes kept, as text (invalid UTF-8 replaced).")


class ReplayOut(BaseModel):
    id: uuid.UUID
    outcome: Literal["accepted", "duplicate", "rejected", "ignored"] = Field(
        description="accepted / duplicate: stored (the rejected input is deleted); rejected / ignored: "
        "refused again, and the rejected input now holds the new reason."
    )
    reason: str | None = None
    message_id: uuid.UUID | None = None
    conversation_id: uuid.UUID | None = None
    customer_id: uuid.UUID | None = None
    event_id: uuid.UUID | None = None
