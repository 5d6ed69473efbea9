"""Users, API tokens and the headers that act as them; teams; signing in over HTTP."""

from __future__ import annotations

import uuid
from typing import Any

from frontdesk.auth.security import hash_password, hash_token, new_secret_token
from frontdesk.db import Database
from frontdesk.models import ApiToken, Team, User

DEFAULT_PASSWORD = "correct horse battery staple"


async def make_user(
    db: Database,
    *,
    role: str = "agent",
    email: str | None = None,
    name: str = "Test User",
    password: str = DEFAULT_PASSWORD,
) -> User:
    async with db.transaction() as s:
        user = User(
            email=email or f"{role}-{uuid.uuid4().hex[:8]}@example.com",
            name=name,
            role=role,
            password_hash=hash_password(password),
        )
        s.add(user)
    return user


async def make_token(db: Database, user: User, scopes: list[str] | None = None) -> str:
    token = new_secret_token()
    async with db.transaction() as s:
        s.add(
            ApiToken(
                user_id=user.id,
                name="test",
                token_hash=hash_token(token),
                prefix=token[:8],
                scopes=scopes or ["read", "write"],
            )
        )
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def token_headers(db: Database, user: User, scopes: list[str] | None = None) -> dict[str, str]:
    """Headers carrying a fresh API token of ``user``."""
    return bearer(await make_token(db, user, scopes))


async def agent(app: Any, role: str = "agent", name: str = "Test User") -> tuple[User, dict[str, str]]:
    """A user with ``role`` and the headers that act as them."""
    user = await make_user(app.state.db, role=role, name=name)
    return user, await token_headers(app.state.db, user)


async def auth_headers(
    app: Any, role: str = "agent", scopes: list[str] | None = None, name: str = "Test User"
) -> dict[str, str]:
    """Create a user with ``role`` and return headers carrying a fresh API token for them."""
    user = await make_user(app.state.db, role=role, name=name)
    return await token_headers(app.state.db, user, scopes)


async def make_team(db: Database, name: str | None = None) -> Team:
    async with db.transaction() as s:
        team = Team(name=name or f"team-{uuid.uuid4().hex[:6]}")
        s.add(team)
    return team
