"""Inbox shapes. ``config`` holds channel settings; secrets in it are masked when read back."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints

from frontdesk.models.enums import Channel

MAX_CONFIG_BYTES = 16 * 1024


def _bounded_config(value: dict[str, Any]) -> dict[str, Any]:
    dumped = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if "\\u0000" in dumped:
        raise ValueError("config must not contain NUL characters")
    size = len(dumped.encode())
    if size > MAX_CONFIG_BYTES:
        raise ValueError(f"config is {size} bytes as JSON; at most {MAX_CONFIG_BYTES} are allowed")
    return value


InboxConfig = Annotated[dict[str, Any], AfterValidator(_bounded_config)]


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


InboxName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), AfterValidator(_no_nul)
]


class InboxCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: InboxName
    channel: Channel
    config: InboxConfig = {}
    is_active: bool = True


class InboxUpdate(BaseModel):
    """Send ``config`` whole; a secret sent back as ``********`` keeps its stored value."""

    model_config = ConfigDict(extra="forbid")

    name: InboxName | None = None
    config: InboxConfig | None = None
    is_active: bool | None = None


class InboxOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    channel: Channel
    config: dict[str, Any]
    public_token: str
    is_active: bool
    created_at: datetime
    updated_at: datetime
