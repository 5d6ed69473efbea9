"""Who is calling: a browser session (cookie + CSRF header) or an API bearer token.

Every route declares the least role it needs with ``Depends(require(Role.agent))`` (or the
ready-made ``AgentDep``/``SupervisorDep``/``AdminDep``); role order is agent < supervisor < admin.
Tokens carry scopes: ``read`` allows safe methods only, ``write`` allows changes too.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk import clock
from frontdesk.auth import cache
from frontdesk.auth.security import constant_time_equal, hash_token
from frontdesk.deps import SessionDep
from frontdesk.errors import Forbidden, Unauthorized
from frontdesk.models import ApiToken, User, UserSession
from frontdesk.models.enums import Role

SESSION_COOKIE = "frontdesk_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ROLE_RANK = {Role.agent: 1, Role.supervisor: 2, Role.admin: 3}
TOKEN_SCOPES = frozenset({"read", "write"})


@dataclass
class Principal:
    """The authenticated caller."""

    user_id: uuid.UUID
    email: str
    name: str
    role: Role
    via: str  # "session" | "token"
    token_id: uuid.UUID | None = None
    scopes: frozenset[str] = field(default_factory=lambda: TOKEN_SCOPES)
    session_id: str | None = None

    def has_role(self, role: Role) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]

    @property
    def actor_kind(self) -> str:
        return "token" if self.via == "token" else "user"


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


async def authenticate(request: Request, session: SessionDep) -> Principal | None:
    """Resolve the caller, or ``None`` when no credentials were sent. Bad credentials raise 401."""
    now = clock.now()
    token = _bearer(request)
    if token is not None:
        return await _token_principal(session, token, now)

    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        srow = (
            await session.execute(
                select(UserSession, User)
                .join(User, User.id == UserSession.user_id)
                .where(UserSession.id == hash_token(cookie))
            )
        ).first()
        if srow is None or srow[0].expires_at <= now or not srow[1].is_active:
            raise Unauthorized("Your session has ended; please sign in again.")
        user_session, user = srow
        if request.method not in SAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER, "")
            if not sent or not constant_time_equal(sent, user_session.csrf_token):
                raise Forbidden(f"Missing or wrong {CSRF_HEADER} header (CSRF protection).")
        if now - user_session.last_seen_at > timedelta(minutes=1):
            settings = request.app.state.settings
            await session.execute(
                update(UserSession)
                .where(UserSession.id == user_session.id)
                .values(last_seen_at=now, expires_at=now + timedelta(hours=settings.session_hours))
            )
        return Principal(
            user_id=user.id,
            email=user.email,
            name=user.name,
            role=Role(user.role),
            via="session",
            session_id=user_session.id,
        )
    return None


async def _token_principal(session: AsyncSession, token: str, now: datetime) -> Principal:
    """Resolve a Bearer token, from the short-lived cache when possible (see auth/cache.py)."""
    token_hash = hash_token(token)
    cached = cache.get(token_hash)
    if cached is not None:
        principal, expires_at = cached
        if expires_at is None or expires_at > now:
            return principal  # type: ignore[no-any-return]
    row = (
        await session.execute(
            select(ApiToken, User).join(User, User.id == ApiToken.user_id).where(ApiToken.token_hash == token_hash)
        )
    ).first()
    if row is None:
        raise Unauthorized("The API token is not valid.", headers={"WWW-Authenticate": "Bearer"})
    api_token, user = row
    if api_token.revoked_at is not None:
        raise Unauthorized("The API token has been revoked.", headers={"WWW-Authenticate": "Bearer"})
    if api_token.expires_at is not None and api_token.expires_at <= now:
        raise Unauthorized("The API token has expired.", headers={"WWW-Authenticate": "Bearer"})
    if not user.is_active:
        raise Unauthorized("The token's user is disabled.", headers={"WWW-Authenticate": "Bearer"})
    if api_token.last_used_at is None or now - api_token.last_used_at > timedelta(minutes=1):
        await session.execute(update(ApiToken).where(ApiToken.id == api_token.id).values(last_used_at=now))
    principal = Principal(
        user_id=user.id,
        email=user.email,
        name=user.name,
        role=Role(user.role),
        via="token",
        token_id=api_token.id,
        scopes=frozenset(api_token.scopes or ()),
    )
    cache.put(token_hash, (principal, api_token.expires_at))
    return principal


OptionalPrincipal = Annotated[Principal | None, Depends(authenticate)]


def require(role: Role = Role.agent):
    """Dependency factory: the caller must be signed in with at least ``role``."""

    async def _dependency(request: Request, principal: OptionalPrincipal) -> Principal:
        if principal is None:
            raise Unauthorized(
                "Sign in or send an API token (Authorization: Bearer …).", headers={"WWW-Authenticate": "Bearer"}
            )
        if not principal.has_role(role):
            raise Forbidden(f"This needs the {role.value} role; you are {principal.role.value}.")
        if principal.via == "token":
            needed = "read" if request.method in SAFE_METHODS else "write"
            if needed not in principal.scopes:
                raise Forbidden(f"This API token lacks the '{needed}' scope.")
        request.state.principal = principal
        return principal

    return _dependency


AgentDep = Annotated[Principal, Depends(require(Role.agent))]
SupervisorDep = Annotated[Principal, Depends(require(Role.supervisor))]
AdminDep = Annotated[Principal, Depends(require(Role.admin))]
