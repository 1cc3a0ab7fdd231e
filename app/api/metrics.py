"""GET /metrics in the Prometheus text format: this app's registry, or all workers' together."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from app.api.deps import service_of

router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Text exposition."}},
)
async def metrics(request: Request) -> Response:
    return Response(service_of(request).exposition(), media_type=CONTENT_TYPE_LATEST)
