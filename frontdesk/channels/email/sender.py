"""Whose timeline an inbound email joins: the identity rule applied to the From address.

The From address of an email is a claim; a DMARC pass (:mod:`.auth`) proves it (the sending
domain vouched for it with an aligned SPF or DKIM pass). With ``holder`` the customer who has the
address as an identity:

| holder has it | DMARC pass (proof)                              | no pass (a claim)                              |
|---------------|-------------------------------------------------|------------------------------------------------|
| nobody        | new customer, identity ``verified``             | new customer, identity unverified (as before)  |
| verified      | joins the holder                                | a customer of its own + a merge suggestion     |
|               |                                                 | (joins, marked, once an agent merged such mail)|
| unverified    | proof wins: a new customer takes the identity,  | joins the holder (a claim on a claim; the      |
|               | ``verified``; the holder gets a merge suggestion| message is marked unauthenticated for agents)  |

"A customer of its own" is the claimant record already filed for this address against this
holder (found through the open or rejected merge suggestion that links them), or a new one
named after the display name. Its messages never reach the holder's conversations: In-Reply-To
and References are public (anyone CC'd, any forwarded copy carries them), so a guessed thread
does not help a forged From. The ``reply+<token>`` address is different: it is a secret sent only
to the holder's mailbox, like a confirmation link, so a reply to it joins the holder's
conversation — unless DMARC explicitly *fails* (the domain says the mail is not its own).

:func:`place` decides in its own short transaction (creating the claimant or prover record and
the merge suggestion), before the message goes to the ingest writer with the customer to use.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.channels.email.auth import AuthVerdict
from frontdesk.customers import service as customers
from frontdesk.customers.merge import prove_identity
from frontdesk.db import Database
from frontdesk.models import Conversation, Customer, Identity, MergeSuggestion
from frontdesk.models.enums import IdentityKind
from frontdesk.models.merge import MergeSuggestionStatus

EVIDENCE_KIND = "email_unauthenticated"


@dataclass(frozen=True, slots=True)
class Placement:
    """Where the message goes. ``customer_id`` None: the ingest writer resolves the identity."""

    # new | new_verified | joined | joined_verified | joined_by_reply_address | joined_by_agent | kept_apart | proved
    outcome: str
    reason: str
    customer_id: uuid.UUID | None = None
    holder_id: uuid.UUID | None = None
    merge_suggestion_id: uuid.UUID | None = None

    def as_meta(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "reason": self.reason,
            "verified_owner_id": str(self.holder_id) if self.holder_id else None,
            "merge_suggestion_id": str(self.merge_suggestion_id) if self.merge_suggestion_id else None,
        }


def _short(address: str) -> str:
    return address if len(address) <= 60 else address[:57] + "..."


def claim_reason(address: str, verdict: AuthVerdict) -> str:
    """The merge suggestion's reason: the same text for the same address and outcome."""
    if verdict.dmarc == "fail":
        return f"From: {_short(address)} failed DMARC"
    return f"From: {_short(address)} not authenticated (dmarc={verdict.dmarc})"


async def place(
    db: Database,
    address: str,
    name: str | None,
    verdict: AuthVerdict,
    *,
    reply_conversation_id: uuid.UUID | None = None,
    message_id: str | None = None,
) -> Placement:
    """Decide (and prepare) the customer for an email from ``address`` (normalised)."""
    async with db.transaction() as s:
        return await _place(s, address, name, verdict, reply_conversation_id, message_id)


async def _holder(session: AsyncSession, address: str) -> tuple[uuid.UUID, uuid.UUID, bool] | None:
    """(identity id, customer id — merges followed —, verified) of the address, if anyone has it."""
    i, c = Identity.__table__.c, Customer.__table__.c
    row = (
        await session.execute(
            select(i.id, i.customer_id, i.verified, c.merged_into_id)
            .join_from(Identity.__table__, Customer.__table__, c.id == i.customer_id)
            .where(i.kind == IdentityKind.email.value, i.value == address)
        )
    ).first()
    if row is None:
        return None
    return row[0], (row[3] or row[1]), bool(row[2])


async def _place(
    session: AsyncSession,
    address: str,
    name: str | None,
    verdict: AuthVerdict,
    reply_conversation_id: uuid.UUID | None,
    message_id: str | None,
) -> Placement:
    proven = verdict.authenticated
    held = await _holder(session, address)
    if held is None:
        if not proven:
            return Placement("new", "a new sender; the From address is not proven")
        created = await _new_customer_with_identity(session, address, name)
        if created is not None:
            return Placement("new_verified", f"DMARC passed for {verdict.domain}: the address is proven", created)
        held = await _holder(session, address)  # someone took it meanwhile: decide against them
        assert held is not None
    _identity_id, holder, verified = held

    if verified:
        if proven:
            return Placement("joined_verified", f"DMARC passed for {verdict.domain}", holder_id=holder)
        if reply_conversation_id is not None and verdict.dmarc != "fail":
            owner = await session.scalar(
                select(Conversation.customer_id).where(Conversation.id == reply_conversation_id)
            )
            if owner == holder:
                return Placement(
                    "joined_by_reply_address",
                    "a reply to the conversation's own reply+ address (sent only to this mailbox)",
                    holder_id=holder,
                )
        if await _agent_merged(session, holder, address):
            return Placement(
                "joined_by_agent",
                "an agent merged earlier unproven mail from this address into this customer; it is still "
                "marked unauthenticated",
                holder_id=holder,
            )
        reason = claim_reason(address, verdict)
        claimant = await _claimant(session, holder, address) or await _new_customer(session, name)
        suggestion = await _suggest(
            session, holder, claimant, reason,
            {"kind": EVIDENCE_KIND, "identity": {"kind": "email", "value": address}, "owned_by": str(holder),
             "claimed_by": str(claimant), "dmarc": verdict.dmarc, "message_id": message_id},
        )  # fmt: skip
        return Placement(
            "kept_apart",
            f"{reason}; the address is verified for another customer, so this mail was kept apart",
            claimant,
            holder,
            suggestion,
        )

    if not proven:
        return Placement("joined", "the From address is not proven (so is the customer's identity)", holder_id=holder)
    # Proof beats a claim (customers.merge.prove_identity, the one rule for every channel): a new
    # customer takes the identity, verified; the old holder gets a merge suggestion.
    prover = await _new_customer(session, name)
    proof = await prove_identity(session, IdentityKind.email.value, address, prover, source="email_dmarc")
    if proof.outcome == "owned":  # proven for someone else meanwhile: their mail, as above
        return Placement("joined_verified", f"DMARC passed for {verdict.domain}", holder_id=proof.holder_id)
    return Placement(
        "proved",
        f"DMARC passed for {verdict.domain}: the address moved, verified, from the customer who only claimed it",
        prover,
        holder,
        proof.suggestion.id if proof.suggestion is not None else None,
    )


async def _new_customer(session: AsyncSession, name: str | None) -> uuid.UUID:
    return (await customers.new_customer_row(session, name=(name or None) and name[:300])).id


async def _new_customer_with_identity(session: AsyncSession, address: str, name: str | None) -> uuid.UUID | None:
    """``None`` when the same address arrived concurrently."""
    return await customers.new_customer_with_identity(
        session, IdentityKind.email.value, address, (name or None) and name[:300]
    )


async def _claimant(session: AsyncSession, holder: uuid.UUID, address: str) -> uuid.UUID | None:
    """The customer earlier unproven mail from ``address`` was filed under, while still apart."""
    ms = MergeSuggestion
    rows = await session.scalars(
        select(ms)
        .where(
            or_(ms.customer_a_id == holder, ms.customer_b_id == holder),
            ms.status.in_([MergeSuggestionStatus.open.value, MergeSuggestionStatus.rejected.value]),
        )
        .order_by(ms.created_at.desc())
        .limit(200)
    )
    for suggestion in rows:
        evidence = suggestion.evidence or {}
        identity = evidence.get("identity") or {}
        if evidence.get("kind") != EVIDENCE_KIND or identity.get("value") != address:
            continue
        other = suggestion.customer_b_id if suggestion.customer_a_id == holder else suggestion.customer_a_id
        row = (
            await session.execute(select(Customer.merged_into_id, Customer.erased_at).where(Customer.id == other))
        ).first()
        if row is not None and row[0] is None and row[1] is None:
            return other
    return None


async def _agent_merged(session: AsyncSession, holder: uuid.UUID, address: str) -> bool:
    """Whether an agent accepted a suggestion to merge unproven mail from ``address`` into ``holder``:
    they decided such mail is this customer's, so it joins them from then on (still marked)."""
    ms = MergeSuggestion
    rows = await session.scalars(
        select(ms.evidence)
        .where(
            or_(ms.customer_a_id == holder, ms.customer_b_id == holder),
            ms.status == MergeSuggestionStatus.accepted.value,
        )
        .order_by(ms.created_at.desc())
        .limit(200)
    )
    return any(
        (e or {}).get("kind") == EVIDENCE_KIND and ((e or {}).get("identity") or {}).get("value") == address
        for e in rows
    )


async def _suggest(
    session: AsyncSession, a: uuid.UUID, b: uuid.UUID, reason: str, evidence: dict[str, Any]
) -> uuid.UUID | None:
    from frontdesk.customers.merge import suggest_merge

    suggestion = await suggest_merge(session, a, b, reason, evidence=evidence)
    return suggestion.id if suggestion is not None else None


__all__ = ["Placement", "claim_reason", "place"]
