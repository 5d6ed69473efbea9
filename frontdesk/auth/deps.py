"""Who is calling: a browser session (cookie + CSRF header) or an API bearer token.

Every route declares the least role it needs with ``Depends(require(Role.agent))`` (or the
ready-made ``AgentDep``/``SupervisorDep``/``AdminDep``); role order is agent < supervisor < admin.
Tokens carry scopes: ``read`` allows safe methods only, ``write`` allows changes too.
"""

from __future__ import annotations

import asyncio
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
from frontdesk.db import Database
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
    expires_at: datetime | None = None  # when the API token expires (None: never, or a session)

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


async def authenticate(request: Request) -> Principal | None:
    """Resolve the caller, or ``None`` when no credentials were sent. Bad credentials raise 401."""
    return await resolve_credentials(
        request.app.state.db,
        token=_bearer(request),
        cookie=request.cookies.get(SESSION_COOKIE),
        unsafe=request.method not in SAFE_METHODS,
        csrf=request.headers.get(CSRF_HEADER, ""),
        session_hours=request.app.state.settings.session_hours,
    )


async def resolve_credentials(
    db: Database,
    *,
    token: str | None = None,
    cookie: str | None = None,
    unsafe: bool = False,
    csrf: str = "",
    session_hours: int = 12,
) -> Principal | None:
    """Who a Bearer token or a session cookie belongs to (HTTP routes and the WebSocket alike).

    Authentication keeps its own short unit of work (a token's ``last_used_at``, a session's
    sliding expiry), separate from the request's, and a cached token needs no database at all:
    the hot inbound path pays for neither a session nor a connection. ``unsafe`` requests
    authenticated by cookie must carry the CSRF token.
    """
    now = clock.now()
    if token is not None:
        token_hash = hash_token(token)
        cached = _cached_token_principal(token_hash, now)
        if cached is not None:
            return cached
        return await _look_up_token(db, token_hash, now)
    if cookie:
        async with db.transaction() as session:
            return await _session_principal(session, cookie, now, unsafe=unsafe, csrf=csrf, hours=session_hours)
    return None


async def _session_principal(
    session: AsyncSession, cookie: str, now: datetime, *, unsafe: bool, csrf: str, hours: int
) -> Principal:
    """Resolve a browser session cookie; unsafe methods must carry the CSRF header."""
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
    if unsafe and (not csrf or not constant_time_equal(csrf, user_session.csrf_token)):
        raise Forbidden(f"Missing or wrong {CSRF_HEADER} header (CSRF protection).")
    if now - user_session.last_seen_at > timedelta(minutes=1):
        await session.execute(
            update(UserSession)
            .where(UserSession.id == user_session.id)
            .values(last_seen_at=now, expires_at=now + timedelta(hours=hours))
        )
    return Principal(
        user_id=user.id,
        email=user.email,
        name=user.name,
        role=Role(user.role),
        via="session",
        session_id=user_session.id,
    )


def _cached_token_principal(token_hash: str, now: datetime) -> Principal | None:
    """A token resolved in the last few seconds (see auth/cache.py), unless it has expired since."""
    cached = cache.get(token_hash)
    if cached is None:
        return None
    principal, expires_at = cached
    if expires_at is not None and expires_at <= now:
        return None
    return principal  # type: ignore[no-any-return]


# Lookups in flight, per (database, token hash, cache generation): when a token's cache entry runs
# out, the concurrent requests carrying it (64 on the benchmark) share one database lookup instead
# of making one each. The cache generation is part of the key, so a request that comes after a
# credential change (which empties the cache, auth/revocation.py) never joins a lookup that began
# before it: revocation still takes effect at once.
_in_flight: dict[tuple[int, str, int], asyncio.Future[Principal]] = {}


async def _look_up_token(db: Database, token_hash: str, now: datetime) -> Principal:
    since = cache.generation()
    key = (id(db), token_hash, since)
    shared = _in_flight.get(key)
    if shared is None:

        async def look_up() -> Principal:
            async with db.transaction() as session:
                principal = await _token_principal(session, token_hash, now)
            cache.put(token_hash, (principal, principal.expires_at), since)
            return principal

        def forget(done: asyncio.Future[Principal]) -> None:
            _in_flight.pop(key, None)
            if not done.cancelled():
                done.exception()  # retrieved: every caller may have gone before it ended

        shared = _in_flight[key] = asyncio.ensure_future(look_up())
        shared.add_done_callback(forget)
    # shield: one caller going away (a client that disconnects) does not cancel the others' answer.
    return await asyncio.shield(shared)


async def _token_principal(session: AsyncSession, token_hash: str, now: datetime) -> Principal:
    """Resolve a Bearer token (by its hash) from the database; the caller caches it once committed."""
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
        expires_at=api_token.expires_at,
    )
    return principal


OptionalPrincipal = Annotated[Principal | None, Depends(authenticate)]


def require(role: Role = Role.agent):
    """Dependency factory: the caller must be signed in with at least ``role``."""

    async def _dependency(request: Request) -> Principal:
        principal = await authenticate(request)  # called directly: one dependency level less per request
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
