"""Customers: written straight to the database, or created through the API."""

from __future__ import annotations

from typing import Any

from frontdesk.db import Database
from frontdesk.models import Customer


async def make_customer(db: Database, name: str = "Ada Lovelace", **fields: Any) -> Customer:
    async with db.transaction() as s:
        customer = Customer(name=name, **fields)
        s.add(customer)
    return customer


async def create_customer_via_api(client: Any, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    """``POST /api/v1/customers`` as ``headers``; the created customer."""
    r = await client.post("/api/v1/customers", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]
