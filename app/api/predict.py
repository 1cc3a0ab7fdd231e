"""POST /predict and /predict/batch: the multipart body -> ``DigitService.classify`` -> JSON.

The request body is capped by ``MAX_UPLOAD_BYTES`` while it is being received
(``app.api.limits``), so an oversized upload is refused with 413 before it is buffered.
"""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Any, TypeVar

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from app.api.deps import ServiceDep
from app.api.handlers import image_status
from app.api.uploads import multipart_body, read_uploads
from app.imaging.encode import png_base64
from app.imaging.errors import ImageError
from app.imaging.prepare import Preprocess
from app.observability.middleware import REQUEST_STARTED_KEY, add_log_fields
from app.schemas import (
    PREDICTION_EXAMPLES,
    Alternative,
    BatchItem,
    BatchItemError,
    BatchPrediction,
    ErrorResponse,
    Include,
    Prediction,
    PredictOptions,
    Timing,
    named_examples,
)
from app.service import Answer, ReadPiece, Stages
from app.tensors import json_values
from app.verdicts import Judgement, Verdict

router = APIRouter(prefix="/predict", tags=["predict"])
Options = TypeVar("Options", bound=BaseModel)


def _error(description: str) -> dict[str, object]:
    return {"model": ErrorResponse, "description": description}


# The model's schema is FastAPI's; this adds one named example per verdict to /docs.
VERDICT_EXAMPLES: dict[int | str, dict[str, object]] = {
    200: {
        "description": "The verdict, the digit (null for `not_a_digit`) and the probabilities.",
        "content": {"application/json": {"examples": named_examples(PREDICTION_EXAMPLES)}},
    },
}
IMAGE_ERRORS: dict[int | str, dict[str, object]] = {
    400: _error(
        "Not an image, or an empty, truncated or corrupt one; a malformed multipart body; "
        "more than one file."
    ),
    413: _error("Body over MAX_UPLOAD_BYTES, or an image with more than MAX_IMAGE_PIXELS."),
    415: _error("A document rather than a raster image: SVG, PDF, HTML, text."),
    422: _error("No digit found in the image (blank page), or a missing/invalid field."),
    500: _error("The model call failed for this request."),
    503: _error("Model not loaded yet, or the inference queue is full: retry after Retry-After."),
}
BATCH_ERRORS: dict[int | str, dict[str, object]] = {
    400: _error("The multipart body itself is malformed (no or wrong boundary)."),
    413: _error("Body over MAX_UPLOAD_BYTES, or more files than MAX_BATCH_FILES."),
    422: _error("The `files` field is missing or not a file."),
    500: IMAGE_ERRORS[500],
    503: IMAGE_ERRORS[503],
}

DEFAULT_OPTIONS = PredictOptions()


def query_parameter(
    name: str, options: type[BaseModel], values: type[StrEnum], default: str | None = None
) -> dict[str, object]:
    """How /docs lists the option ``name`` of ``options``, a string from ``values``."""
    schema: dict[str, object] = {"type": "string", "enum": [value.value for value in values]}
    if default is not None:
        schema["default"] = default
    description = options.model_fields[name].description
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


QUERY_PARAMETERS = [
    query_parameter("preprocess", PredictOptions, Preprocess, Preprocess.full.value),
    query_parameter("include", PredictOptions, Include),
]
"""The options as /docs lists them: read by ``read_options``, not by a FastAPI parameter."""


def read_options(request: Request) -> PredictOptions:
    return query_options(request, PredictOptions, DEFAULT_OPTIONS)


def query_options(request: Request, model: type[Options], default: Options) -> Options:
    """The query options, validated by ``model``; ``default`` when there is no query.

    Not a ``Query()`` model: FastAPI's query-model pass was a measurable share of the event
    loop's time per /predict (README, "What made the difference"), and almost every request
    sends no query at all. Invalid values still get FastAPI's 422, with the same message.
    """
    if not request.scope["query_string"]:
        return default
    try:
        return model.model_validate(dict(request.query_params))
    except ValidationError as exc:
        errors = [{**error, "loc": ("query", *error["loc"])} for error in exc.errors()]
        raise RequestValidationError(errors) from None


ONE_FILE_ONLY = "Too many files: /predict takes one image; send several to /predict/batch."


@router.post(
    "",
    summary="Classify one image of a digit",
    response_model=Prediction,
    responses={**VERDICT_EXAMPLES, **IMAGE_ERRORS},
    openapi_extra={
        **multipart_body("file", "The image: PNG, JPEG, WebP, BMP, GIF, TIFF.", many=False),
        "parameters": QUERY_PARAMETERS,
    },
)
async def predict(request: Request, service: ServiceDep) -> Response:
    """Photos, scans and canvas drawings are normalised to MNIST's form before the model sees
    them. Every answer carries a `verdict`: `digit` (with the digit), `uncertain` (the best
    guess and the three most probable digits) or `not_a_digit` (`digit` is null), judged on
    the calibrated probability of the best digit against the operating points /model shows;
    or `several_digits` (`digit` is null) when the image holds digits side by side that the
    model does not read as one: `POST /read` reads them all."""
    begun = time.perf_counter()
    options = read_options(request)
    uploads = await read_uploads(request, "file", max_files=1, too_many_files=ONE_FILE_ONLY)
    read_done = time.perf_counter()
    answer, stages = await service.classify(uploads[0].data, options.preprocess)
    judged, version = answer.judged, service.model.version
    add_log_fields(
        request.scope,
        verdict=judged.verdict.value,
        digit=judged.digit,
        best_guess=judged.best_guess,
        confidence=judged.confidence,
        model_version=version,
    )
    return _json(
        Prediction(
            **reading(answer, options.include),
            model_version=version,
            preprocess=options.preprocess,
            timing_ms=timing(request, begun, read_done, stages),
        )
    )


@router.post(
    "/batch",
    summary="Classify several images, answered in order",
    response_model=BatchPrediction,
    responses=BATCH_ERRORS,
    openapi_extra={
        **multipart_body("files", "Repeat the field once per image (MAX_BATCH_FILES).", many=True),
        "parameters": QUERY_PARAMETERS,
    },
)
async def predict_batch(request: Request, service: ServiceDep) -> Response:
    """All readable images go to the model together. A file that is not a usable image does
    not fail the request: its entry in `results` carries the status and message that
    /predict would have answered for it alone, and `failed` counts such entries."""
    begun = time.perf_counter()
    options = read_options(request)
    most = service.settings.MAX_BATCH_FILES
    too_many = f"More than {most} files sent; at most {most} per batch."
    files = await read_uploads(request, "files", max_files=most, too_many_files=too_many)
    read_done = time.perf_counter()
    answers, stages = await service.classify_many([f.data for f in files], options.preprocess)
    results = [
        _batch_item(i, f.filename, a, options.include)
        for i, (f, a) in enumerate(zip(files, answers, strict=True))
    ]
    judgements = [answer.judged for answer in answers if not isinstance(answer, ImageError)]
    version = service.model.version
    add_log_fields(
        request.scope,
        files=len(files),
        failed=len(files) - len(judgements),
        digits=[judged.digit for judged in judgements],
        verdicts=_verdict_counts(judgements),
        model_version=version,
    )
    return _json(
        BatchPrediction(
            model_version=version,
            preprocess=options.preprocess,
            count=len(files),
            failed=len(files) - len(judgements),
            results=results,
            timing_ms=timing(request, begun, read_done, stages),
        )
    )


# --- helpers ----------------------------------------------------------------------------------


def _json(body: BaseModel) -> Response:
    # Returning the model itself would make FastAPI validate it a second time against
    # response_model before serialising, a cost per request for a document built right here.
    # No exclude_none: a null `digit` (not_a_digit) must be sent; the fields that are left out
    # when empty (alternatives, the preprocessed PNG) say so in app/schemas.py.
    return Response(body.model_dump_json(), media_type="application/json")


def _batch_item(
    index: int, filename: str | None, answer: Answer | ImageError, include: Include | None
) -> BatchItem | BatchItemError:
    if isinstance(answer, ImageError):
        status = image_status(answer)
        return BatchItemError(
            index=index, filename=filename, status_code=status, detail=answer.detail
        )
    return BatchItem(index=index, filename=filename, **reading(answer, include))


def reading(answer: Answer | ReadPiece, include: Include | None) -> dict[str, Any]:
    """The fields every answer about one digit carries (/predict, a batch item, a digit of
    /read): its verdict, digit, best guess, confidence, alternatives and probabilities, and
    the model's view of it with ``?include=preprocessed``."""
    judged = answer.judged
    alternatives = (
        None
        if judged.alternatives is None
        else [Alternative(digit=d, probability=p) for d, p in judged.alternatives]
    )
    return {
        "verdict": judged.verdict,
        "digit": judged.digit,
        "best_guess": judged.best_guess,
        "confidence": judged.confidence,
        "alternatives": alternatives,
        "probabilities": json_values(answer.probabilities),
        "preprocessed_png_base64": (
            png_base64(answer.image) if include is Include.preprocessed else None
        ),
    }


def _verdict_counts(judgements: list[Judgement]) -> dict[str, int]:
    """How many answers of a batch got each verdict, every verdict listed (0 included)."""
    counts = dict.fromkeys(Verdict, 0)
    for judged in judgements:
        counts[judged.verdict] += 1
    return {verdict.value: count for verdict, count in counts.items()}


def timing(request: Request, begun: float, read_done: float, stages: Stages) -> Timing:
    # The body is parsed before the route runs; the middleware's arrival time covers it.
    arrived = request.scope.get(REQUEST_STARTED_KEY, begun)
    now = time.perf_counter()
    return Timing(
        read=round((read_done - arrived) * 1000, 3),
        preprocess=round((stages.prepared - read_done) * 1000, 3),
        inference=round((stages.inferred - stages.prepared) * 1000, 3),
        total=round((now - arrived) * 1000, 3),
    )
