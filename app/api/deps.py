"""What routes need from the running app, as ``Annotated`` dependencies.

``app.state.service`` (a ``DigitService``, owned by the lifespan) is the only thing on
``app.state``. Until the service is ready the service dependency raises NotReady, answered
503 with ``Retry-After``, so a request racing startup (or shutdown) gets a clear "not ready".
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.service import DigitService

NOT_READY = "The model is not loaded yet; retry shortly."
RETRY_AFTER_S = 1
NOT_READY_HEADERS = {"Retry-After": str(RETRY_AFTER_S)}

# Every dependency is ``async def`` although none awaits: FastAPI runs plain ``def``
# dependencies in its thread pool, and a thread hop per dependency per request costs more CPU
# than the model call. The prediction routes take one dependency, not several: FastAPI spends
# introspection time per dependency per request.


def service_of(request: Request) -> DigitService:
    """The app's service, ready or not (for /health, which reports either)."""
    service: DigitService = request.app.state.service
    return service


async def get_service(request: Request) -> DigitService:
    """The app's service once it is ready; before and while stopping its NotReady is
    answered 503 with Retry-After (``app.api.handlers``)."""
    service = service_of(request)
    service.check_ready()
    return service


ServiceDep = Annotated[DigitService, Depends(get_service)]
