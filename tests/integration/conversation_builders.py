"""Test data for the conversation tests: customers, queues, teams, inboxes, conversations."""

from __future__ import annotations

import uuid
from typing import Any

from frontdesk.db import Database
from frontdesk.models import Conversation, Customer, Inbox, Queue, Team, User
from tests.builders import make_token, make_user


async def make_customer(db: Database, name: str = "Ada Lovelace") -> Customer:
    async with db.transaction() as s:
        customer = Customer(name=name)
        s.add(customer)
    return customer


async def make_queue(db: Database, name: str | None = None) -> Queue:
    async with db.transaction() as s:
        queue = Queue(name=name or f"queue-{uuid.uuid4().hex[:6]}")
        s.add(queue)
    return queue


async def make_team(db: Database, name: str | None = None) -> Team:
    async with db.transaction() as s:
        team = Team(name=name or f"team-{uuid.uuid4().hex[:6]}")
        s.add(team)
    return team


async def make_inbox(db: Database, channel: str = "email") -> Inbox:
    async with db.transaction() as s:
        inbox = Inbox(name=f"inbox-{uuid.uuid4().hex[:6]}", channel=channel, public_token=uuid.uuid4().hex)
        s.add(inbox)
    return inbox


async def make_conversation(db: Database, customer: Customer, **fields: Any) -> Conversation:
    fields.setdefault("channel", "email")
    async with db.transaction() as s:
        conversation = Conversation(customer_id=customer.id, **fields)
        s.add(conversation)
    return conversation


async def agent(app: Any, role: str = "agent") -> tuple[User, dict[str, str]]:
    """A user and the headers that act as them."""
    user = await make_user(app.state.db, role=role)
    return user, {"Authorization": f"Bearer {await make_token(app.state.db, user)}"}
