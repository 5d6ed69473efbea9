"""Opaque cursors for keyset pagination.

A cursor encodes the sort key of the last item a client saw; the next page starts after it.
Clients must treat it as an opaque string.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

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
