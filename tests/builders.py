"""Small builders for test data. They go through the real services where one exists."""

from __future__ import annotations

import uuid
from typing import Any

from frontdesk.auth.security import hash_password, hash_token, new_secret_token
from frontdesk.db import Database
from frontdesk.models import ApiToken, User

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


async def auth_headers(app: Any, role: str = "agent", scopes: list[str] | None = None) -> dict[str, str]:
    """Create a user with ``role`` and return headers carrying a fresh API token for them."""
    db: Database = app.state.db
    user = await make_user(db, role=role)
    return {"Authorization": f"Bearer {await make_token(db, user, scopes)}"}
