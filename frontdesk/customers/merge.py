"""One customer: duplicate detection, merge suggestions, merge and unmerge.

Two customer records that are one person are never merged silently. Whatever finds the overlap
(an identity added that another customer owns, a web-chat visitor's pre-chat email, the matcher
:func:`find_candidates`) calls :func:`suggest_merge`, which records a :class:`MergeSuggestion`
with its reason and evidence for an agent to accept or reject.

:func:`merge_customers` moves everything of the merged record to the survivor in the caller's
unit of work, and writes a :class:`CustomerMerge` listing the id of every row it moved and every
value it changed, so :func:`unmerge` can put back exactly that. See
``docs/architecture/one-customer.md``.

Functions other domains call: :func:`suggest_merge`, :func:`find_candidates`,
:func:`merge_customers`, :func:`unmerge`. All take the caller's session first, flush and never
commit.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Table, Text, UniqueConstraint, cast, false, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk import clock
from frontdesk.audit.service import Actor, record
from frontdesk.bus import emit
from frontdesk.customers.identity import check_text, guess_kind, normalise
from frontdesk.customers.schemas import MAX_ATTRIBUTES_BYTES, json_size
from frontdesk.customers.service import MAX_IDENTITIES, count_identities, follow_merges, get_customer
from frontdesk.db import Base, folded, get_or_404
from frontdesk.errors import Conflict, Invalid, NotFound
from frontdesk.events import CustomerMerged, CustomerUnmerged
from frontdesk.models import Consent, Conversation, Customer, CustomerMerge, Identity, MergeSuggestion, Message
from frontdesk.models.enums import IdentityKind
from frontdesk.models.merge import MergeStatus, MergeSuggestionStatus
from frontdesk.pagination import cut_page, keyset_condition

MAX_REASON = 100
MAX_EVIDENCE_BYTES = 4096
MAX_ATTRIBUTE_KEYS = 200
CHUNK = 500  # ids per IN (…) list: well under SQLite's and asyncpg's parameter limits
CANDIDATE_LIMIT = 50

# Tables whose rows follow a merge by a rule of their own rather than a plain move.
BY_RULE = frozenset({"consents"})
# Tables with ``customer_id`` in a unique key whose rows still move plainly, because the merge
# first makes room: conversations (one auto-opened conversation per customer and inbox while not
# resolved; see :func:`_separate_auto_open`).
ROOM_MADE = frozenset({"conversations"})
# Foreign keys to customers.id that do not mean "this row belongs to that customer".
NOT_MOVED = frozenset(
    {
        ("customers", "merged_into_id"),
        ("merge_suggestions", "customer_a_id"),
        ("merge_suggestions", "customer_b_id"),
        ("customer_merges", "survivor_id"),
        ("customer_merges", "merged_id"),
    }
)

# Reasons the matcher gives (callers may pass their own short reason, e.g. "webchat_prechat_email").
REASON_IDENTITY_CLAIMED = "identity_claimed"
REASON_ATTRIBUTE_MATCHES_IDENTITY = "attribute_matches_identity"
REASON_IDENTITY_IN_ATTRIBUTES = "identity_in_attributes"
REASON_SAME_NAME_OVERLAP = "same_name_overlapping_identity"
# A caller proved an identity another customer held only unverified (a claim): it moved to the
# prover, and the old holder may still be the same person (docs/architecture/one-customer.md).
REASON_PROOF_TAKES_IDENTITY = "verified_identity_taken"


# -- which tables move ----------------------------------------------------------------------------


def moved_tables() -> list[Table]:
    """Every table whose rows belong to one customer through ``customer_id`` and simply move.

    Found from the models, so a table added later (a channel's visitors, a journey's contacts…)
    moves without anyone remembering this module. A table that cannot move plainly (no ``id``
    primary key, or ``customer_id`` in a unique constraint) raises: give it a rule in :data:`BY_RULE`.
    """
    tables: list[Table] = []
    for table in Base.metadata.sorted_tables:
        for column in table.columns:
            if not any(fk.column.table.name == "customers" for fk in column.foreign_keys):
                continue
            if (table.name, column.name) in NOT_MOVED or table.name in BY_RULE:
                continue
            if column.name != "customer_id" or "id" not in table.c or list(table.primary_key.columns) != [table.c.id]:
                raise RuntimeError(f"merge does not know how to move {table.name}.{column.name}")
            unique_keys = [{c.name for c in i.columns} for i in table.indexes if i.unique] + [
                {c.name for c in u.columns} for u in table.constraints if isinstance(u, UniqueConstraint)
            ]
            if table.name not in ROOM_MADE and any("customer_id" in key for key in unique_keys):
                raise RuntimeError(f"{table.name} has customer_id in a unique key; give it a merge rule")
            tables.append(table)
    return tables


def _chunks(ids: Sequence[Any]) -> Iterable[list[Any]]:
    for i in range(0, len(ids), CHUNK):
        yield list(ids[i : i + CHUNK])


def _uuid_list(values: Iterable[Any]) -> list[uuid.UUID]:
    return [v if isinstance(v, uuid.UUID) else uuid.UUID(str(v)) for v in values]


# -- locking ---------------------------------------------------------------------------------------


async def _lock_pair(session: AsyncSession, a: uuid.UUID, b: uuid.UUID) -> dict[uuid.UUID, Customer]:
    """Lock both customer rows for the rest of the unit of work and read them fresh.

    PostgreSQL: ``SELECT … FOR UPDATE`` in id order (two merges of overlapping pairs cannot
    deadlock; rows referencing a locked customer — an inbound message, an event — wait for the
    merge to commit). SQLite: a write to both rows takes the database's single write lock first.
    """
    ids = sorted({a, b})
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(select(Customer.id).where(Customer.id.in_(ids)).order_by(Customer.id).with_for_update())
    else:
        await session.execute(
            update(Customer)
            .where(Customer.id.in_(ids))
            .values(updated_at=clock.now())
            .execution_options(synchronize_session=False)
        )
    rows = await session.scalars(select(Customer).where(Customer.id.in_(ids)).execution_options(populate_existing=True))
    found = {c.id: c for c in rows}
    for cid in ids:
        if cid not in found:
            raise NotFound(f"No customer with id {cid}.")
    return found


# -- suggestions -----------------------------------------------------------------------------------


def _clean_evidence(evidence: dict[str, Any] | None) -> dict[str, Any]:
    if not evidence:
        return {}
    try:
        value = json.loads(json.dumps(evidence, default=str, allow_nan=False))
    except (TypeError, ValueError):
        return {"note": "the evidence given could not be stored as JSON"}
    if not isinstance(value, dict) or json_size(value) > MAX_EVIDENCE_BYTES:
        return {"note": f"the evidence given was larger than {MAX_EVIDENCE_BYTES} bytes"}
    return value


async def _open_suggestion(session: AsyncSession, pair: str) -> MergeSuggestion | None:
    return (await session.scalars(select(MergeSuggestion).where(MergeSuggestion.open_pair == pair))).first()


async def suggest_merge(
    session: AsyncSession,
    customer_a_id: uuid.UUID,
    customer_b_id: uuid.UUID,
    reason: str,
    *,
    evidence: dict[str, Any] | None = None,
) -> MergeSuggestion | None:
    """Suggest that two customers are one person; the open suggestion for the pair, or ``None``.

    Ids of merged records are followed to their survivors, so a suggestion never names a ghost.
    Idempotent per unordered pair while open: a repeat returns the open suggestion (its first
    reason and evidence kept). ``None`` when both are (now) the same customer, when one has been
    erased, or when agents already rejected this pair for this ``reason``. Raises ``NotFound`` for
    an unknown id. ``evidence`` (JSON, at most 4 KB) says what matched; it may name identity values
    and is blanked when either customer is erased.
    """
    if customer_a_id == customer_b_id:
        return None
    a = await follow_merges(session, await get_customer(session, customer_a_id))
    b = await follow_merges(session, await get_customer(session, customer_b_id))
    if a.id == b.id or a.erased_at is not None or b.erased_at is not None:
        return None
    reason = (reason or "unspecified").strip()[:MAX_REASON] or "unspecified"
    check_text(reason, "reason")
    lo, hi = sorted((a.id, b.id))
    pair = f"{lo}:{hi}"
    existing = await _open_suggestion(session, pair)
    if existing is not None:
        return existing
    rejected = await session.scalar(
        select(MergeSuggestion.id).where(
            MergeSuggestion.customer_a_id == lo,
            MergeSuggestion.customer_b_id == hi,
            MergeSuggestion.status == MergeSuggestionStatus.rejected.value,
            MergeSuggestion.reason == reason,
        )
    )
    if rejected is not None:
        return None
    suggestion = MergeSuggestion(
        customer_a_id=lo,
        customer_b_id=hi,
        open_pair=pair,
        reason=reason,
        evidence=_clean_evidence(evidence),
        status=MergeSuggestionStatus.open.value,
    )
    try:
        async with session.begin_nested():
            session.add(suggestion)
            await session.flush()
    except IntegrityError:  # a concurrent request suggested the same pair first
        existing = await _open_suggestion(session, pair)
        if existing is None:
            raise
        return existing
    await record(
        session,
        None,
        "customer.merge_suggested",
        "merge_suggestion",
        suggestion.id,
        {"customer_a_id": str(lo), "customer_b_id": str(hi), "reason": reason},
    )
    return suggestion


async def suggest_for_identity_conflict(
    session: AsyncSession, customer_id: uuid.UUID, conflict: Conflict
) -> MergeSuggestion | None:
    """The customer tried to take an identity another customer owns: suggest merging the two.

    ``conflict`` is the 409 :func:`frontdesk.customers.service.add_identity` raised; ``None`` when
    it was not about an identity owned elsewhere.
    """
    owner = conflict.extra.get("customer_id")
    identity = conflict.extra.get("identity")
    if not owner or not isinstance(identity, dict):
        return None
    return await suggest_merge(
        session,
        customer_id,
        uuid.UUID(str(owner)),
        REASON_IDENTITY_CLAIMED,
        evidence={"identity": identity, "owned_by": str(owner), "claimed_by": str(customer_id)},
    )


@dataclass(frozen=True)
class Proof:
    """What :func:`prove_identity` did: ``added`` (nobody had it), ``verified`` (the prover had
    it unproven), ``taken`` (moved from a customer who only claimed it; ``holder_id`` is them,
    ``suggestion`` asks agents about the pair), or ``owned`` (another customer has it proven:
    nothing changed, the caller decides)."""

    outcome: str
    identity: Identity | None
    holder_id: uuid.UUID | None = None
    suggestion: MergeSuggestion | None = None


async def prove_identity(
    session: AsyncSession,
    kind: str,
    value: str,
    customer_id: uuid.UUID,
    source: str,
    actor: Actor | None = None,
) -> Proof:
    """``customer_id`` PROVED the identity ``kind``/``value`` (already normalised): a proof beats a claim.

    Nobody holds it: added, verified. The prover holds it: marked verified. Another customer
    holds it *unverified*: it moves to the prover (verified) and the old holder gets a merge
    suggestion (:data:`REASON_PROOF_TAKES_IDENTITY`); the prover never lands on the claimant's
    record. Another customer holds it *verified*: ``owned``, nothing changes. ``source`` (a short
    word: ``webchat_hmac``, ``email_link``, ``api``) is kept in the evidence and the audit entry.
    """
    for _ in range(3):
        identity = (
            await session.scalars(
                select(Identity)
                .where(Identity.kind == kind, Identity.value == value)
                .execution_options(populate_existing=True)
            )
        ).first()
        if identity is None:
            fresh = Identity(customer_id=customer_id, kind=kind, value=value, verified=True)
            try:
                async with session.begin_nested():
                    session.add(fresh)
                    await session.flush()
            except IntegrityError:
                continue  # someone else added it meanwhile: look again
            return Proof("added", fresh)
        holder = await follow_merges(session, await get_customer(session, identity.customer_id))
        if holder.id == customer_id:
            if not identity.verified:
                identity.verified = True
                if identity.customer_id != customer_id:
                    identity.customer_id = customer_id
                await session.flush()
            return Proof("verified", identity)
        if identity.verified:
            return Proof("owned", identity, holder.id)
        moved = await session.execute(
            update(Identity)
            .where(Identity.id == identity.id, Identity.verified.is_(false()))
            .values(customer_id=customer_id, verified=True)
            .returning(Identity.id)
        )
        if moved.first() is None:
            continue  # proven (or moved) concurrently: look again
        await session.refresh(identity)
        suggestion = await suggest_merge(
            session,
            customer_id,
            holder.id,
            REASON_PROOF_TAKES_IDENTITY,
            evidence={
                "identity": {"kind": kind, "value": value},
                "proven_by": str(customer_id),
                "claimed_by": str(holder.id),
                "source": source,
            },
        )
        await record(
            session,
            actor,
            "customer.identity_proven",
            "customer",
            customer_id,
            {"kind": kind, "taken_from": str(holder.id), "source": source},
        )
        return Proof("taken", identity, holder.id, suggestion)
    raise Conflict(f"The identity {kind} changed hands while it was being proven; try again.")


async def get_suggestion(session: AsyncSession, suggestion_id: uuid.UUID) -> MergeSuggestion:
    suggestion = await get_or_404(session, MergeSuggestion, suggestion_id, "merge suggestion")
    return suggestion


async def list_suggestions(
    session: AsyncSession,
    *,
    status: str | None = None,
    customer_id: uuid.UUID | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[MergeSuggestion], str | None]:
    """Suggestions newest first, optionally by status and by customer (either side of the pair)."""
    stmt = select(MergeSuggestion)
    if status is not None:
        stmt = stmt.where(MergeSuggestion.status == status)
    if customer_id is not None:
        stmt = stmt.where(
            or_(MergeSuggestion.customer_a_id == customer_id, MergeSuggestion.customer_b_id == customer_id)
        )
    if cursor:
        stmt = stmt.where(keyset_condition(cursor, MergeSuggestion.created_at, MergeSuggestion.id))
    stmt = stmt.order_by(MergeSuggestion.created_at.desc(), MergeSuggestion.id.desc()).limit(limit + 1)
    rows = list((await session.scalars(stmt)).all())
    return cut_page(rows, limit, lambda s: (s.created_at, s.id))


async def reject_suggestion(session: AsyncSession, suggestion_id: uuid.UUID, actor: Actor | None) -> MergeSuggestion:
    """Mark an open suggestion rejected: the pair is not suggested again for the same reason."""
    suggestion = await get_suggestion(session, suggestion_id)
    if suggestion.status != MergeSuggestionStatus.open.value:
        raise Conflict(f"Merge suggestion {suggestion_id} is already {suggestion.status}.")
    suggestion.status = MergeSuggestionStatus.rejected.value
    suggestion.open_pair = None
    suggestion.decided_at = clock.now()
    suggestion.decided_by_id = actor.user_id if actor else None
    await session.flush()
    await record(
        session,
        actor,
        "customer.merge_suggestion_rejected",
        "merge_suggestion",
        suggestion.id,
        {"customer_a_id": str(suggestion.customer_a_id), "customer_b_id": str(suggestion.customer_b_id)},
    )
    return suggestion


async def accept_suggestion(
    session: AsyncSession,
    suggestion_id: uuid.UUID,
    actor: Actor | None,
    *,
    survivor_id: uuid.UUID | None = None,
    max_identities: int = MAX_IDENTITIES,
) -> CustomerMerge:
    """Merge the pair of an open suggestion; the older customer survives unless ``survivor_id`` says."""
    suggestion = await get_suggestion(session, suggestion_id)
    if suggestion.status != MergeSuggestionStatus.open.value:
        extra = {"merge_id": str(suggestion.merge_id)} if suggestion.merge_id else None
        raise Conflict(f"Merge suggestion {suggestion_id} is already {suggestion.status}.", extra=extra)
    a = await follow_merges(session, await get_customer(session, suggestion.customer_a_id))
    b = await follow_merges(session, await get_customer(session, suggestion.customer_b_id))
    if a.id == b.id:
        raise Conflict(f"Both customers of suggestion {suggestion_id} are already one customer ({a.id}).")
    if survivor_id is not None:
        if survivor_id in (suggestion.customer_a_id, a.id):
            survivor, other = a, b
        elif survivor_id in (suggestion.customer_b_id, b.id):
            survivor, other = b, a
        else:
            raise Invalid("must be one of the two customers of the suggestion", field="survivor_id")
    else:
        survivor, other = sorted((a, b), key=lambda c: (clock.ensure_utc(c.created_at), c.id))
    return await merge_customers(
        session, survivor.id, other.id, actor, suggestion=suggestion, max_identities=max_identities
    )


# -- merge -----------------------------------------------------------------------------------------


@dataclass
class _Restore:
    attributes_added: dict[str, Any] = field(default_factory=dict)
    attributes_overridden: dict[str, Any] = field(default_factory=dict)
    attributes_not_added: dict[str, Any] = field(default_factory=dict)
    fields_filled: dict[str, Any] = field(default_factory=dict)
    consents_overwritten: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "attributes_added": self.attributes_added,
            "attributes_overridden": self.attributes_overridden,
            "attributes_not_added": self.attributes_not_added,
            "fields_filled": self.fields_filled,
            "consents_overwritten": self.consents_overwritten,
        }


def _merge_attributes(survivor: Customer, merged: Customer, restore: _Restore) -> None:
    """Survivor's values win; the merged record's other keys are added while the limits allow."""
    attrs = dict(survivor.attributes or {})
    for key, value in (merged.attributes or {}).items():
        if key in attrs:
            if attrs[key] != value:
                restore.attributes_overridden[key] = value
            continue
        trial = {**attrs, key: value}
        if len(trial) > MAX_ATTRIBUTE_KEYS or json_size(trial) > MAX_ATTRIBUTES_BYTES:
            restore.attributes_not_added[key] = value
            continue
        attrs[key] = value
        restore.attributes_added[key] = value
    if restore.attributes_added:
        survivor.attributes = attrs


def _fill_blanks(survivor: Customer, merged: Customer, restore: _Restore) -> None:
    for name in ("name", "locale", "time_zone"):
        if getattr(survivor, name) is None and getattr(merged, name) is not None:
            setattr(survivor, name, getattr(merged, name))
            restore.fields_filled[name] = getattr(merged, name)
    if survivor.satisfaction_tier == "unknown" and merged.satisfaction_tier != "unknown":
        survivor.satisfaction_tier = merged.satisfaction_tier
        restore.fields_filled["satisfaction_tier"] = merged.satisfaction_tier


async def _merge_consents(
    session: AsyncSession, survivor: Customer, merged: Customer, restore: _Restore
) -> list[uuid.UUID]:
    """Per channel and category the newer answer wins. Returns the ids of consent rows moved.

    A merged record's answer the survivor has no answer for moves over; a newer one overwrites the
    survivor's (the old values are kept in the merge record); an older one stays on the merged
    record (still exported and erased with the family, put back by an unmerge untouched).
    """
    theirs = list((await session.scalars(select(Consent).where(Consent.customer_id == merged.id))).all())
    if not theirs:
        return []
    ours = {
        (c.channel, c.category): c
        for c in await session.scalars(select(Consent).where(Consent.customer_id == survivor.id))
    }
    moved: list[uuid.UUID] = []
    for consent in theirs:
        mine = ours.get((consent.channel, consent.category))
        if mine is None:
            consent.customer_id = survivor.id
            moved.append(consent.id)
        elif clock.ensure_utc(consent.recorded_at) > clock.ensure_utc(mine.recorded_at):
            restore.consents_overwritten.append(
                {
                    "id": str(mine.id),
                    "status": mine.status,
                    "source": mine.source,
                    "recorded_at": clock.ensure_utc(mine.recorded_at).isoformat(),
                    "replaced_by": str(consent.id),
                    "new_recorded_at": clock.ensure_utc(consent.recorded_at).isoformat(),
                }
            )
            mine.status, mine.source, mine.recorded_at = consent.status, consent.source, consent.recorded_at
    await session.flush()
    return moved


async def _move_rows(
    session: AsyncSession, table: Table, from_id: uuid.UUID, to_id: uuid.UUID, ids: Sequence[uuid.UUID] | None = None
) -> list[uuid.UUID]:
    """Set ``customer_id`` from ``from_id`` to ``to_id`` (only rows ``ids`` when given); the ids moved."""
    if ids is None:
        stmt = update(table).where(table.c.customer_id == from_id).values(customer_id=to_id).returning(table.c.id)
        return _uuid_list((await session.execute(stmt)).scalars().all())
    moved: list[uuid.UUID] = []
    for chunk in _chunks(list(ids)):
        stmt = (
            update(table)
            .where(table.c.id.in_(chunk), table.c.customer_id == from_id)
            .values(customer_id=to_id)
            .returning(table.c.id)
        )
        moved.extend(_uuid_list((await session.execute(stmt)).scalars().all()))
    return moved


async def _separate_auto_open(
    session: AsyncSession, from_id: uuid.UUID, to_id: uuid.UUID, only: Sequence[uuid.UUID] | None = None
) -> list[uuid.UUID]:
    """Before conversations move from ``from_id`` to ``to_id``: each one that holds its channel and
    inbox's one auto-opened slot (``Conversation.auto_open``, unique while not resolved) where
    ``to_id`` holds the same slot becomes a thread of its own, so the move cannot break the index.
    Both stay open and keep every message; the ids changed are returned."""
    c = Conversation
    slot = (c.auto_open.is_(True), c.status != "resolved")
    taken = {
        (row.channel, row.inbox_id)
        for row in await session.execute(select(c.channel, c.inbox_id).where(c.customer_id == to_id, *slot))
    }
    if not taken:
        return []
    stmt = select(c.id, c.channel, c.inbox_id).where(c.customer_id == from_id, *slot)
    if only is not None:
        stmt = stmt.where(c.id.in_(list(only)))
    ids = [row.id for row in await session.execute(stmt) if (row.channel, row.inbox_id) in taken]
    for chunk in _chunks(ids):
        await session.execute(
            update(c).where(c.id.in_(chunk)).values(auto_open=False).execution_options(synchronize_session=False)
        )
    return ids


def _refuse_unmergeable(customer: Customer) -> None:
    if customer.merged_into_id is not None:
        raise Conflict(
            f"Customer {customer.id} was already merged into {customer.merged_into_id}.",
            extra={"survivor_id": str(customer.merged_into_id)},
        )
    if customer.erased_at is not None:
        raise Conflict(f"Customer {customer.id} was erased and cannot be merged.")


async def merge_customers(
    session: AsyncSession,
    survivor_id: uuid.UUID,
    merged_id: uuid.UUID,
    actor: Actor | None,
    *,
    suggestion: MergeSuggestion | None = None,
    max_identities: int = MAX_IDENTITIES,
) -> CustomerMerge:
    """Merge customer ``merged_id`` into ``survivor_id`` in the caller's unit of work.

    Moves identities, conversations, messages, customer events and every other row that belongs
    to the customer (:func:`moved_tables`); consents by the newer answer; attributes with the
    survivor winning conflicts; blank name/locale/time zone/tier filled from the merged record;
    lifetime value summed. The merged record keeps its row with ``merged_into_id`` set. Every id
    moved and every value changed is written to the returned :class:`CustomerMerge`. Audited.

    409 when either record is already merged or erased, or when the two hold more than
    ``max_identities`` identities together (nothing is dropped to fit: an agent removes the
    stale ones first), 422 for a customer merged into itself, 404 for an unknown id.
    """
    if survivor_id == merged_id:
        raise Invalid("cannot merge a customer into itself", field="other_id")
    locked = await _lock_pair(session, survivor_id, merged_id)
    survivor, merged = locked[survivor_id], locked[merged_id]
    _refuse_unmergeable(survivor)
    _refuse_unmergeable(merged)
    held = {c.id: await count_identities(session, c.id) for c in (survivor, merged)}
    if sum(held.values()) > max_identities:
        raise Conflict(
            f"Customers {survivor.id} and {merged.id} hold {held[survivor.id]} and {held[merged.id]} identities, "
            f"{sum(held.values())} together; one customer may hold at most {max_identities}. "
            "Remove the identities that are no longer used, then merge.",
            extra={"identities": {str(k): v for k, v in held.items()}, "max_identities": max_identities},
        )
    now = clock.now()

    moved: dict[str, list[str]] = {}
    separated = await _separate_auto_open(session, merged.id, survivor.id)
    for table in moved_tables():
        ids = await _move_rows(session, table, merged.id, survivor.id)
        if ids:
            moved[table.name] = [str(i) for i in ids]
    restore = _Restore()
    consent_ids = await _merge_consents(session, survivor, merged, restore)
    if consent_ids:
        moved["consents"] = [str(i) for i in consent_ids]
    _merge_attributes(survivor, merged, restore)
    _fill_blanks(survivor, merged, restore)
    ltv = Decimal(merged.lifetime_value or 0)
    survivor.lifetime_value = Decimal(survivor.lifetime_value or 0) + ltv
    merged.lifetime_value = Decimal("0")
    merged.merged_into_id = survivor.id
    survivor.updated_at = merged.updated_at = now

    if suggestion is None:
        lo, hi = sorted((survivor.id, merged.id))
        suggestion = await _open_suggestion(session, f"{lo}:{hi}")
    merge = CustomerMerge(
        survivor_id=survivor.id,
        merged_id=merged.id,
        suggestion_id=suggestion.id if suggestion else None,
        status=MergeStatus.merged.value,
        moved=moved,
        restore=restore.as_json(),
        lifetime_value_moved=ltv,
        created_at=now,
        merged_by_id=actor.user_id if actor else None,
    )
    session.add(merge)
    await session.flush()
    if suggestion is not None:
        suggestion.status = MergeSuggestionStatus.accepted.value
        suggestion.open_pair = None
        suggestion.decided_at = now
        suggestion.decided_by_id = actor.user_id if actor else None
        suggestion.merge_id = merge.id
        await session.flush()

    counts = {name: len(ids) for name, ids in moved.items()}
    summary = {
        "merge_id": str(merge.id),
        "survivor_id": str(survivor.id),
        "merged_id": str(merged.id),
        "suggestion_id": str(suggestion.id) if suggestion else None,
        "moved": counts,
        "attributes_added": sorted(restore.attributes_added),
        "attributes_overridden": sorted(restore.attributes_overridden),
        "fields_filled": sorted(restore.fields_filled),
        "consents_overwritten": len(restore.consents_overwritten),
        "conversations_separated": len(separated),
    }
    await record(session, actor, "customer.merged", "customer", survivor.id, summary)
    await record(session, actor, "customer.merged_into", "customer", merged.id, summary)
    emit(session, CustomerMerged(merge_id=merge.id, survivor_id=survivor.id, merged_id=merged.id))
    return merge


# -- unmerge ---------------------------------------------------------------------------------------


async def get_merge(session: AsyncSession, merge_id: uuid.UUID) -> CustomerMerge:
    merge = await get_or_404(session, CustomerMerge, merge_id, "customer merge")
    return merge


async def list_merges(session: AsyncSession, customer_id: uuid.UUID) -> list[CustomerMerge]:
    """Merges the customer took part in (as survivor or as the merged record), newest first."""
    await get_customer(session, customer_id)
    stmt = (
        select(CustomerMerge)
        .where(or_(CustomerMerge.survivor_id == customer_id, CustomerMerge.merged_id == customer_id))
        .order_by(CustomerMerge.created_at.desc(), CustomerMerge.id.desc())
        .limit(500)
    )
    return list((await session.scalars(stmt)).all())


def _same_time(stored: datetime, iso: str) -> bool:
    try:
        return clock.ensure_utc(stored) == clock.ensure_utc(datetime.fromisoformat(iso))
    except ValueError:
        return False


async def unmerge(session: AsyncSession, merge_id: uuid.UUID, actor: Actor | None) -> CustomerMerge:
    """Undo a merge: move back exactly the rows it moved and the values it changed.

    Rows created for the survivor after the merge stay with the survivor — except that a message
    always follows its conversation, so a reply added to a conversation that moves back goes back
    with it. A value changed since the merge (an attribute, a consent answer, a filled field) is
    the newer truth and is kept. 409 when the merge was already undone, or when the survivor has
    since been merged into someone else (undo that merge first).
    """
    merge = await get_merge(session, merge_id)
    if merge.status != MergeStatus.merged.value:
        raise Conflict(f"Merge {merge_id} was already undone.")
    locked = await _lock_pair(session, merge.survivor_id, merge.merged_id)
    await session.refresh(merge)
    if merge.status != MergeStatus.merged.value:
        raise Conflict(f"Merge {merge_id} was already undone.")
    survivor, merged = locked[merge.survivor_id], locked[merge.merged_id]
    if survivor.merged_into_id is not None:
        later = await session.scalar(
            select(CustomerMerge.id).where(
                CustomerMerge.merged_id == survivor.id, CustomerMerge.status == MergeStatus.merged.value
            )
        )
        raise Conflict(
            f"Customer {survivor.id} was merged into {survivor.merged_into_id} after this merge; "
            f"undo that merge ({later}) first.",
            extra={"blocking_merge_id": str(later) if later else None},
        )
    if merged.merged_into_id != survivor.id:
        raise Conflict(f"Customer {merged.id} is no longer merged into {survivor.id}.")
    now = clock.now()
    tables = {t.name: t for t in moved_tables()}
    moved_back: dict[str, int] = {}
    returned_conversations: list[uuid.UUID] = []
    await _separate_auto_open(session, survivor.id, merged.id, _uuid_list((merge.moved or {}).get("conversations", [])))
    for name, raw_ids in (merge.moved or {}).items():
        if name in tables:
            ids = await _move_rows(session, tables[name], survivor.id, merged.id, _uuid_list(raw_ids))
            moved_back[name] = len(ids)
            if name == "conversations":
                returned_conversations = ids
    if returned_conversations:  # messages follow their conversation, whenever they were written
        messages: Table = Message.__table__  # type: ignore[assignment]
        extra = 0
        for chunk in _chunks(returned_conversations):
            result = await session.execute(
                update(messages)
                .where(messages.c.conversation_id.in_(chunk), messages.c.customer_id == survivor.id)
                .values(customer_id=merged.id)
                .returning(messages.c.id)
            )
            extra += len(result.scalars().all())
        if extra:
            moved_back["messages"] = moved_back.get("messages", 0) + extra

    consent_ids = _uuid_list((merge.moved or {}).get("consents", []))
    if consent_ids:
        for chunk in _chunks(consent_ids):
            await session.execute(
                update(Consent)
                .where(Consent.id.in_(chunk), Consent.customer_id == survivor.id)
                .values(customer_id=merged.id)
                .execution_options(synchronize_session=False)
            )
        moved_back["consents"] = len(consent_ids)
    restore = merge.restore or {}
    restored_consents = 0
    for old in restore.get("consents_overwritten", []):
        consent = await session.get(Consent, uuid.UUID(old["id"]), populate_existing=True)
        if consent is None or consent.customer_id != survivor.id:
            continue
        if not _same_time(consent.recorded_at, old["new_recorded_at"]):
            continue  # answered again since the merge: the newer answer stays
        consent.status, consent.source = old["status"], old["source"]
        consent.recorded_at = datetime.fromisoformat(old["recorded_at"])
        restored_consents += 1

    attrs = dict(survivor.attributes or {})
    removed = [k for k, v in (restore.get("attributes_added") or {}).items() if k in attrs and attrs[k] == v]
    for key in removed:
        del attrs[key]
    if removed:
        survivor.attributes = attrs
    for name, value in (restore.get("fields_filled") or {}).items():
        if getattr(survivor, name, None) == value:
            setattr(survivor, name, "unknown" if name == "satisfaction_tier" else None)
    ltv = Decimal(merge.lifetime_value_moved or 0)
    survivor.lifetime_value = max(Decimal("0"), Decimal(survivor.lifetime_value or 0) - ltv)
    merged.lifetime_value = Decimal(merged.lifetime_value or 0) + ltv
    merged.merged_into_id = None
    survivor.updated_at = merged.updated_at = now
    merge.status = MergeStatus.unmerged.value
    merge.unmerged_at = now
    merge.unmerged_by_id = actor.user_id if actor else None
    if merge.suggestion_id is not None:
        suggestion = await session.get(MergeSuggestion, merge.suggestion_id)
        if suggestion is not None and suggestion.status == MergeSuggestionStatus.accepted.value:
            # Undone by a person: the same evidence should not bring the same suggestion back.
            suggestion.status = MergeSuggestionStatus.rejected.value
            suggestion.decided_at = now
            suggestion.decided_by_id = actor.user_id if actor else None
    await session.flush()

    summary = {
        "merge_id": str(merge.id),
        "survivor_id": str(survivor.id),
        "merged_id": str(merged.id),
        "moved_back": moved_back,
        "attributes_removed": sorted(removed),
        "consents_restored": restored_consents,
    }
    await record(session, actor, "customer.unmerged", "customer", survivor.id, summary)
    await record(session, actor, "customer.unmerged", "customer", merged.id, summary)
    emit(session, CustomerUnmerged(merge_id=merge.id, survivor_id=survivor.id, merged_id=merged.id))
    return merge


# -- the matcher -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """Another customer that may be the same person, and why."""

    customer_id: uuid.UUID
    reason: str
    evidence: dict[str, Any]


def _contact_values(attributes: dict[str, Any]) -> dict[tuple[str, str], str]:
    """Top-level string attributes that are an email or a phone: ``{(kind, normalised): key}``."""
    found: dict[tuple[str, str], str] = {}
    for key, value in list(attributes.items())[:MAX_ATTRIBUTE_KEYS]:
        if not isinstance(value, str) or not value.strip() or len(value) > 320:
            continue
        kind = guess_kind(value)
        if kind is None:
            continue
        with contextlib.suppress(Invalid):
            found.setdefault((kind.value, normalise(kind.value, value)), key)
    return found


async def find_candidates(session: AsyncSession, customer_id: uuid.UUID) -> list[Candidate]:
    """Customers that may be the same person as ``customer_id``, each with its reason and evidence.

    Three simple, explainable rules (strongest first; one candidate per other customer):

    * ``attribute_matches_identity`` — an email or phone in this customer's attributes is another
      customer's identity;
    * ``identity_in_attributes`` — this customer's email or phone identity appears in another
      customer's attributes;
    * ``same_name_overlapping_identity`` — same name (any case) and an identity value in common
      across kinds (an external id that is the other's email, a messenger handle that is the
      other's phone…).

    Merged and erased customers are never candidates.
    """
    customer = await follow_merges(session, await get_customer(session, customer_id))
    own = list((await session.scalars(select(Identity).where(Identity.customer_id == customer.id))).all())
    out: dict[uuid.UUID, Candidate] = {}

    def add(other: uuid.UUID, reason: str, evidence: dict[str, Any]) -> None:
        if other != customer.id and other not in out:
            out[other] = Candidate(other, reason, evidence)

    live = (Customer.merged_into_id.is_(None), Customer.erased_at.is_(None), Customer.id != customer.id)

    # 1. Our attributes name someone else's identity.
    contacts = _contact_values(customer.attributes or {})
    if contacts:
        keys = list(contacts)
        rows = await session.execute(
            select(Identity.kind, Identity.value, Identity.customer_id)
            .join(Customer, Customer.id == Identity.customer_id)
            .where(Identity.kind.in_({k for k, _ in keys}), Identity.value.in_({v for _, v in keys}), *live)
        )
        for kind, value, other in rows:
            if (kind, value) in contacts:
                add(
                    other,
                    REASON_ATTRIBUTE_MATCHES_IDENTITY,
                    {"attribute": contacts[(kind, value)], "identity": {"kind": kind, "value": value}},
                )

    # 2. Our email/phone identities appear in someone else's attributes.
    reachable = [i for i in own if i.kind in (IdentityKind.email.value, IdentityKind.phone.value)][:20]
    if reachable:
        text = func.lower(cast(Customer.attributes, Text))
        likes = [text.contains(i.value.lower(), autoescape=True) for i in reachable]
        rows2 = await session.scalars(select(Customer).where(or_(*likes), *live).limit(CANDIDATE_LIMIT))
        wanted = {(i.kind, i.value) for i in reachable}
        for match in rows2:
            for pair, key in _contact_values(match.attributes or {}).items():
                if pair in wanted:
                    add(
                        match.id,
                        REASON_IDENTITY_IN_ATTRIBUTES,
                        {"attribute": key, "identity": {"kind": pair[0], "value": pair[1]}},
                    )
                    break

    # 3. Same name and an identity value in common (across kinds).
    name = (customer.name or "").strip()
    if name and own:
        ours = {i.value.casefold(): i for i in own}
        same_name = list(
            (
                await session.scalars(
                    select(Customer.id)
                    .where(folded(session, Customer.name) == name.casefold(), *live)
                    .limit(CANDIDATE_LIMIT)
                )
            ).all()
        )
        if same_name:
            theirs = await session.scalars(select(Identity).where(Identity.customer_id.in_(same_name)))
            for ident in theirs:
                mine = ours.get(ident.value.casefold())
                if mine is not None:
                    add(
                        ident.customer_id,
                        REASON_SAME_NAME_OVERLAP,
                        {
                            "name": name,
                            "value": ident.value,
                            "kinds": sorted({mine.kind, ident.kind}),
                        },
                    )
    return list(out.values())


async def suggest_candidates(session: AsyncSession, customer_id: uuid.UUID) -> list[MergeSuggestion]:
    """Run :func:`find_candidates` and turn each candidate into a (possibly existing) open suggestion."""
    customer = await follow_merges(session, await get_customer(session, customer_id))
    suggestions: list[MergeSuggestion] = []
    for candidate in await find_candidates(session, customer.id):
        suggestion = await suggest_merge(
            session, customer.id, candidate.customer_id, candidate.reason, evidence=candidate.evidence
        )
        if suggestion is not None:
            suggestions.append(suggestion)
    return suggestions


__all__ = [
    "Candidate",
    "accept_suggestion",
    "find_candidates",
    "get_merge",
    "get_suggestion",
    "list_merges",
    "list_suggestions",
    "merge_customers",
    "moved_tables",
    "reject_suggestion",
    "suggest_candidates",
    "suggest_for_identity_conflict",
    "suggest_merge",
    "unmerge",
]
