"""Opaque cursors for keyset pagination.

A cursor encodes the sort key of the last item a client saw; the next page starts after it.
Clients must treat it as an opaque string.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy import and_, or_

from frontdesk.clock import ensure_utc
from frontdesk.errors import Invalid

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


def encode_cursor(*values: Any) -> str:
    raw = json.dumps([str(v) for v in values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, parts: int) -> list[str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise Invalid("cursor is not one this server issued", field="cursor") from exc
    if not isinstance(values, list) or len(values) != parts or not all(isinstance(v, str) for v in values):
        raise Invalid("cursor is not one this server issued", field="cursor")
    return values


def keyset_condition(cursor: str, time_column: Any, id_column: Any, *, descending: bool = True) -> Any:
    """The WHERE clause that starts a page after ``cursor`` for an order by (time, id)."""
    time_s, id_s = decode_cursor(cursor, 2)
    try:
        at = ensure_utc(datetime.fromisoformat(time_s))
        last_id = uuid.UUID(id_s)
    except ValueError as exc:
        raise Invalid("cursor is not one this server issued", field="cursor") from exc
    if descending:
        return or_(time_column < at, and_(time_column == at, id_column < last_id))
    return or_(time_column > at, and_(time_column == at, id_column > last_id))


def cut_page(rows: list[T], limit: int, key: Callable[[T], tuple[datetime, uuid.UUID]]) -> tuple[list[T], str | None]:
    """Rows fetched with ``limit + 1`` → (the page, the cursor of the next page or ``None``)."""
    if len(rows) <= limit:
        return rows, None
    page = rows[:limit]
    at, last_id = key(page[-1])
    return page, encode_cursor(at.isoformat(), last_id)
