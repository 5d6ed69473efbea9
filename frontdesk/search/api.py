"""``GET /api/v1/search``: customers and conversations matching some words (agent+)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from frontdesk.auth.deps import AgentDep
from frontdesk.deps import SessionDep
from frontdesk.openapi import problem as _problem
from frontdesk.search import service
from frontdesk.search.schemas import SearchResults

router = APIRouter(
    tags=["search"],
    responses={
        401: _problem("Not signed in"),
        403: _problem("Role or token scope too low"),
        422: _problem("Nothing to search for (no letter or digit), or a bad parameter"),
    },
)


@router.get("/search", response_model=SearchResults, summary="Search customers and conversations")
async def search(
    session: SessionDep,
    principal: AgentDep,
    q: Annotated[str, Query(min_length=1, max_length=200, description="Words to find (prefixes match).")],
    limit: Annotated[int, Query(ge=1, le=50, description="At most this many customers and conversations.")] = 20,
) -> SearchResults:
    """Customers by name, email, phone (any part of the digits) or external id; conversations by
    subject and by the text of their messages and notes, with a plain-text ``snippet`` around the
    match. Every word must match (as a prefix, case- and accent-insensitive on SQLite;
    case-insensitive on PostgreSQL). Merged-away and erased customers are left out."""
    return await service.search(session, q, limit=limit)
