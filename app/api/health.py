"""Health with Kubernetes semantics: live = the process answers, ready = it can classify."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from app.api.deps import NOT_READY, NOT_READY_HEADERS, service_of
from app.schemas import ErrorResponse, Health, Probe

router = APIRouter(prefix="/health", tags=["health"])


@router.get(
    "",
    summary="Overall status, for people and dashboards",
    response_model=Health,
    responses={503: {"model": Health, "description": "Model not loaded (yet, or any more)."}},
)
async def health(request: Request, response: Response) -> Health:
    service = service_of(request)
    ready, loaded = service.ready, service.loaded
    if not ready:
        response.status_code = 503
        response.headers.update(NOT_READY_HEADERS)
    return Health(
        status="ok" if ready else "unavailable",
        model_loaded=loaded is not None,
        model_version=loaded.version if loaded is not None else None,
    )


@router.get("/live", summary="Liveness probe: the process is up", response_model=Probe)
async def live() -> Probe:
    return Probe(status="alive")


@router.get(
    "/ready",
    summary="Readiness probe: the model is loaded and warmed up",
    response_model=Probe,
    responses={503: {"model": ErrorResponse, "description": "Not ready: starting or stopping."}},
)
async def ready(request: Request) -> Probe | JSONResponse:
    if not service_of(request).ready:
        return JSONResponse({"detail": NOT_READY}, status_code=503, headers=NOT_READY_HEADERS)
    return Probe(status="ready")
