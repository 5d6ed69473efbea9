"""Inboxes and conversations, written straight to the database."""

from __future__ import annotations

import uuid
from typing import Any

from frontdesk.db import Database
from frontdesk.models import Conversation, Customer, Inbox


async def make_inbox(db: Database, channel: str = "email", **fields: Any) -> Inbox:
    fields.setdefault("name", f"inbox-{uuid.uuid4().hex[:6]}")
    fields.setdefault("public_token", uuid.uuid4().hex)
    async with db.transaction() as s:
        inbox = Inbox(channel=channel, **fields)
        s.add(inbox)
    return inbox


async def make_conversation(db: Database, customer: Customer, **fields: Any) -> Conversation:
    fields.setdefault("channel", "email")
    async with db.transaction() as s:
        conversation = Conversation(customer_id=customer.id, **fields)
        s.add(conversation)
    return conversation
