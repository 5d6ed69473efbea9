"""Customers, written straight to the database."""

from __future__ import annotations

from typing import Any

from frontdesk.db import Database
from frontdesk.models import Customer


async def make_customer(db: Database, name: str = "Ada Lovelace", **fields: Any) -> Customer:
    async with db.transaction() as s:
        customer = Customer(name=name, **fields)
        s.add(customer)
    return customer
