"""POST /read: one photo of a handwritten number -> every digit in it, left to right.

The upload is decoded and its ink found exactly as for /predict; ``app.imaging.segment``
proposes every way the ink could split into digits, all candidates go to the model in one
batched call, and the segmentation whose digits the model is surest of is the reading.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response

from app.api.deps import ServiceDep
from app.api.predict import IMAGE_ERRORS, query_options, query_parameter, reading, timing
from app.api.uploads import multipart_body, read_uploads
from app.imaging.encode import png_base64
from app.imaging.segment import Box
from app.observability.middleware import add_log_fields
from app.schemas import (
    NUMBER_EXAMPLES,
    Include,
    MarkKind,
    NumberReading,
    PixelBox,
    ReadDigit,
    ReadMark,
    ReadOptions,
    Timing,
)
from app.service import NumberRead

router = APIRouter(prefix="/read", tags=["read"])

ONE_FILE_ONLY = "Too many files: /read takes one image of one number."
READ_DEFAULTS = ReadOptions()
EXAMPLES: dict[int | str, dict[str, object]] = {
    200: {
        "description": "The number, its digits with their boxes, and the marks that are not digits.",
        "content": {
            "application/json": {
                "examples": {
                    "number": {"summary": "A number read", "value": NUMBER_EXAMPLES["number"]},
                    "no_number": {
                        "summary": "No digit in the image (a letter)",
                        "value": NUMBER_EXAMPLES["no_number"],
                    },
                }
            }
        },
    },
}
QUERY_PARAMETERS = [query_parameter("include", ReadOptions, Include)]


@router.post(
    "",
    summary="Read a whole handwritten number from one image",
    response_model=NumberReading,
    responses={**EXAMPLES, **IMAGE_ERRORS},
    openapi_extra={
        **multipart_body("file", "The image: PNG, JPEG, WebP, BMP, GIF, TIFF.", many=False),
        "parameters": QUERY_PARAMETERS,
    },
)
async def read(request: Request, service: ServiceDep) -> Response:
    """The digits of one line of handwriting, left to right, each with its box in the
    uploaded image's pixels, its own verdict and its calibrated probabilities. Pieces of
    ink that are not digits (a dash, a dot, a rule, a letter) are listed in `marks`. The
    `verdict` is `number` when every digit is sure, `uncertain` when one is not (or
    something unreadable sits among them), `no_number` when no digit was read."""
    begun = time.perf_counter()
    include = query_options(request, ReadOptions, READ_DEFAULTS).include
    uploads = await read_uploads(request, "file", max_files=1, too_many_files=ONE_FILE_ONLY)
    read_done = time.perf_counter()
    number, stages = await service.read_number(uploads[0].data)
    version = service.model.version
    add_log_fields(
        request.scope,
        verdict=number.verdict.value,
        number=number.number,
        digits=len(number.digits),
        candidates=number.candidates,
        model_version=version,
    )
    answer = number_reading(
        number, include, model_version=version, timing_ms=timing(request, begun, read_done, stages)
    )
    return Response(answer.model_dump_json(), media_type="application/json")


def number_reading(
    number: NumberRead, include: Include | None, *, model_version: str, timing_ms: Timing
) -> NumberReading:
    """/read's answer for ``number``; the tuning harness (benchmarks.tune_numbers) scores
    this same answer, so what it measures is what clients get."""
    return NumberReading(
        verdict=number.verdict,
        number=number.number,
        digits=[ReadDigit(box=_box(d.box), **reading(d, include)) for d in number.digits],
        marks=_marks(number, include),
        model_version=model_version,
        timing_ms=timing_ms,
    )


def _marks(number: NumberRead, include: Include | None) -> list[ReadMark]:
    """The marks set aside and the digit-sized pieces that are not digits, left to right."""
    marks = [ReadMark(box=_box(mark.box), kind=mark.kind) for mark in number.marks]
    for piece in number.not_digits:
        png = png_base64(piece.image) if include is Include.preprocessed else None
        marks.append(
            ReadMark(box=_box(piece.box), kind=MarkKind.not_a_digit, preprocessed_png_base64=png)
        )
    return sorted(marks, key=lambda m: m.box.x)


def _box(box: Box) -> PixelBox:
    return PixelBox(x=box.x, y=box.y, width=box.width, height=box.height)
