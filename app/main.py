"""The service's edge: ``create_app()`` wires settings, routes and middleware; the lifespan loads.

``uvicorn app.main:app`` imports ``app`` below, which reads settings and builds routes but loads
nothing; the lifespan starts the app's ``DigitService`` (model loaded, warmed up and handed to
the batcher) before uvicorn accepts the first connection. A missing or broken model makes startup fail with the
one-line ModelLoadError message and a non-zero exit (uvicorn exits with status 3); so do
operating points that do not fit together (InvalidOperatingPoints).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api import health, metrics, model, oip, page, predict, read, tfserving
from app.api.handlers import install_exception_handlers
from app.api.limits import UploadLimit
from app.observability.logs import configure_logging
from app.observability.metrics import Metrics
from app.observability.middleware import RequestObserver
from app.runtime.loading import ModelLoadError
from app.schemas import restore_null_digits
from app.service import DigitService
from app.settings import Settings, get_settings
from app.verdicts import InvalidOperatingPoints

logger = logging.getLogger("app")

DESCRIPTION = """
Classifies a handwritten digit in an uploaded image with a CNN trained on MNIST.

Photos, scans and canvas drawings are normalised the way MNIST's digits were (found, cropped,
inverted if dark on light, scaled to 20 px and centred by mass in 28x28) before the model sees
them. Concurrent requests share model calls (dynamic batching).

Every answer says how sure it is: `verdict` is `digit`, `uncertain` (with the three most
probable digits) or `not_a_digit` (then `digit` is null), judged on the model's calibrated
probability of its best guess against the operating points `/model` shows.

Errors are always JSON `{"detail": "..."}` with the status listed under each route.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """A new app with its own settings, metrics registry and (once started) model.

    Tests pass ``settings`` directly rather than overriding a dependency because the lifespan,
    which is not a request, needs them too.
    """
    settings = settings or get_settings()
    configure_logging(settings.LOG_LEVEL, settings.LOG_FORMAT)
    app = FastAPI(
        title="MNIST digit recognition",
        version="0.2.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    service = DigitService(settings, Metrics())
    app.state.service = service  # the only thing on app.state

    _keep_null_digits_in_openapi(app)
    install_exception_handlers(app)
    # In the order FastAPI tries them for every request (0.165 walks each router's routes in
    # Python, a few microseconds per route passed): the prediction routes first.
    routers = (
        predict.router,
        read.router,
        oip.router,
        tfserving.router,
        health.router,
        model.router,
        metrics.router,
        page.router,
    )
    for router in routers:
        app.include_router(router)

    # Added innermost first. CORS wraps the upload limit so that a browser can read its 413s;
    # the startup-failure filter ends up outermost.
    app.add_middleware(
        UploadLimit,
        max_bytes=settings.MAX_UPLOAD_BYTES,
        path_prefixes=(
            predict.router.prefix,
            read.router.prefix,
            oip.router.prefix,
            tfserving.router.prefix,
        ),
    )
    if settings.CORS_ORIGINS:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.CORS_ORIGINS,
            allow_methods=["GET", "POST"],
            allow_headers=["*"],
            expose_headers=["Retry-After", "X-Request-ID"],
        )
    app.add_middleware(
        RequestObserver,
        metrics=service.metrics,
        access_log=settings.ACCESS_LOG,
        route_paths={getattr(route, "path", "") for router in routers for route in router.routes},
    )
    app.add_middleware(OneLineStartupFailure)
    return app


def _keep_null_digits_in_openapi(app: FastAPI) -> None:
    """/openapi.json (and so /docs) with the not_a_digit examples' ``"digit": null`` kept."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            restore_null_digits(generate())  # FastAPI caches what it made in openapi_schema
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start the service (load, warm up, start the batcher); on shutdown, stop and drain."""
    service: DigitService = app.state.service
    await service.start()
    try:
        yield
    finally:
        await service.stop()


ONE_LINE_FAILURES = (ModelLoadError, InvalidOperatingPoints)
"""Startup failures whose message says everything: reported without their traceback."""


class OneLineStartupFailure:
    """Make a failed model load read as its one-line message, not a page of traceback.

    Starlette reports any lifespan exception to the server as the formatted traceback, which
    uvicorn logs before exiting. For a ModelLoadError the message alone says everything
    (what was looked for, how to train a model), and so it does for operating points that do
    not fit together (which value came from where), so that is what gets reported.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def send_one_line(message: Message) -> None:
            # Starlette sends this from inside its ``except`` block: the error is in flight.
            error = sys.exception()
            failed = message["type"] == "lifespan.startup.failed"
            if failed and isinstance(error, ONE_LINE_FAILURES):
                message = {**message, "message": f"Cannot start: {error}"}
            await send(message)

        await self.app(scope, receive, send_one_line)


def main() -> None:
    """``python -m app.main``: serve on HOST:PORT with uvicorn (one worker, uvloop, httptools)."""
    import uvicorn

    settings = get_settings()
    uvicorn.run(
        app,
        host=settings.HOST,
        port=settings.PORT,
        log_config=None,  # create_app() configures logging itself
        access_log=False,  # RequestObserver writes one line per request
        lifespan="on",
    )


app = create_app()

if __name__ == "__main__":
    main()
