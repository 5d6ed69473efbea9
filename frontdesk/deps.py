"""FastAPI dependencies shared by every router: the unit of work, settings, the realtime hub."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.db import Database, discard_pending, run_after_commit, run_before_commit
from frontdesk.errors import ServiceUnavailable
from frontdesk.settings import Settings
from frontdesk.storage import AttachmentStore, StorageError, app_store

if TYPE_CHECKING:
    from frontdesk.realtime import Hub


async def get_db(request: Request) -> Database:
    return request.app.state.db  # type: ignore[no-any-return]


async def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


async def get_hub(request: Request) -> Hub:
    return request.app.state.hub  # type: ignore[no-any-return]


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's unit of work: committed when the endpoint returns, rolled back on error.

    After-commit effects (realtime pushes, outbox wake-ups) run once the commit succeeded.
    The commit happens before the response is sent, so a 2xx means the data is durable.
    """
    db: Database = request.app.state.db
    async with db.sessionmaker() as session:
        try:
            yield session
            await run_before_commit(session)
            await session.commit()
        except BaseException:
            await session.rollback()
            discard_pending(session)
            raise
        await run_after_commit(session)


def store_of(request: Request) -> AttachmentStore:
    """The app's attachment store; 503 when its backend is misconfigured."""
    try:
        return app_store(request.app.state)
    except StorageError as exc:
        raise ServiceUnavailable(f"The attachment store is not configured: {exc}") from exc


async def get_store(request: Request) -> AttachmentStore:
    return store_of(request)


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]  # commit before the response
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
StoreDep = Annotated[AttachmentStore, Depends(get_store)]
