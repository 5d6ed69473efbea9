"""Visitors of the web-chat widget: signed visitor tokens, identity verification, pre-chat contact.

- A visitor token is ``v1.<visitor_id>.<sig>``, ``sig`` = base64url HMAC-SHA256 of
  ``webchat-visitor:v1:<visitor_id>`` under a key derived from ``settings.secret()``. A missing
  or badly signed token gets a new visitor; it is never an error.
- Identity verification: a logged-in site passes ``user_id`` and ``user_hash`` = hex
  HMAC-SHA256(user_id, inbox config ``identity_secret``). Compared in constant time; a wrong or
  missing hash (or an inbox without a secret) is a 403. The verified user is the identity
  ``external_id:<user_id>`` (``<identity_namespace>:<user_id>`` when the inbox config sets
  ``identity_namespace``).
- Contact details (pre-chat name/email) are claims, never proofs (the identity rule of
  docs/architecture/one-customer.md): an address nobody has is added to the visitor's customer
  as an *unverified* identity; an address another customer has leaves the visitor where they are
  and makes a merge suggestion (reason :data:`REASON_EMAIL_CLAIMED`). Only a proof joins: the
  link e-mailed to that address (``confirm.py``), or the site's HMAC ``user_hash``.
- A proof beats a claim: a verified user whose external id another customer holds only
  unverified takes it (verified) onto their own customer; the old holder gets a suggestion
  (:data:`REASON_PROOF_TAKES_IDENTITY`). A verified user is never moved onto a claimant's record.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk import clock
from frontdesk.customers import service as customers
from frontdesk.customers.identity import normalise
from frontdesk.customers.merge import prove_identity, suggest_merge
from frontdesk.errors import Forbidden
from frontdesk.models import Conversation, Customer, Identity, Inbox, WebchatVisitor
from frontdesk.models.enums import IdentityKind

TOKEN_VERSION = "v1"
_VISITOR = IdentityKind.webchat_visitor.value
_EXTERNAL = IdentityKind.external_id.value
_EMAIL = IdentityKind.email.value
# Merge-suggestion reason: a visitor gave an address another customer has (a claim, not a proof).
REASON_EMAIL_CLAIMED = "webchat_email_claimed"
# Merge-suggestion reason: a visitor who already chatted signed in as a user another customer is.
REASON_SIGNED_IN = "webchat_signed_in"
PROOF_SOURCE_HMAC = "webchat_hmac"


# -- tokens ---------------------------------------------------------------------------------------


def token_key(secret: str) -> bytes:
    """The visitor-token key, derived so it can never sign anything else."""
    return hmac.new(secret.encode(), b"frontdesk webchat visitor token", hashlib.sha256).digest()


def _sig(key: bytes, visitor_id: uuid.UUID) -> str:
    mac = hmac.new(key, f"webchat-visitor:{TOKEN_VERSION}:{visitor_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def sign_token(key: bytes, visitor_id: uuid.UUID) -> str:
    return f"{TOKEN_VERSION}.{visitor_id}.{_sig(key, visitor_id)}"


def verify_token(key: bytes, token: str | None) -> uuid.UUID | None:
    """The visitor id of a correctly signed token, else ``None``."""
    if not token or len(token) > 200:
        return None
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != TOKEN_VERSION:
        return None
    try:
        visitor_id = uuid.UUID(parts[1])
    except ValueError:
        return None
    if not hmac.compare_digest(parts[2].encode(), _sig(key, visitor_id).encode()):
        return None
    return visitor_id


# -- identity verification ------------------------------------------------------------------------


def user_hash(identity_secret: str, user_id: str) -> str:
    """What a site computes server-side: hex HMAC-SHA256 of ``user_id`` with the identity secret."""
    return hmac.new(identity_secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()


def check_user_hash(inbox: Inbox, user_id: str, given: str | None) -> None:
    """403 unless ``given`` is the right hash of ``user_id`` for this inbox."""
    secret = (inbox.config or {}).get("identity_secret")
    if not isinstance(secret, str) or not secret:
        raise Forbidden("This inbox does not verify user identities (no identity_secret): user_id is refused.")
    if not given or not hmac.compare_digest(given.strip().lower().encode(), user_hash(secret, user_id).encode()):
        raise Forbidden("user_hash does not match user_id: the identity is not verified.")


def external_id_value(inbox: Inbox, user_id: str) -> str:
    namespace = (inbox.config or {}).get("identity_namespace")
    raw = f"{namespace}:{user_id}" if isinstance(namespace, str) and namespace else user_id
    return normalise(_EXTERNAL, raw, field="user_id")


# -- visitors ---------------------------------------------------------------------------------------


async def get_visitor(
    session: AsyncSession, visitor_id: uuid.UUID, inbox_id: uuid.UUID | None = None
) -> WebchatVisitor | None:
    visitor = await session.get(WebchatVisitor, visitor_id)
    if visitor is None or (inbox_id is not None and visitor.inbox_id != inbox_id):
        return None
    return visitor


async def new_visitor(
    session: AsyncSession,
    inbox: Inbox,
    customer: Customer | None = None,
    *,
    max_identities: int = customers.MAX_IDENTITIES,
) -> WebchatVisitor:
    """A new visitor (and, without ``customer``, a new anonymous customer) holding its identity.

    A customer who already holds ``max_identities`` (a signed-in user on very many browsers) gets
    the visitor without the identity: the visitor row alone links the browser to them."""
    visitor_id = uuid.uuid4()  # random, not time-ordered: it is a bearer credential's subject
    if customer is None:
        customer = await customers.new_customer_row(session, attributes={})
        keep_identity = True
    else:
        keep_identity = await customers.count_identities(session, customer.id) < max_identities
    if keep_identity:
        customers.hold_identity(session, customer.id, _VISITOR, str(visitor_id), verified=True)
    visitor = WebchatVisitor(id=visitor_id, inbox_id=inbox.id, customer_id=customer.id)
    session.add(visitor)
    await session.flush()
    return visitor


async def has_history(session: AsyncSession, customer_id: uuid.UUID) -> bool:
    """Whether the customer has any conversation (what makes a silent move unsafe)."""
    return bool(await session.scalar(select(exists().where(Conversation.customer_id == customer_id))))


async def _only_visitor_identities(session: AsyncSession, customer_id: uuid.UUID) -> bool:
    other = await session.scalar(
        select(func.count()).select_from(Identity).where(Identity.customer_id == customer_id, Identity.kind != _VISITOR)
    )
    return not other


async def _movable(session: AsyncSession, customer_id: uuid.UUID) -> bool:
    return not await has_history(session, customer_id) and await _only_visitor_identities(session, customer_id)


async def move_visitor(session: AsyncSession, visitor: WebchatVisitor, to: Customer) -> None:
    """Move a visitor whose customer is empty (see :func:`_movable`) to ``to``.

    Its visitor identities and anonymous events go along; the empty record points at ``to``
    (``merged_into_id``) so anything still holding its id is led to the survivor.
    """
    old_id = visitor.customer_id
    if old_id == to.id:
        return
    await customers.fold_empty_customer(session, old_id, to.id, _VISITOR)
    await session.execute(
        update(WebchatVisitor)
        .where(WebchatVisitor.customer_id == old_id)
        .values(customer_id=to.id)
        .execution_options(synchronize_session=False)
    )
    visitor.customer_id = to.id
    await session.flush()


async def holder_of(session: AsyncSession, kind: str, value: str) -> tuple[Identity, Customer] | None:
    """The identity row ``kind``/``value`` (already normalised) and its (surviving) customer."""
    identity = (await session.scalars(select(Identity).where(Identity.kind == kind, Identity.value == value))).first()
    if identity is None:
        return None
    return identity, await customers.follow_merges(session, await customers.get_customer(session, identity.customer_id))


@dataclass
class ContactOutcome:
    outcome: str  # "added" | "confirm" | "same" | "none"
    customer_id: uuid.UUID
    email: str | None = None  # the address given, normalised
    owner_id: uuid.UUID | None = None  # "confirm": the customer who has that address


async def apply_contact(
    session: AsyncSession,
    visitor: WebchatVisitor,
    *,
    name: str | None = None,
    email: str | None = None,
    max_identities: int = customers.MAX_IDENTITIES,
) -> ContactOutcome:
    """Record the pre-chat name/email of a visitor: claims only (the rules are in the module docstring).

    Outcome ``confirm``: the address is another customer's; the visitor stays on their own
    customer, agents get a merge suggestion, and the address can be proven with an e-mailed link
    (``confirm.request_link``).
    """
    customer = await customers.follow_merges(session, await customers.get_customer(session, visitor.customer_id))
    if customer.id != visitor.customer_id:
        visitor.customer_id = customer.id
    name = (name or "").strip()[:300] or None
    if name and not customer.name:
        customer.name = name
        customer.updated_at = clock.now()
    if not email or not email.strip():
        await session.flush()
        return ContactOutcome("none", customer.id)
    value = normalise(_EMAIL, email, field="email")
    for _ in range(2):
        held = await holder_of(session, _EMAIL, value)
        if held is None:
            if await customers.count_identities(session, customer.id) >= max_identities:
                return ContactOutcome("none", customer.id)  # full: the claim is not kept
            if await customers.claim_identity(session, customer.id, _EMAIL, value, verified=False):
                return ContactOutcome("added", customer.id, value)
            continue  # taken concurrently: treat it as known
        identity, owner = held
        if owner.id == customer.id:
            return ContactOutcome("same", customer.id, value)
        await suggest_merge(
            session,
            customer.id,
            owner.id,
            REASON_EMAIL_CLAIMED,
            evidence={
                "identity": {"kind": _EMAIL, "value": value},
                "owned_by": str(owner.id),
                "claimed_by": str(customer.id),
                "visitor_id": str(visitor.id),
                "owner_verified": identity.verified,
            },
        )
        await session.flush()
        return ContactOutcome("confirm", customer.id, value, owner.id)
    return ContactOutcome("none", customer.id)


async def _verified_customer_of(session: AsyncSession, customer_id: uuid.UUID) -> str | None:
    """The proven site user id of a customer, if any."""
    return await session.scalar(
        select(Identity.value)
        .where(Identity.customer_id == customer_id, Identity.kind == _EXTERNAL, Identity.verified.is_(True))
        .limit(1)
    )


@dataclass
class SessionResult:
    visitor: WebchatVisitor
    token: str
    customer: Customer
    contact: ContactOutcome | None
    new: bool


async def start_session(
    session: AsyncSession,
    inbox: Inbox,
    key: bytes,
    *,
    visitor_token: str | None,
    user_id: str | None = None,
    user_hash_given: str | None = None,
    name: str | None = None,
    email: str | None = None,
    locale: str | None = None,
    max_identities: int = customers.MAX_IDENTITIES,
) -> SessionResult:
    """Resume the visitor of ``visitor_token`` (or make one), verify a user id, record contact details."""
    verified_value: str | None = None
    if user_id is not None:
        check_user_hash(inbox, user_id, user_hash_given)  # 403 before anything is written
        verified_value = external_id_value(inbox, user_id)

    visitor_id = verify_token(key, visitor_token)
    visitor = await get_visitor(session, visitor_id, inbox.id) if visitor_id else None
    created = False
    if verified_value is not None:
        visitor, created = await _join_verified(session, inbox, visitor, verified_value, max_identities)
    if visitor is None:
        visitor, created = await new_visitor(session, inbox), True
    visitor.last_seen_at = clock.now()
    contact = None
    if name or email:
        contact = await apply_contact(session, visitor, name=name, email=email, max_identities=max_identities)
    customer = await customers.follow_merges(session, await customers.get_customer(session, visitor.customer_id))
    if locale and not customer.locale:
        customer.locale = locale[:20]
    await session.flush()
    return SessionResult(visitor, sign_token(key, visitor.id), customer, contact, created)


async def _join_verified(
    session: AsyncSession, inbox: Inbox, visitor: WebchatVisitor | None, value: str, max_identities: int
) -> tuple[WebchatVisitor, bool]:
    """The visitor to use for verified user ``value`` (an external id proven by the HMAC):
    this one when it is (or can become) theirs, else a fresh visitor on the user's customer."""
    held = await holder_of(session, _EXTERNAL, value)
    owner = held[1] if held is not None and held[0].verified else None  # only a proven holder is the user
    if visitor is not None:
        current = await customers.follow_merges(session, await customers.get_customer(session, visitor.customer_id))
        mine = await _verified_customer_of(session, current.id)
        if held is not None and held[1].id == current.id:
            await prove_identity(session, _EXTERNAL, value, current.id, PROOF_SOURCE_HMAC)
            return visitor, False
        if owner is None and mine is None:
            # An anonymous visitor logs in: their customer becomes the user's (taking the id from a
            # customer who merely claimed it, who gets a merge suggestion instead).
            proof = await prove_identity(session, _EXTERNAL, value, current.id, PROOF_SOURCE_HMAC)
            if proof.outcome != "owned":
                return visitor, False
            assert proof.holder_id is not None
            owner = await customers.get_customer(session, proof.holder_id)  # proven concurrently
        elif owner is not None and mine is None:
            if await _movable(session, current.id):
                await move_visitor(session, visitor, owner)
                return visitor, False
            await suggest_merge(
                session,
                current.id,
                owner.id,
                REASON_SIGNED_IN,
                evidence={"identity": {"kind": _EXTERNAL, "value": value}, "visitor_id": str(visitor.id)},
            )
    # Another user on this browser, or no usable visitor: a fresh visitor for the verified user.
    if owner is None:
        fresh = await new_visitor(session, inbox)
        proof = await prove_identity(session, _EXTERNAL, value, fresh.customer_id, PROOF_SOURCE_HMAC)
        if proof.outcome == "owned":
            assert proof.holder_id is not None
            await move_visitor(session, fresh, await customers.get_customer(session, proof.holder_id))
        return fresh, True
    return await new_visitor(session, inbox, owner, max_identities=max_identities), True


def visitor_summary(customer: Customer, email_known: bool) -> dict[str, Any]:
    return {"name": customer.name, "email_known": email_known}


async def email_known(session: AsyncSession, customer_id: uuid.UUID) -> bool:
    return bool(
        await session.scalar(
            select(
                exists().where(
                    Identity.customer_id == customer_id, Identity.kind == _EMAIL, Identity.undeliverable.is_(False)
                )
            )
        )
    )
