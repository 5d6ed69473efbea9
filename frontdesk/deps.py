"""FastAPI dependencies shared by every router: the unit of work, settings, the realtime hub."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.db import Database, run_after_commit
from frontdesk.settings import Settings

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
            await session.commit()
        except BaseException:
            await session.rollback()
            session.info.pop("after_commit", None)
            raise
        await run_after_commit(session)


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]  # commit before the response
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
