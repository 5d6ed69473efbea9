"""Canned responses: who may see and change them, and rendering their variables.

Global ones are for everyone and only admins change them; personal ones belong to one user
(their owner or an admin changes them). Rendering is plain text substitution of a closed set of
``{{variables}}`` — values are inserted as they are and never scanned again, so a customer whose
name reads ``{{agent.name}}`` stays just that.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.audit import service as audit
from frontdesk.auth.deps import Principal
from frontdesk.conversations.schemas import CannedCreate, CannedRendered, CannedUpdate
from frontdesk.db import flush_or_conflict, folded, get_or_404
from frontdesk.errors import Conflict, Forbidden, Invalid, NotFound
from frontdesk.models import CannedResponse, Conversation, Customer, Identity, User
from frontdesk.models.enums import IdentityKind, Role

GLOBAL, PERSONAL = "global", "personal"
MAX_LISTED = 500
_VARIABLE = re.compile(r"\{\{\s*([A-Za-z0-9_.\-]{1,200})\s*\}\}")


def _visible(principal: Principal) -> Any:
    return or_(
        CannedResponse.scope == GLOBAL,
        (CannedResponse.scope == PERSONAL) & (CannedResponse.owner_id == principal.user_id),
    )


def _may_change(principal: Principal, canned: CannedResponse) -> bool:
    if principal.has_role(Role.admin):
        return True
    return canned.scope == PERSONAL and canned.owner_id == principal.user_id


async def list_canned(session: AsyncSession, principal: Principal, q: str | None = None) -> list[CannedResponse]:
    """Global responses and the caller's personal ones; ``q`` keeps those whose shortcut or title
    starts with it (case-insensitive). Personal first where a shortcut exists in both."""
    stmt = select(CannedResponse).where(_visible(principal))
    if q and "\x00" in q:
        raise Invalid("q must not contain NUL characters", field="q")
    if q and q.strip():
        term = q.strip().lstrip("/").casefold()
        stmt = stmt.where(
            or_(
                CannedResponse.shortcut.startswith(term, autoescape=True),
                folded(session, CannedResponse.title).startswith(term, autoescape=True),
            )
        )
    stmt = stmt.order_by(CannedResponse.shortcut, CannedResponse.scope.desc(), CannedResponse.id).limit(MAX_LISTED)
    return list((await session.scalars(stmt)).all())


async def get_canned(session: AsyncSession, principal: Principal, canned_id: uuid.UUID) -> CannedResponse:
    """A response the caller may see (global or their own; admins see all), else 404."""
    canned = await get_or_404(session, CannedResponse, canned_id, "canned response")
    if canned.scope == PERSONAL and canned.owner_id != principal.user_id and not principal.has_role(Role.admin):
        raise NotFound(f"No canned response with id {canned_id}.")
    return canned


async def _check_shortcut(
    session: AsyncSession, scope: str, owner_id: uuid.UUID | None, shortcut: str, exclude: uuid.UUID | None = None
) -> None:
    stmt = select(CannedResponse.id).where(CannedResponse.scope == scope, CannedResponse.shortcut == shortcut)
    stmt = stmt.where(CannedResponse.owner_id == owner_id) if owner_id is not None else stmt
    if exclude is not None:
        stmt = stmt.where(CannedResponse.id != exclude)
    if await session.scalar(stmt) is not None:
        raise Conflict(_taken(scope, shortcut))


def _taken(scope: str, shortcut: str) -> str:
    whose = "a global" if scope == GLOBAL else "one of your"
    return f"The shortcut '{shortcut}' is already used by {whose} canned responses."


async def create_canned(session: AsyncSession, principal: Principal, data: CannedCreate) -> CannedResponse:
    if data.scope == GLOBAL and not principal.has_role(Role.admin):
        raise Forbidden("Only an admin may create global canned responses; create a personal one instead.")
    owner_id = principal.user_id if data.scope == PERSONAL else None
    await _check_shortcut(session, data.scope, owner_id, data.shortcut)
    canned = CannedResponse(
        shortcut=data.shortcut, title=data.title, body=data.body, scope=data.scope, owner_id=owner_id
    )
    session.add(canned)
    await flush_or_conflict(session, _taken(data.scope, data.shortcut))
    await audit.record(
        session, principal, "canned_response.created", "canned_response", canned.id,
        {"shortcut": canned.shortcut, "scope": canned.scope},
    )  # fmt: skip
    return canned


async def update_canned(
    session: AsyncSession, principal: Principal, canned_id: uuid.UUID, data: CannedUpdate
) -> CannedResponse:
    canned = await get_canned(session, principal, canned_id)
    if not _may_change(principal, canned):
        raise Forbidden("Only an admin may change global canned responses.")
    changes = {k: v for k, v in data.model_dump(exclude_unset=True).items() if v is not None}
    if "shortcut" in changes and changes["shortcut"] != canned.shortcut:
        await _check_shortcut(session, canned.scope, canned.owner_id, changes["shortcut"], exclude=canned.id)
    for key, value in changes.items():
        setattr(canned, key, value)
    await flush_or_conflict(session, _taken(canned.scope, canned.shortcut))
    if changes:
        await audit.record(
            session, principal, "canned_response.updated", "canned_response", canned.id, {"fields": sorted(changes)}
        )
    return canned


async def delete_canned(session: AsyncSession, principal: Principal, canned_id: uuid.UUID) -> None:
    canned = await get_canned(session, principal, canned_id)
    if not _may_change(principal, canned):
        raise Forbidden("Only an admin may delete global canned responses.")
    await session.delete(canned)
    await session.flush()
    await audit.record(
        session, principal, "canned_response.deleted", "canned_response", canned.id, {"shortcut": canned.shortcut}
    )


# -- rendering -------------------------------------------------------------------------------------


def _first_name(name: str | None) -> str | None:
    parts = (name or "").split()
    return parts[0] if parts else None


def _scalar(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        text = str(value)
        return text if text.strip() else None
    return None


def _attribute(attributes: dict[str, Any], key: str) -> str | None:
    if key in attributes:
        return _scalar(attributes[key])
    node: Any = attributes  # a dotted path into nested objects
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return _scalar(node)


async def _identity(session: AsyncSession, customer_id: uuid.UUID, kind: IdentityKind) -> str | None:
    value: str | None = await session.scalar(
        select(Identity.value)
        .where(Identity.customer_id == customer_id, Identity.kind == kind.value, Identity.undeliverable.is_(False))
        .order_by(Identity.verified.desc(), Identity.created_at, Identity.id)
        .limit(1)
    )
    return value


def substitute(body: str, values: dict[str, str | None], attributes: dict[str, Any]) -> CannedRendered:
    """Replace each ``{{name}}`` in ``body`` by its value; unknown or empty ones become '' and are listed."""
    missing: list[str] = []

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("customer.attributes.") and len(name) > len("customer.attributes."):
            value = _attribute(attributes, name[len("customer.attributes.") :])
        else:
            value = values.get(name)
        if value is None or not value.strip():
            if name not in missing:
                missing.append(name)
            return ""
        return value

    return CannedRendered(text=_VARIABLE.sub(replace, body), missing=missing)


async def render(
    session: AsyncSession, principal: Principal, conversation_id: uuid.UUID, canned_id: uuid.UUID
) -> CannedRendered:
    """``canned_id``'s body filled in for ``conversation_id`` and the calling agent."""
    conversation = await get_or_404(session, Conversation, conversation_id, "conversation")
    canned = await get_canned(session, principal, canned_id)
    customer = await session.get(Customer, conversation.customer_id)
    agent = await session.get(User, principal.user_id)
    customer_name = customer.name if customer is not None else None
    agent_name = agent.name if agent is not None else principal.name
    needed = set(_VARIABLE.findall(canned.body))
    values: dict[str, str | None] = {
        "customer.name": customer_name,
        "customer.first_name": _first_name(customer_name),
        "agent.name": agent_name,
        "agent.first_name": _first_name(agent_name),
        "conversation.id": str(conversation.id),
        "conversation.subject": conversation.subject,
    }
    if "customer.email" in needed:
        values["customer.email"] = await _identity(session, conversation.customer_id, IdentityKind.email)
    if "customer.phone" in needed:
        values["customer.phone"] = await _identity(session, conversation.customer_id, IdentityKind.phone)
    attributes = customer.attributes if customer is not None and isinstance(customer.attributes, dict) else {}
    return substitute(canned.body, values, attributes)
