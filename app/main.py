"""The service's edge: ``create_app()`` wires settings, routes and middleware; the lifespan loads.

``uvicorn app.main:app`` imports ``app`` below, which reads settings and builds routes but loads
nothing; the model is loaded, warmed up and handed to the batcher in the lifespan, before
uvicorn accepts the first connection. A missing or broken model makes startup fail with the
one-line ModelLoadError message and a non-zero exit (uvicorn exits with status 3); so do
operating points that do not fit together (InvalidOperatingPoints).
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.to_thread
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from prometheus_client import multiprocess
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api import health, metrics, model, oip, page, predict, read, tfserving
from app.api.handlers import install_exception_handlers
from app.api.limits import UploadLimit
from app.api.model import describe_model
from app.inference import BatchingPredictor, LoadedModel, ModelLoadError, load_model, warm_up
from app.observability.logs import configure_logging
from app.observability.metrics import Metrics
from app.observability.middleware import RequestObserver
from app.schemas import restore_null_digits
from app.settings import Settings, get_settings
from app.verdicts import InvalidOperatingPoints, OperatingPoints, resolve_operating_points

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
    app.state.settings = settings
    app.state.metrics = Metrics()
    app.state.model = None
    app.state.predictor = None
    app.state.preprocess_limiter = None
    app.state.operating_points = None
    app.state.ready = False

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
        metrics=app.state.metrics,
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
    """Load and warm the model, start the batcher; on shutdown, stop taking work and drain."""
    settings: Settings = app.state.settings
    metrics: Metrics = app.state.metrics
    started = time.perf_counter()
    loaded, operating_points = await anyio.to_thread.run_sync(_load_and_warm_up, settings)
    predictor = BatchingPredictor(
        loaded.predict,
        max_batch_size=settings.BATCH_MAX_SIZE,
        max_wait_s=settings.batch_max_wait_s,
        queue_max=settings.QUEUE_MAX,
        on_batch=metrics.observe_batch,
    )
    await predictor.start()
    # TensorFlow leaves ~340,000 Python objects behind; each full collection walked them all,
    # 150-200 ms with the event loop stopped: that was the service's p99 under load. They live
    # as long as the process, so move them out of the collector's sight once, after loading.
    gc.collect()
    gc.freeze()
    # Big uploads are decoded in threads; one per core is all that can run at once, and more
    # would only hold more decoded photos in memory while competing with the model's thread.
    app.state.preprocess_limiter = anyio.CapacityLimiter(os.cpu_count() or 1)
    app.state.model = loaded
    app.state.predictor = predictor
    app.state.operating_points = operating_points
    app.state.ready = True
    metrics.set_model(loaded.version, str(loaded.metadata.get("arch", "unknown")))
    metrics.model_ready.set(1)
    logger.info(
        "model ready",
        extra={
            "fields": {
                "model_version": loaded.version,
                "model_path": str(loaded.path),
                "backend": loaded.backend,
                "test_accuracy": describe_model(loaded, operating_points).test_accuracy,
                "not_a_digit_below": operating_points.not_a_digit_below,
                "uncertain_below": operating_points.uncertain_below,
                "operating_points_from": operating_points.source,
                "startup_ms": round((time.perf_counter() - started) * 1000, 1),
            }
        },
    )
    try:
        yield
    finally:
        app.state.ready = False
        metrics.model_ready.set(0)
        await predictor.stop()
        if settings.PROMETHEUS_MULTIPROC_DIR is not None:
            # Its live gauges leave the sum; its counters stay, as prometheus_client intends.
            multiprocess.mark_process_dead(os.getpid(), str(settings.PROMETHEUS_MULTIPROC_DIR))
        logger.info("stopped", extra={"fields": {"model_calls": predictor.calls}})


def _load_and_warm_up(settings: Settings) -> tuple[LoadedModel, OperatingPoints]:
    loaded = load_model(
        settings.MODEL_DIR, backend=settings.INFERENCE_BACKEND, threads=settings.INFERENCE_THREADS
    )
    # Resolved before the warm-up: settings that do not fit the model fail startup at once.
    points = resolve_operating_points(
        loaded.metadata,
        not_a_digit_below=settings.NOT_A_DIGIT_BELOW,
        uncertain_below=settings.UNCERTAIN_BELOW,
    )
    warm_up(loaded, settings.BATCH_MAX_SIZE)
    return loaded, points


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
