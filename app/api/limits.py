"""MAX_UPLOAD_BYTES, enforced while the body arrives rather than after it has been buffered.

A body that declares a larger Content-Length is refused before a byte of it is read; a body
without one (chunked) is counted as it streams in and refused as soon as the count passes the
limit. Either way the client gets the usual JSON 413.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.handlers import error_response


class UploadTooLarge(HTTPException):
    """Raised from ``receive``: FastAPI lets HTTPExceptions out of body parsing unchanged."""

    def __init__(self, max_bytes: int) -> None:
        # Connection: close, or uvicorn keeps reading (and discarding) the rest of the body to
        # reuse the connection: a whole 1 GB upload, measured by tests/hardening.
        super().__init__(
            413,
            f"The request body is larger than the {max_bytes:,}-byte limit.",
            headers={"Connection": "close"},
        )


class UploadLimit:
    """ASGI middleware capping request bodies under ``path_prefixes`` at ``max_bytes``.

    Starlette's own body limit answers plain text when Content-Length is over the limit, and
    every error of this API is JSON, hence this small middleware.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int, path_prefixes: tuple[str, ...]) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.path_prefixes = path_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.path_prefixes):
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            refusal = UploadTooLarge(self.max_bytes)
            response = error_response(413, refusal.detail, refusal.headers, path=scope["path"])
            await response(scope, receive, send)
            return
        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise UploadTooLarge(self.max_bytes)
            return message

        await self.app(scope, counted_receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
