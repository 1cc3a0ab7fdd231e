"""The one place where exceptions become HTTP responses.

Every error body is ``{"detail": "<a sentence>"}`` (``{"error": ...}`` under the serving
protocols' /v2 and /v1, as those protocols spell it): never a traceback, a file path or
pydantic's list of dicts. Image problems carry a reason (``app.imaging.errors``), which
IMAGE_STATUS below turns into a status; the batcher's are 503 (busy, retry) or 500 (the model
call itself failed); a service that is not ready yet is 503 with Retry-After.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.api.deps import NOT_READY, NOT_READY_HEADERS, RETRY_AFTER_S
from app.api.uploads import BadUpload, UploadReason
from app.imaging.errors import ImageError, Reason
from app.runtime.batcher import InferenceFailed, Overloaded, PredictorClosed
from app.service import NotReady
from app.tensors import ProtocolError

logger = logging.getLogger(__name__)

IMAGE_STATUS: dict[Reason, int] = {
    Reason.invalid_image: 400,
    Reason.unsupported_media_type: 415,
    Reason.image_too_large: 413,
    Reason.no_digit_found: 422,
}
"""The HTTP status for each reason an upload has no digit: the one place that knows."""

PROTOCOL_IMAGE_STATUS: dict[Reason, int] = {
    **dict.fromkeys(Reason, 400),
    Reason.image_too_large: 413,
}
"""The same under /v2 and /v1, whose clients know only 400 for a bad input (and 413)."""


UPLOAD_STATUS: dict[UploadReason, int] = {
    UploadReason.malformed: 400,
    UploadReason.missing_file: 422,
    UploadReason.one_file_only: 400,
    UploadReason.too_many_files: 413,
}
"""The HTTP status for each way a multipart body can be wrong."""


def image_status(error: ImageError, *, protocol: bool = False) -> int:
    return (PROTOCOL_IMAGE_STATUS if protocol else IMAGE_STATUS)[error.reason]


PROTOCOL_PREFIXES = ("/v2", "/v1/")
"""Paths whose errors are ``{"error": ...}``: the Open Inference Protocol's and TF Serving's."""


def install_exception_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ImageError, _image_error)
    app.add_exception_handler(NotReady, _not_ready)
    app.add_exception_handler(BadUpload, _bad_upload)
    app.add_exception_handler(ProtocolError, _protocol_error)
    app.add_exception_handler(Overloaded, _overloaded)
    app.add_exception_handler(PredictorClosed, _predictor_closed)
    app.add_exception_handler(InferenceFailed, _inference_failed)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)


def error_response(
    status_code: int, detail: str, headers: Mapping[str, str] | None = None, *, path: str = ""
) -> JSONResponse:
    key = "error" if path.startswith(PROTOCOL_PREFIXES) else "detail"
    return JSONResponse({key: detail}, status_code=status_code, headers=dict(headers or {}))


async def _image_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ImageError)
    return error_response(image_status(exc), exc.detail, path=request.url.path)


async def _bad_upload(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BadUpload)
    return error_response(UPLOAD_STATUS[exc.reason], exc.detail, path=request.url.path)


async def _not_ready(request: Request, exc: Exception) -> JSONResponse:
    return error_response(503, NOT_READY, NOT_READY_HEADERS, path=request.url.path)


async def _protocol_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProtocolError)
    return error_response(exc.status, exc.message, path=request.url.path)


async def _overloaded(request: Request, exc: Exception) -> JSONResponse:
    request.app.state.service.metrics.rejected.inc()
    retry = {"Retry-After": str(RETRY_AFTER_S)}
    return error_response(503, str(exc), retry, path=request.url.path)


async def _predictor_closed(request: Request, exc: Exception) -> JSONResponse:
    retry = {"Retry-After": str(RETRY_AFTER_S)}
    return error_response(503, str(exc), retry, path=request.url.path)


async def _inference_failed(request: Request, exc: Exception) -> JSONResponse:
    return error_response(500, f"Inference failed: {exc}.", path=request.url.path)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    detail = describe_validation_errors(exc.errors())
    return error_response(422, detail, path=request.url.path)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return error_response(exc.status_code, str(exc.detail), exc.headers, path=request.url.path)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.error(
        "unhandled error",
        exc_info=exc,
        extra={"fields": {"path": request.url.path, "method": request.method}},
    )
    return error_response(500, "Internal server error.", path=request.url.path)


def describe_validation_errors(errors: Sequence[Any]) -> str:
    """pydantic's error list as one sentence a person can act on."""
    messages = []
    for error in errors:
        location = [str(part) for part in error.get("loc", ())]
        if error.get("type") == "missing" and location[:1] == ["body"]:
            messages.append(
                f"Missing form field {location[-1]!r}: send the image as multipart/form-data "
                f"with the field name {location[-1]!r}."
            )
        else:
            where = ".".join(location[1:] if location[:1] == ["body"] else location)
            messages.append(f"{where}: {error.get('msg', 'invalid value')}")
    return " ".join(messages) or "Invalid request."
