"""The service's edge: ``create_app()`` wires settings, routes and middleware; the lifespan loads.

``uvicorn app.main:app`` imports ``app`` below, which reads settings and builds routes but loads
nothing; the model is loaded, warmed up and handed to the batcher in the lifespan, before
uvicorn accepts the first connection. A missing or broken model makes startup fail with the
one-line ModelLoadError message and a non-zero exit (uvicorn exits with status 3).
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.to_thread
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api import health, metrics, model, page, predict
from app.api.handlers import install_exception_handlers
from app.api.limits import UploadLimit
from app.api.model import describe_model
from app.inference import BatchingPredictor, LoadedModel, ModelLoadError, load_model, warm_up
from app.observability import Metrics, RequestObserver, configure_logging
from app.settings import Settings, get_settings

logger = logging.getLogger("app")

DESCRIPTION = """
Classifies a handwritten digit in an uploaded image with a CNN trained on MNIST.

Photos, scans and canvas drawings are normalised the way MNIST's digits were (found, cropped,
inverted if dark on light, scaled to 20 px and centred by mass in 28x28) before the model sees
them. Concurrent requests share model calls (dynamic batching).

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
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = Metrics()
    app.state.model = None
    app.state.predictor = None
    app.state.preprocess_limiter = None
    app.state.ready = False

    install_exception_handlers(app)
    routers = (predict.router, health.router, model.router, metrics.router, page.router)
    for router in routers:
        app.include_router(router)

    # Added innermost first. CORS wraps the upload limit so that a browser can read its 413s;
    # the startup-failure filter ends up outermost.
    app.add_middleware(
        UploadLimit, max_bytes=settings.MAX_UPLOAD_BYTES, path_prefix=predict.router.prefix
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
        route_paths={route.path for router in routers for route in router.routes},
    )
    app.add_middleware(OneLineStartupFailure)
    return app


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load and warm the model, start the batcher; on shutdown, stop taking work and drain."""
    settings: Settings = app.state.settings
    metrics: Metrics = app.state.metrics
    started = time.perf_counter()
    loaded = await anyio.to_thread.run_sync(_load_and_warm_up, settings)
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
                "test_accuracy": describe_model(loaded).test_accuracy,
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
        logger.info("stopped", extra={"fields": {"model_calls": predictor.calls}})


def _load_and_warm_up(settings: Settings) -> LoadedModel:
    loaded = load_model(
        settings.MODEL_DIR, backend=settings.INFERENCE_BACKEND, threads=settings.INFERENCE_THREADS
    )
    warm_up(loaded, settings.BATCH_MAX_SIZE)
    return loaded


class OneLineStartupFailure:
    """Make a failed model load read as its one-line message, not a page of traceback.

    Starlette reports any lifespan exception to the server as the formatted traceback, which
    uvicorn logs before exiting. For a ModelLoadError the message alone says everything
    (what was looked for, how to train a model), so that is what gets reported.
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
            if message["type"] == "lifespan.startup.failed" and isinstance(error, ModelLoadError):
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
