"""Liveness, readiness and metrics endpoints (no authentication; expose them to your monitoring only)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text

from frontdesk import metrics

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="The database (and Redis, if configured) answer", response_model=None)
async def readyz(request: Request) -> JSONResponse:
    checks: dict[str, str] = {}
    ok = True
    try:
        async with request.app.state.db.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        ok = False
        checks["database"] = f"error: {type(exc).__name__}"
    if request.app.state.settings.redis_url:
        try:
            checks["redis"] = "ok" if await request.app.state.hub.ping() else "error"
        except Exception as exc:
            checks["redis"] = f"error: {type(exc).__name__}"
        ok = ok and checks["redis"] == "ok"
    return JSONResponse({"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def prometheus_metrics() -> Response:
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)
