"""``GET /api/v1/wallboard``: live queue and agent figures for supervisors."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from frontdesk.analytics import wallboard as board
from frontdesk.auth.deps import SupervisorDep
from frontdesk.deps import SessionDep
from frontdesk.openapi import problem as _problem

router = APIRouter(
    tags=["analytics"],
    responses={
        401: _problem("Not signed in"),
        403: _problem("Supervisors and admins only"),
        422: _problem("Unknown time zone"),
    },
)


@router.get("/wallboard", response_model=board.Wallboard, summary="Live queue and agent figures")
async def get_wallboard(
    session: SessionDep,
    principal: SupervisorDep,
    tz: Annotated[str, Query(min_length=1, max_length=64, description="IANA time zone that defines 'today'.")] = "UTC",
) -> board.Wallboard:
    """Per (queue, channel): waiting now, longest wait, answered and abandoned today and today's
    service level against the queue's target; every active agent and supervisor with presence and
    load. The definitions are in ``docs/architecture/wallboard.md``."""
    return await board.wallboard(session, tz)
