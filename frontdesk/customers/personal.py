"""The one place that knows which fields hold personal data: export and erase.

A new table or column that holds something about a person must be declared here, in
:data:`DELETED` (rows removed on erase) or :data:`BLANKED` (columns overwritten on erase), and
its rows listed in :func:`export`. ``tests/integration/test_customers.py`` checks that the
customer's email appears nowhere in an export after an erase.

Erase keeps the skeleton rows (customer, conversations, messages, events) so reports still count
them: who said what is gone, that something was said on which channel and when is kept. Refused
inputs that name the customer (``rejected_inputs`` linked by id, or by one of their identities)
are deleted with their raw bodies.

Bytes outside the database — attachments and raw emails in the store — are deleted by due work
(``timers.delete_objects_later``) written in the erase's own transaction, so a process that dies
right after the commit leaves them to the next timer run instead of keeping them for ever.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, inspect, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from frontdesk import clock
from frontdesk.db import Base
from frontdesk.models import (
    Attachment,
    Consent,
    Conversation,
    ConversationTag,
    Customer,
    CustomerEvent,
    CustomerMerge,
    EmailConfirmation,
    Identity,
    MergeSuggestion,
    Message,
    RejectedInput,
)
from frontdesk.rejected import service as rejected

# Rows that only say how to reach or recognise the person: removed entirely.
DELETED: tuple[type[Base], ...] = (Identity, Consent, EmailConfirmation)

# Columns overwritten on erase, with the value they get. Everything else in those rows is kept.
BLANKED: dict[type[Base], dict[str, Any]] = {
    Customer: {"name": None, "locale": None, "time_zone": None, "attributes": {}},
    Conversation: {"subject": None},
    Message: {"text": "", "html": None, "meta": {}, "error": None},
    Attachment: {"filename": "erased"},
    CustomerEvent: {"properties": {}},
    # What matched, and the values a merge changed (kept to undo it): may name identities and attributes.
    MergeSuggestion: {"evidence": {}},
    CustomerMerge: {"restore": {}},
}

# The attachment *bytes* and raw emails live in the attachment store: :func:`erase` returns their
# keys and the caller has them deleted by due work of the same transaction (see the module doc).


def _jsonable(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def row_dict(row: Any) -> dict[str, Any]:
    """Every column of an ORM row as JSON-ready values."""
    mapper = inspect(type(row))
    return {attr.key: _jsonable(getattr(row, attr.key)) for attr in mapper.column_attrs}


async def family_ids(session: AsyncSession, customer_id: uuid.UUID) -> list[uuid.UUID]:
    """``customer_id`` and every record merged into it, directly or through another merged one."""
    ids = [customer_id]
    frontier = [customer_id]
    while frontier and len(ids) < 10_000:
        found = list((await session.scalars(select(Customer.id).where(Customer.merged_into_id.in_(frontier)))).all())
        frontier = [i for i in found if i not in ids]
        ids.extend(frontier)
    return ids


def _of(model: type[Base], ids: Sequence[uuid.UUID]) -> ColumnElement[bool]:
    return model.customer_id.in_(ids)  # type: ignore[attr-defined,no-any-return]


async def export(session: AsyncSession, customer: Customer) -> dict[str, Any]:
    """Everything we hold about ``customer`` and any record merged into them."""
    ids = await family_ids(session, customer.id)
    merged = (await session.scalars(select(Customer).where(Customer.id.in_(ids[1:])).order_by(Customer.id))).all()
    identities = (await session.scalars(select(Identity).where(_of(Identity, ids)).order_by(Identity.id))).all()
    consents = (await session.scalars(select(Consent).where(_of(Consent, ids)).order_by(Consent.id))).all()
    confirmations = (
        await session.scalars(
            select(EmailConfirmation).where(_of(EmailConfirmation, ids)).order_by(EmailConfirmation.created_at)
        )
    ).all()
    events = (
        await session.scalars(
            select(CustomerEvent).where(_of(CustomerEvent, ids)).order_by(CustomerEvent.occurred_at, CustomerEvent.id)
        )
    ).all()
    conversations = (
        await session.scalars(select(Conversation).where(_of(Conversation, ids)).order_by(Conversation.id))
    ).all()
    conv_ids = [c.id for c in conversations]
    messages = (
        await session.scalars(
            select(Message).where(Message.conversation_id.in_(conv_ids)).order_by(Message.created_at, Message.id)
        )
    ).all()
    msg_ids = [m.id for m in messages]
    attachments = (
        await session.scalars(select(Attachment).where(Attachment.message_id.in_(msg_ids)).order_by(Attachment.id))
    ).all()
    tags = (
        await session.execute(
            select(ConversationTag.conversation_id, ConversationTag.tag).where(
                ConversationTag.conversation_id.in_(conv_ids)
            )
        )
    ).all()

    merges = (
        await session.scalars(
            select(CustomerMerge)
            .where(or_(CustomerMerge.survivor_id.in_(ids), CustomerMerge.merged_id.in_(ids)))
            .order_by(CustomerMerge.created_at, CustomerMerge.id)
        )
    ).all()
    suggestions = (
        await session.scalars(
            select(MergeSuggestion)
            .where(or_(MergeSuggestion.customer_a_id.in_(ids), MergeSuggestion.customer_b_id.in_(ids)))
            .order_by(MergeSuggestion.created_at, MergeSuggestion.id)
        )
    ).all()

    identities_named = [(i.kind, i.value) for i in identities]
    refused = (
        await session.scalars(
            select(RejectedInput)
            .where(rejected.naming(ids, identities_named))
            .order_by(RejectedInput.received_at, RejectedInput.id)
        )
    ).all()

    tags_by_conv: dict[uuid.UUID, list[str]] = {}
    for conv_id, tag in tags:
        tags_by_conv.setdefault(conv_id, []).append(tag)
    atts_by_msg: dict[uuid.UUID, list[dict[str, Any]]] = {}
    for a in attachments:
        atts_by_msg.setdefault(a.message_id, []).append(row_dict(a))  # type: ignore[arg-type]
    msgs_by_conv: dict[uuid.UUID, list[dict[str, Any]]] = {}
    for m in messages:
        msgs_by_conv.setdefault(m.conversation_id, []).append(row_dict(m) | {"attachments": atts_by_msg.get(m.id, [])})

    return {
        "exported_at": clock.now(),
        "customer": row_dict(customer),
        "merged_records": [row_dict(c) for c in merged],
        "identities": [row_dict(i) for i in identities],
        "consents": [row_dict(c) for c in consents],
        # Links e-mailed to prove an address (the token's hash only).
        "email_confirmations": [row_dict(c) for c in confirmations],
        "events": [row_dict(e) for e in events],
        "conversations": [
            row_dict(c) | {"tags": sorted(tags_by_conv.get(c.id, [])), "messages": msgs_by_conv.get(c.id, [])}
            for c in conversations
        ],
        "merges": [row_dict(m) for m in merges],
        "merge_suggestions": [row_dict(m) for m in suggestions],
        "rejected_inputs": [row_dict(r) for r in refused],
    }


async def erase(session: AsyncSession, customer: Customer) -> dict[str, Any]:
    """Remove or blank every personal field of ``customer`` and the records merged into them.

    Runs as bulk statements inside the caller's unit of work; returns counts for the audit log.
    """
    now = clock.now()
    ids = await family_ids(session, customer.id)
    counts: dict[str, int] = {}
    # Refused inputs that name them, found by their identities before those are deleted.
    found = await session.execute(select(Identity.kind, Identity.value).where(_of(Identity, ids)))
    identities = [(kind, value) for kind, value in found]
    counts["rejected_inputs_removed"], rejected_keys = await rejected.erase_for(session, ids, identities)
    for model in DELETED:
        result = await session.execute(delete(model).where(_of(model, ids)))
        counts[f"{model.__tablename__}_removed"] = result.rowcount or 0  # type: ignore[attr-defined]

    conv_ids = select(Conversation.id).where(_of(Conversation, ids)).scalar_subquery()
    msg_ids = select(Message.id).where(or_(Message.conversation_id.in_(conv_ids), _of(Message, ids))).scalar_subquery()
    where: dict[type[Base], ColumnElement[bool]] = {
        Customer: Customer.id.in_(ids),
        Conversation: _of(Conversation, ids),
        Message: or_(Message.conversation_id.in_(conv_ids), _of(Message, ids)),
        Attachment: Attachment.message_id.in_(msg_ids),
        CustomerEvent: _of(CustomerEvent, ids),
        MergeSuggestion: or_(MergeSuggestion.customer_a_id.in_(ids), MergeSuggestion.customer_b_id.in_(ids)),
        CustomerMerge: or_(CustomerMerge.survivor_id.in_(ids), CustomerMerge.merged_id.in_(ids)),
    }
    storage_keys = list((await session.scalars(select(Attachment.storage_key).where(where[Attachment]))).all())
    # Raw copies of their emails (``meta.raw_key``), before the meta is blanked.
    raw_key = Message.meta["raw_key"].as_string()
    storage_keys += [
        k for k in await session.scalars(select(raw_key).where(where[Message], raw_key.is_not(None))) if k
    ] + rejected_keys
    for model, values in BLANKED.items():
        extra = {"erased_at": now, "updated_at": now} if model is Customer else {}
        result = await session.execute(
            update(model).where(where[model]).values(**values, **extra).execution_options(synchronize_session=False)
        )
        counts[f"{model.__tablename__}_redacted"] = result.rowcount or 0  # type: ignore[attr-defined]
    await session.refresh(customer)
    return {
        "customer_id": customer.id,
        "erased_customer_ids": ids,
        "identities_removed": counts["identities_removed"],
        "consents_removed": counts["consents_removed"],
        "email_confirmations_removed": counts["email_confirmations_removed"],
        "conversations_redacted": counts["conversations_redacted"],
        "messages_redacted": counts["messages_redacted"],
        "attachments_redacted": counts["attachments_redacted"],
        "events_redacted": counts["customer_events_redacted"],
        "rejected_inputs_removed": counts["rejected_inputs_removed"],
        "erased_at": now,
        "storage_keys": sorted(set(storage_keys)),
    }
