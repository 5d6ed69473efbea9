"""Customers: create, find, search, change, delete; identities, consents, export and erase.

Functions other domains call: :func:`resolve_by_identity` (the inbound path: who is this?),
:func:`find_by_identity`, :func:`get_customer`, :func:`follow_merges`. All take the caller's
session first, flush but never commit.

Merged customers (``merged_into_id`` set) are ghosts: :func:`follow_merges` leads to the
survivor, searches never list them, and writes to them are refused with a 409 naming the survivor.
"""

from __future__ import annotations

import contextlib
import logging
import re
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import case, cast, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import Text

from frontdesk import clock, timers
from frontdesk.audit.service import Actor, record
from frontdesk.bus import emit
from frontdesk.customers import personal
from frontdesk.customers.identity import check_text, guess_kind, normalise, parse_identity
from frontdesk.customers.schemas import MAX_ATTRIBUTES_BYTES, CustomerCreate, CustomerUpdate, json_size
from frontdesk.db import after_commit, contains_folded, get_or_404
from frontdesk.errors import Conflict, Invalid, NotFound
from frontdesk.events import CustomerChanged, CustomerCreated
from frontdesk.models import Consent, Conversation, Customer, CustomerEvent, Identity
from frontdesk.pagination import cut_page, keyset_condition
from frontdesk.storage import AttachmentStore, StorageError

log = logging.getLogger(__name__)

MAX_MERGE_HOPS = 20
IDENTITIES_PAGE = 50  # identities shown with a customer; the rest through list_identities
MAX_IDENTITIES = 100  # the default of the setting max_identities_per_customer
ATTRIBUTE_FILTER = re.compile(r"^(?P<key>[A-Za-z0-9_\-. ]{1,100})=(?P<value>.{0,500})$", re.DOTALL)


# -- lookups ------------------------------------------------------------------------------------


async def get_customer(session: AsyncSession, customer_id: uuid.UUID) -> Customer:
    """The customer row with this id, merged or not (``NotFound`` if there is none)."""
    customer = await get_or_404(session, Customer, customer_id, "customer")
    return customer


async def follow_merges(session: AsyncSession, customer: Customer) -> Customer:
    """The surviving record ``customer`` was merged into (itself when it was never merged)."""
    hops = 0
    while customer.merged_into_id is not None and hops < MAX_MERGE_HOPS:
        customer = await get_customer(session, customer.merged_into_id)
        hops += 1
    return customer


async def get_live_customer(session: AsyncSession, customer_id: uuid.UUID) -> Customer:
    """Like :func:`get_customer` but refuses merged records with a 409 naming the survivor."""
    customer = await get_customer(session, customer_id)
    if customer.merged_into_id is not None:
        survivor = await follow_merges(session, customer)
        raise Conflict(
            f"Customer {customer_id} was merged into {survivor.id}; make the change there.",
            extra={"survivor_id": str(survivor.id)},
        )
    return customer


async def _owner(session: AsyncSession, kind: str, value: str) -> Customer | None:
    stmt = (
        select(Customer)
        .join(Identity, Identity.customer_id == Customer.id)
        .where(Identity.kind == kind, Identity.value == value)
    )
    return (await session.scalars(stmt)).first()


async def find_by_identity(session: AsyncSession, kind: str, value: str) -> Customer | None:
    """The (surviving) customer owning identity ``kind``/``value``; the value is normalised first."""
    customer = await _owner(session, kind, normalise(kind, value))
    return None if customer is None else await follow_merges(session, customer)


async def resolve_by_identity(
    session: AsyncSession,
    kind: str,
    value: str,
    *,
    name: str | None = None,
    create: bool = True,
    proven: bool = False,
) -> Customer:
    """Who is this? The owner of the identity, or a new customer holding it.

    Safe under concurrency: the insert runs in a SAVEPOINT; when another transaction created the
    same identity first, the unique (kind, value) constraint fails, the savepoint is rolled back
    and the lookup repeated. Raises ``Invalid`` for a bad value, ``NotFound`` when ``create`` is
    false and nobody owns the identity.

    ``proven``: the caller proved the identity (an authenticated agent or token vouches). A new
    identity is stored verified; one another customer holds only unverified (a claim) is not
    theirs to use: it moves to a new customer, and the claimant gets a merge suggestion
    (``merge.prove_identity``; docs/architecture/one-customer.md).
    """
    norm = normalise(kind, value)
    stmt = (
        select(Customer, Identity.verified)
        .join(Identity, Identity.customer_id == Customer.id)
        .where(Identity.kind == kind, Identity.value == norm)
    )
    held = (await session.execute(stmt)).first()
    if held is not None and not (proven and not held[1] and create):
        return await follow_merges(session, held[0])
    if held is None and not create:
        raise NotFound(f"No customer has the identity {kind}:{norm}.")
    customer = Customer(name=name[:300] if name else None, attributes={})
    if held is not None:  # a proof for a claim: a customer of the prover's own takes it
        from frontdesk.customers.merge import prove_identity

        session.add(customer)
        await session.flush()
        proof = await prove_identity(session, kind, norm, customer.id, "api")
        if proof.outcome == "owned" and proof.holder_id is not None:  # proven by its holder meanwhile
            await session.delete(customer)
            await session.flush()
            return await get_customer(session, proof.holder_id)
        return customer
    try:
        async with session.begin_nested():
            session.add(customer)
            await session.flush()
            session.add(Identity(customer_id=customer.id, kind=kind, value=norm, verified=proven))
            await session.flush()
    except IntegrityError:
        found = await _owner(session, kind, norm)
        if found is None:
            raise
        return await follow_merges(session, found)
    emit(session, CustomerCreated(customer.id))
    return customer


# -- search -------------------------------------------------------------------------------------


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


def _attribute_equals(session: AsyncSession, key: str, value: str) -> ColumnElement[bool]:
    """``attributes[key]`` equals ``value``: strings exactly, numbers and booleans by their JSON text."""
    if _dialect(session) == "postgresql":
        return func.jsonb_extract_path_text(Customer.attributes, key) == value
    path = '$."' + key + '"'
    kind = func.json_type(Customer.attributes, path)
    text_value = case(
        (kind == "text", func.json_extract(Customer.attributes, path)),
        (kind.in_(("true", "false", "null")), kind),
        else_=cast(func.json_extract(Customer.attributes, path), Text),
    )
    return text_value == value


def parse_attribute_filter(raw: str) -> tuple[str, str]:
    match = ATTRIBUTE_FILTER.match(raw)
    if match is None:
        raise Invalid(
            "use key=value (key: letters, digits, _ - . and spaces, at most 100 characters)", field="attribute"
        )
    return match["key"], match["value"]


def _check_query_text(value: str, field: str) -> str:
    check_text(value, field)
    return value


async def list_customers(
    session: AsyncSession,
    *,
    q: str | None = None,
    identity: str | None = None,
    attributes: list[str] | None = None,
    satisfaction_tier: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[Customer], str | None]:
    """Customers matching every filter given, newest first, and the cursor of the next page."""
    stmt = select(Customer).where(Customer.merged_into_id.is_(None))
    if q is not None and q.strip():
        term = _check_query_text(q.strip(), "q")
        values = {term, term.lower()}
        kind = guess_kind(term)
        if kind is not None:
            with contextlib.suppress(Invalid):
                values.add(normalise(kind.value, term))
        stmt = stmt.where(
            or_(
                contains_folded(session, Customer.name, term),
                Customer.id.in_(select(Identity.customer_id).where(Identity.value.in_(values))),
            )
        )
    if identity is not None:
        kind_s, value = parse_identity(_check_query_text(identity, "identity"), field="identity")
        stmt = stmt.where(
            Customer.id.in_(select(Identity.customer_id).where(Identity.kind == kind_s, Identity.value == value))
        )
    for raw in attributes or ():
        key, value = parse_attribute_filter(_check_query_text(raw, "attribute"))
        stmt = stmt.where(_attribute_equals(session, key, value))
    if satisfaction_tier is not None:
        stmt = stmt.where(Customer.satisfaction_tier == satisfaction_tier)
    if cursor:
        stmt = stmt.where(keyset_condition(cursor, Customer.created_at, Customer.id))
    stmt = stmt.order_by(Customer.created_at.desc(), Customer.id.desc()).limit(limit + 1)
    rows, next_cursor = cut_page(list((await session.scalars(stmt)).all()), limit, lambda c: (c.created_at, c.id))
    return rows, next_cursor


def _identity_key(identity: Identity) -> tuple[datetime, uuid.UUID]:
    return identity.created_at, identity.id


async def identities_of(
    session: AsyncSession, customer_ids: list[uuid.UUID], *, limit: int = IDENTITIES_PAGE
) -> dict[uuid.UUID, tuple[list[Identity], str | None]]:
    """The first ``limit`` identities (oldest first) of several customers in one query, and for
    each the cursor of the rest (:func:`list_identities`), ``None`` when that was all."""
    out: dict[uuid.UUID, tuple[list[Identity], str | None]] = {cid: ([], None) for cid in customer_ids}
    if not customer_ids:
        return out
    place = (
        func.row_number()
        .over(partition_by=Identity.customer_id, order_by=(Identity.created_at, Identity.id))
        .label("place")
    )
    ranked = select(Identity, place).where(Identity.customer_id.in_(customer_ids)).subquery()
    shown = aliased(Identity, ranked)
    rows = await session.scalars(
        select(shown).where(ranked.c.place <= limit + 1).order_by(ranked.c.customer_id, ranked.c.place)
    )
    grouped: dict[uuid.UUID, list[Identity]] = {}
    for identity in rows:
        grouped.setdefault(identity.customer_id, []).append(identity)
    for cid, identities in grouped.items():
        out[cid] = cut_page(identities, limit, _identity_key)
    return out


async def list_identities(
    session: AsyncSession, customer_id: uuid.UUID, *, limit: int = IDENTITIES_PAGE, cursor: str | None = None
) -> tuple[list[Identity], str | None]:
    """A page of the customer's identities, oldest first, and the cursor of the next page."""
    stmt = select(Identity).where(Identity.customer_id == customer_id)
    if cursor:
        stmt = stmt.where(keyset_condition(cursor, Identity.created_at, Identity.id, descending=False))
    stmt = stmt.order_by(Identity.created_at, Identity.id).limit(limit + 1)
    return cut_page(list((await session.scalars(stmt)).all()), limit, _identity_key)


async def count_identities(session: AsyncSession, customer_id: uuid.UUID) -> int:
    return int(
        await session.scalar(select(func.count()).select_from(Identity).where(Identity.customer_id == customer_id)) or 0
    )


def too_many_identities(customer_id: uuid.UUID, held: int, limit: int) -> Conflict:
    return Conflict(
        f"Customer {customer_id} holds {held} identities, the most one customer may hold ({limit}); "
        "remove one before adding another.",
        extra={"errors": [{"field": "value", "message": f"at most {limit} identities per customer"}]},
    )


async def consents_of(session: AsyncSession, customer_id: uuid.UUID) -> list[Consent]:
    stmt = select(Consent).where(Consent.customer_id == customer_id).order_by(Consent.channel, Consent.category)
    return list((await session.scalars(stmt)).all())


# -- writes -------------------------------------------------------------------------------------


def _identity_conflict(kind: str, value: str, owner_id: uuid.UUID, field: str) -> Conflict:
    return Conflict(
        f"The identity {kind}:{value} already belongs to customer {owner_id}.",
        extra={
            "errors": [{"field": field, "message": "already belongs to another customer"}],
            "customer_id": str(owner_id),
            "identity": {"kind": kind, "value": value},
        },
    )


async def create_customer(
    session: AsyncSession, data: CustomerCreate, actor: Actor | None, *, max_identities: int = MAX_IDENTITIES
) -> Customer:
    """A new customer with its identities (normalised; 409 when one is already someone's)."""
    if len(data.identities) > max_identities:
        raise Invalid(f"at most {max_identities} identities per customer", field="identities")
    pairs: list[tuple[str, str, str]] = []
    seen: set[tuple[str, str]] = set()
    for i, ident in enumerate(data.identities):
        field = f"identities.{i}.value"
        norm = normalise(ident.kind.value, ident.value, field=field)
        if (ident.kind.value, norm) in seen:
            continue
        seen.add((ident.kind.value, norm))
        owner = await _owner(session, ident.kind.value, norm)
        if owner is not None:
            raise _identity_conflict(ident.kind.value, norm, owner.id, field)
        pairs.append((ident.kind.value, norm, field))

    customer = Customer(
        name=data.name or None,
        locale=data.locale,
        time_zone=data.time_zone,
        attributes=dict(data.attributes),
        satisfaction_tier=data.satisfaction_tier.value,
        lifetime_value=data.lifetime_value,
    )
    try:
        async with session.begin_nested():
            session.add(customer)
            await session.flush()
            for kind, value, _field in pairs:
                # An authenticated agent or token vouches for what it records: proven (the identity rule).
                session.add(Identity(customer_id=customer.id, kind=kind, value=value, verified=True))
            await session.flush()
    except IntegrityError:  # another request took one of the identities meanwhile
        for kind, value, field in pairs:
            owner = await _owner(session, kind, value)
            if owner is not None:
                raise _identity_conflict(kind, value, owner.id, field) from None
        raise
    await record(
        session,
        actor,
        "customer.created",
        "customer",
        customer.id,
        {"fields": sorted(data.model_fields_set - {"identities"}), "identity_kinds": [k for k, _, _ in pairs]},
    )
    emit(session, CustomerCreated(customer.id))
    return customer


async def update_customer(
    session: AsyncSession, customer_id: uuid.UUID, data: CustomerUpdate, actor: Actor | None
) -> Customer:
    """Change the fields sent; ``attributes`` is merged (a key sent as null is deleted)."""
    customer = await get_live_customer(session, customer_id)
    sent = data.model_fields_set
    changed: list[str] = []
    for field in ("name", "locale", "time_zone"):
        if field in sent:
            setattr(customer, field, getattr(data, field) or None)
            changed.append(field)
    for field in ("satisfaction_tier", "lifetime_value"):
        if field in sent:
            value = getattr(data, field)
            if value is None:
                raise Invalid("cannot be null", field=field)
            setattr(customer, field, value.value if field == "satisfaction_tier" else value)
            changed.append(field)
    if "attributes" in sent and data.attributes is not None:
        merged = dict(customer.attributes or {})
        for key, value in data.attributes.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        if len(merged) > 200:
            raise Invalid("would hold more than 200 keys after the merge", field="attributes")
        if json_size(merged) > MAX_ATTRIBUTES_BYTES:
            raise Invalid(f"would be larger than {MAX_ATTRIBUTES_BYTES} bytes after the merge", field="attributes")
        customer.attributes = merged
        changed.append("attributes")
    if changed:
        customer.updated_at = clock.now()
        await session.flush()
        await record(session, actor, "customer.updated", "customer", customer.id, {"fields": changed})
        emit(session, CustomerChanged(customer.id, tuple(changed)))
    return customer


async def delete_customer(session: AsyncSession, customer_id: uuid.UUID, actor: Actor | None) -> None:
    """Delete a customer who never talked to us (409 otherwise: erase keeps reports whole)."""
    customer = await get_customer(session, customer_id)
    conversations = await session.scalar(
        select(func.count()).select_from(Conversation).where(Conversation.customer_id == customer_id)
    )
    if conversations:
        raise Conflict(
            f"Customer {customer_id} has {conversations} conversation(s) and cannot be deleted; "
            f"erase their personal data instead (POST /api/v1/customers/{customer_id}/erase)."
        )
    merged = await session.scalar(
        select(func.count()).select_from(Customer).where(Customer.merged_into_id == customer_id)
    )
    if merged:
        raise Conflict(f"{merged} other customer record(s) were merged into {customer_id}; erase instead of deleting.")
    try:
        async with session.begin_nested():
            await session.delete(customer)
            await session.flush()
    except IntegrityError as exc:
        raise Conflict(
            f"Customer {customer_id} is still referenced by other records; erase their personal data instead."
        ) from exc
    await record(session, actor, "customer.deleted", "customer", customer_id)


async def add_identity(
    session: AsyncSession,
    customer_id: uuid.UUID,
    kind: str,
    value: str,
    actor: Actor | None,
    *,
    max_identities: int = MAX_IDENTITIES,
) -> tuple[Identity, bool]:
    """Attach an identity; ``(identity, False)`` when this customer already had it. 409 when
    another customer owns it, or when the customer already holds ``max_identities``."""
    customer = await get_live_customer(session, customer_id)
    norm = normalise(kind, value)
    existing = (await session.scalars(select(Identity).where(Identity.kind == kind, Identity.value == norm))).first()
    if existing is not None:
        if existing.customer_id == customer.id:
            if not existing.verified:
                existing.verified = True  # the agent vouches for what the customer only claimed
                await session.flush()
            return existing, False
        raise _identity_conflict(kind, norm, existing.customer_id, "value")
    held = await count_identities(session, customer.id)
    if held >= max_identities:
        raise too_many_identities(customer.id, held, max_identities)
    identity = Identity(customer_id=customer.id, kind=kind, value=norm, verified=True)  # the agent vouches
    try:
        async with session.begin_nested():
            session.add(identity)
            await session.flush()
    except IntegrityError:
        owner = await _owner(session, kind, norm)
        if owner is None:
            raise
        raise _identity_conflict(kind, norm, owner.id, "value") from None
    await record(session, actor, "customer.identity_added", "customer", customer.id, {"kind": kind})
    return identity, True


async def remove_identity(
    session: AsyncSession, customer_id: uuid.UUID, identity_id: uuid.UUID, actor: Actor | None
) -> None:
    await get_customer(session, customer_id)
    identity = await session.get(Identity, identity_id)
    if identity is None or identity.customer_id != customer_id:
        raise NotFound(f"Customer {customer_id} has no identity {identity_id}.")
    await session.delete(identity)
    await session.flush()
    await record(session, actor, "customer.identity_removed", "customer", customer_id, {"kind": identity.kind})


async def set_consent(
    session: AsyncSession,
    customer_id: uuid.UUID,
    channel: str,
    category: str,
    status: str,
    source: str | None,
    actor: Actor | None,
) -> Consent:
    """Record the customer's answer for ``channel`` and ``category`` (insert or replace)."""
    customer = await get_live_customer(session, customer_id)
    now = clock.now()

    async def _existing() -> Consent | None:
        stmt = select(Consent).where(
            Consent.customer_id == customer.id, Consent.channel == channel, Consent.category == category
        )
        return (await session.scalars(stmt)).first()

    consent = await _existing()
    if consent is None:
        consent = Consent(customer_id=customer.id, channel=channel, category=category)
        try:
            async with session.begin_nested():
                consent.status, consent.source, consent.recorded_at = status, source, now
                session.add(consent)
                await session.flush()
        except IntegrityError:
            consent = await _existing()  # type: ignore[assignment]
            if consent is None:
                raise
    consent.status, consent.source, consent.recorded_at = status, source, now
    await session.flush()
    await record(
        session,
        actor,
        "customer.consent_recorded",
        "customer",
        customer.id,
        {"channel": channel, "category": category, "status": status},
    )
    return consent


async def export_customer(session: AsyncSession, customer_id: uuid.UUID, actor: Actor | None) -> dict[str, Any]:
    """Everything we hold about the customer (following a merge to the survivor)."""
    customer = await follow_merges(session, await get_customer(session, customer_id))
    data = await personal.export(session, customer)
    await record(session, actor, "customer.exported", "customer", customer.id)
    return data


async def erase_customer(
    session: AsyncSession, customer_id: uuid.UUID, actor: Actor | None, store: AttachmentStore | None = None
) -> dict[str, Any]:
    """Erase the personal data of the customer and every record merged into them (see personal.py).

    The store objects they leave (attachments, raw emails) are deleted by due work written in this
    transaction (``timers.delete_objects_later``): it survives a crash right after the commit.
    Once the commit is done they are also deleted from ``store`` at once, when one is given."""
    customer = await follow_merges(session, await get_customer(session, customer_id))
    result = await personal.erase(session, customer)
    keys: list[str] = result.pop("storage_keys")
    await record(
        session,
        actor,
        "customer.erased",
        "customer",
        customer.id,
        {k: (v if isinstance(v, int) else str(v)) for k, v in result.items() if k != "erased_customer_ids"}
        | {"erased_customer_ids": [str(i) for i in result["erased_customer_ids"]]},
    )
    await timers.delete_objects_later(session, keys)
    if store is not None and keys:

        async def delete_bytes() -> None:
            for key in keys:
                try:
                    await store.delete(key)
                except StorageError:
                    log.exception("erase: could not delete attachment %s from the store", key)

        after_commit(session, delete_bytes)
    return result


# -- identity writes channels ask for (one owner per write: channels call these) -----------------


async def mark_identities_undeliverable(session: AsyncSession, kind: str, values: list[str]) -> None:
    """Mark the identities ``(kind, value)`` for each normalised ``value`` undeliverable (a bounce
    named them as failed recipients); unknown values are ignored."""
    if not values:
        return
    i = Identity.__table__.c
    await session.execute(update(Identity).where(i.kind == kind, i.value.in_(values)).values(undeliverable=True))


async def fold_empty_customer(
    session: AsyncSession, empty_id: uuid.UUID, survivor_id: uuid.UUID, identity_kind: str
) -> None:
    """Fold a customer with no history into ``survivor_id`` (a web-chat visitor proved to be them):
    its identities of ``identity_kind`` and its events move along, and the empty record points at
    the survivor (``merged_into_id``) so anything still holding its id is led there."""
    await session.execute(
        update(Identity)
        .where(Identity.customer_id == empty_id, Identity.kind == identity_kind)
        .values(customer_id=survivor_id)
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(CustomerEvent)
        .where(CustomerEvent.customer_id == empty_id)
        .values(customer_id=survivor_id)
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(Customer)
        .where(Customer.id == empty_id)
        .values(merged_into_id=survivor_id, updated_at=clock.now())
        .execution_options(synchronize_session=False)
    )


async def claim_identity(session: AsyncSession, customer_id: uuid.UUID, kind: str, value: str, verified: bool) -> bool:
    """Give ``customer_id`` the identity; ``False`` if someone took it meanwhile."""
    try:
        async with session.begin_nested():
            session.add(Identity(customer_id=customer_id, kind=kind, value=value, verified=verified))
            await session.flush()
    except IntegrityError:
        return False
    return True


async def new_customer_row(
    session: AsyncSession, *, name: str | None = None, attributes: dict[str, Any] | None = None
) -> Customer:
    """A bare customer a channel makes for a sender it meets for the first time (flushed, no audit
    row: nobody made it by hand; identities are added with :func:`hold_identity`)."""
    customer = Customer(name=name) if attributes is None else Customer(name=name, attributes=attributes)
    session.add(customer)
    await session.flush()
    return customer


def hold_identity(session: AsyncSession, customer_id: uuid.UUID, kind: str, value: str, *, verified: bool) -> None:
    """Add the identity ``(kind, value)`` (already normalised) to the unit of work; flushed with the next flush."""
    session.add(Identity(customer_id=customer_id, kind=kind, value=value, verified=verified))


async def new_customer_with_identity(
    session: AsyncSession, kind: str, value: str, name: str | None
) -> uuid.UUID | None:
    """A new customer holding the verified identity ``(kind, value)``; ``None`` if the same
    identity arrived concurrently (the caller looks again)."""
    try:
        async with session.begin_nested():
            customer = await new_customer_row(session, name=name)
            hold_identity(session, customer.id, kind, value, verified=True)
            await session.flush()
    except IntegrityError:
        return None
    return customer.id
