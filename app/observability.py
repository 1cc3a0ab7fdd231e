"""Prometheus metrics and structured logs: what an operator sees of the running service.

Each app gets its own ``CollectorRegistry`` (no process-global metrics), so tests can build
many apps in one process and ``/metrics`` shows exactly one app's numbers. With several uvicorn
workers, ``PROMETHEUS_MULTIPROC_DIR`` switches on prometheus_client's own multiprocess mode:
every worker's values go to files there and ``/metrics`` reads them all (``exposition``).
"""

from __future__ import annotations

import logging
import sys
import time
import uuid
from collections.abc import Collection, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.verdicts import Judgement, Verdict

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
NUMBER_LENGTH_BUCKETS = (0, 1, 2, 3, 4, 5, 6, 8, 10, 15, 20)
LOG_FIELDS_KEY = "app.log_fields"
"""Scope key under which a route leaves fields for its request's log line."""
REQUEST_STARTED_KEY = "app.request_started"
"""Scope key holding ``time.perf_counter()`` at the request's arrival."""
REQUEST_ID_KEY = "app.request_id"
"""Scope key holding the request's id: the X-Request-ID it was sent with or the one it got."""

access_logger = logging.getLogger("app.access")


class Metrics:
    """The service's Prometheus collectors, registered on a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ("method", "route", "status")
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests by method, route template and status code.",
            labels,
            registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Time from the request's arrival to the end of its response.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "mnist_predictions_total",
            "Images classified, by verdict and digit (the best guess; `none` for not_a_digit).",
            ("digit", "verdict"),
            registry=self.registry,
        )
        self.model_info = Gauge(
            "mnist_model_info",
            "The served model: 1 for the loaded version.",
            ("version", "arch"),
            registry=self.registry,
            multiprocess_mode="max",
        )
        self.model_ready = Gauge(
            "mnist_model_ready",
            "1 once the model is loaded and warmed up, 0 before and while shutting down.",
            registry=self.registry,
            multiprocess_mode="livemin",  # with several workers: 1 when every live one is ready
        )
        self.batch_size = Histogram(
            "mnist_inference_batch_size",
            "Images per model call (dynamic batching).",
            buckets=BATCH_SIZE_BUCKETS,
            registry=self.registry,
        )
        self.batch_latency = Histogram(
            "mnist_inference_batch_duration_seconds",
            "Duration of one model call on the worker thread.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queued = Gauge(
            "mnist_inference_queued_images",
            "Images waiting for a model call.",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.rejected = Counter(
            "mnist_inference_rejected_total",
            "Requests refused with 503 because the inference queue was full.",
            registry=self.registry,
        )
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        # Children created up front so every series is exported, at 0, before its first hit,
        # and a prediction costs a dict lookup, not labels(): 10 digits x {digit, uncertain},
        # and one `none` each for not_a_digit and several_digits (which name no digit).
        self._predictions: dict[tuple[Verdict, int | None], Any] = {
            (verdict, digit): self.predictions.labels(digit=str(digit), verdict=verdict.value)
            for verdict in (Verdict.digit, Verdict.uncertain)
            for digit in range(10)
        }
        for verdict in (Verdict.not_a_digit, Verdict.several_digits):
            self._predictions[verdict, None] = self.predictions.labels(
                digit="none", verdict=verdict.value
            )
        self.numbers = Counter(
            "mnist_numbers_total",
            "Numbers read by POST /read, by verdict (number, uncertain, no_number).",
            ("verdict",),
            registry=self.registry,
        )
        self.number_digits = Histogram(
            "mnist_number_digits",
            "Digits read per POST /read.",
            buckets=NUMBER_LENGTH_BUCKETS,
            registry=self.registry,
        )

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        # ``labels()`` takes a lock and builds its key on every call; the children are kept.
        key = (method, route, status)
        children = self._request_children.get(key)
        if children is None:
            labels = (method, route, str(status))
            children = self.requests.labels(*labels), self.latency.labels(*labels)
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def count_predictions(self, judgements: Iterable[Judgement]) -> None:
        for judged in judgements:
            self._predictions[judged.verdict, judged.digit].inc()

    def count_number(self, verdict: str, digits: int) -> None:
        self.numbers.labels(verdict=verdict).inc()
        self.number_digits.observe(digits)

    def observe_batch(self, images: int, seconds: float) -> None:
        self.batch_size.observe(images)
        self.batch_latency.observe(seconds)

    def set_model(self, version: str, arch: str) -> None:
        self.model_info.clear()
        self.model_info.labels(version=version, arch=arch).set(1)

    def exposition(self, multiprocess_dir: Path | None) -> bytes:
        """The text format: this registry's, or every worker's from ``multiprocess_dir``."""
        if multiprocess_dir is None:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged, path=str(multiprocess_dir))
        return generate_latest(merged)


class RequestObserver:
    """ASGI middleware: one metrics sample and one log line per HTTP request.

    Pure ASGI rather than ``BaseHTTPMiddleware``: it adds a few microseconds per request
    instead of a task and a memory stream. The route label is the matched path template
    (``/predict``), never the raw path, so a scanner cannot blow up the label cardinality.
    """

    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics,
        *,
        access_log: bool = True,
        route_paths: Collection[str] = (),
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log
        self.route_paths = frozenset(path for path in route_paths if "{" not in path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        scope[REQUEST_STARTED_KEY] = started
        request_id = scope[REQUEST_ID_KEY] = _request_id(scope)
        status = 500  # what the client gets if the app raises before responding

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            seconds = time.perf_counter() - started
            template = self._route_label(scope)
            self.metrics.observe_request(scope["method"], template, status, seconds)
            if self.access_log:
                fields: dict[str, Any] = {
                    "request_id": request_id,
                    "method": scope["method"],
                    "path": scope["path"],
                    "route": template,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 3),
                }
                client = scope.get("client")
                if client:
                    fields["client"] = client[0]
                if extra := scope.get(LOG_FIELDS_KEY):
                    fields.update(extra)
                access_logger.info("request", extra={"fields": fields})

    def _route_label(self, scope: Scope) -> str:
        route = scope.get("route")
        if route is not None:
            return route.path
        # Refused before routing (e.g. an upload over the limit): label it by its path only if
        # that is one of the app's own, so requests for random URLs cannot create new series.
        return scope["path"] if scope["path"] in self.route_paths else "unmatched"


def add_log_fields(scope: Scope, **fields: Any) -> None:
    """Add ``fields`` to the access-log line of the request ``scope`` belongs to."""
    scope.setdefault(LOG_FIELDS_KEY, {}).update(fields)


def _request_id(scope: Scope) -> str:
    """The caller's X-Request-ID if it is short and printable, else a fresh one."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            if 0 < len(value) <= 64 and value.isascii() and value.decode().isprintable():
                return value.decode()
            break
    return uuid.uuid4().hex


# --- logging ----------------------------------------------------------------------------------


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    """``time level logger: message key=value ...`` for people reading a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = getattr(record, "fields", None)
        if fields:
            line += " " + " ".join(f"{key}={value}" for key, value in fields.items())
        return line


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is now (test runners swap it), not the one at setup."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure_logging(level: str, log_format: str) -> None:
    """Send every log record (ours, uvicorn's, TensorFlow's) through one formatter to stderr.

    Idempotent: a second call replaces the handler installed by the first. Uvicorn's own access
    log is silenced because ``RequestObserver`` writes a richer line for every request.
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    uvicorn_access = logging.getLogger("uvicorn.access")
    uvicorn_access.handlers.clear()
    uvicorn_access.propagate = False
