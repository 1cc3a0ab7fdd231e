"""Per-request observation as ASGI middleware: a request id, a metrics sample, an access log line.

Routes add to their request's log line with ``add_log_fields``; ``REQUEST_STARTED_KEY`` and
``REQUEST_ID_KEY`` are where a route finds the request's arrival time and id in its scope.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Collection
from typing import Any

from asgi_correlation_id import CorrelationIdMiddleware, correlation_id
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.observability.metrics import Metrics

LOG_FIELDS_KEY = "app.log_fields"
"""Scope key under which a route leaves fields for its request's log line."""
REQUEST_STARTED_KEY = "app.request_started"
"""Scope key holding ``time.perf_counter()`` at the request's arrival."""
REQUEST_ID_KEY = "app.request_id"
"""Scope key holding the request's id: the X-Request-ID it was sent with or the one it got."""
REQUEST_ID_HEADER = "X-Request-ID"

access_logger = logging.getLogger("app.access")


class RequestObserver:
    """ASGI middleware: a request id, one metrics sample and one log line per HTTP request.

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
        self.identified_app = with_request_ids(app)
        self.metrics = metrics
        self.access_log = access_log
        self.route_paths = frozenset(path for path in route_paths if "{" not in path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        scope[REQUEST_STARTED_KEY] = started
        status = 500  # what the client gets if the app raises before responding

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.identified_app(scope, receive, send_with_status)
        finally:
            seconds = time.perf_counter() - started
            template = self._route_label(scope)
            self.metrics.observe_request(scope["method"], template, status, seconds)
            if self.access_log:
                fields: dict[str, Any] = {
                    "request_id": scope.get(REQUEST_ID_KEY),
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


def usable_request_id(value: str) -> bool:
    """Whether a caller's X-Request-ID is kept: short and printable, in any format."""
    return 0 < len(value) <= 64 and value.isascii() and value.isprintable()


def with_request_ids(app: ASGIApp) -> ASGIApp:
    """``app`` behind asgi-correlation-id: every request gets an id, its response the header.

    The id is the caller's X-Request-ID when ``usable_request_id`` keeps it, else a fresh
    uuid4 in hex; the routes find it in the scope under ``REQUEST_ID_KEY``.
    """

    async def app_with_id_in_scope(scope: Scope, receive: Receive, send: Send) -> None:
        scope[REQUEST_ID_KEY] = correlation_id.get()
        await app(scope, receive, send)

    return CorrelationIdMiddleware(
        app_with_id_in_scope,
        header_name=REQUEST_ID_HEADER,
        update_request_header=False,  # the request's own headers stay as they were sent
        generator=lambda: uuid.uuid4().hex,
        validator=usable_request_id,
        transformer=None,
    )
