"""POST /read: one photo of a handwritten number -> every digit in it, left to right.

The upload is decoded and its ink found exactly as for /predict; ``app.segmentation``
proposes every way the ink could split into digits, all candidates go to the model in one
batched call, and the segmentation whose digits the model is surest of is the reading.
"""

from __future__ import annotations

import time

import numpy as np
from fastapi import APIRouter, Request, Response

from app.api.deps import ServingDep
from app.api.images import propose_number
from app.api.predict import IMAGE_ERRORS, png_base64, query_options, reading, timing
from app.api.uploads import multipart_body, read_uploads
from app.observability.middleware import add_log_fields
from app.schemas import (
    NUMBER_EXAMPLES,
    Include,
    MarkKind,
    NumberReading,
    NumberVerdict,
    PixelBox,
    ReadDigit,
    ReadMark,
    ReadOptions,
)
from app.segmentation import Box, Proposal, choose, cut_through_ink
from app.verdicts import Verdict, judge

router = APIRouter(prefix="/read", tags=["read"])

ONE_FILE_ONLY = (400, "Too many files: /read takes one image of one number.")
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
QUERY_PARAMETERS: list[dict[str, object]] = [
    {
        "name": "include",
        "in": "query",
        "required": False,
        "description": ReadOptions.model_fields["include"].description,
        "schema": {"type": "string", "enum": [i.value for i in Include]},
    },
]


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
async def read(request: Request, serving: ServingDep) -> Response:
    """The digits of one line of handwriting, left to right, each with its box in the
    uploaded image's pixels, its own verdict and its calibrated probabilities. Pieces of
    ink that are not digits (a dash, a dot, a rule, a letter) are listed in `marks`. The
    `verdict` is `number` when every digit is sure, `uncertain` when one is not (or
    something unreadable sits among them), `no_number` when no digit was read."""
    begun = time.perf_counter()
    include = query_options(request, ReadOptions, READ_DEFAULTS).include is Include.preprocessed
    uploads = await read_uploads(request, "file", max_files=1, too_many_files=ONE_FILE_ONLY)
    read_done = time.perf_counter()
    proposal = await propose_number(uploads[0].data, serving)
    prepared = time.perf_counter()
    probabilities = await serving.predictor.predict(proposal.images)
    inferred = time.perf_counter()

    verdict, digits, marks = _read(proposal, probabilities, serving, include)
    number = "".join(str(d.best_guess) for d in digits) or None
    version = serving.model.version
    serving.metrics.count_number(verdict.value, len(digits))
    add_log_fields(
        request.scope,
        verdict=verdict.value,
        number=number,
        digits=len(digits),
        candidates=len(proposal.candidates),
        model_version=version,
    )
    reading = NumberReading(
        verdict=verdict,
        number=number,
        digits=digits,
        marks=marks,
        model_version=version,
        timing_ms=timing(request, begun, read_done, prepared, inferred),
    )
    return Response(reading.model_dump_json(), media_type="application/json")


def _read(
    proposal: Proposal, probabilities: np.ndarray, serving: ServingDep, include: bool
) -> tuple[NumberVerdict, list[ReadDigit], list[ReadMark]]:
    """The number's verdict, its digits left to right, and its marks left to right."""
    chosen = choose(proposal, probabilities.max(axis=1) if len(probabilities) else probabilities)
    points = serving.operating_points
    digits: list[ReadDigit] = []
    marks = [ReadMark(box=_box(mark.box), kind=mark.kind) for mark in proposal.marks]
    unreadable = False
    for index in chosen:
        candidate = proposal.candidates[index]
        judged = judge(probabilities[index], points)
        image = candidate.image if include else None
        if judged.verdict is Verdict.not_a_digit:
            unreadable = True
            png = None if image is None else png_base64(image)
            marks.append(
                ReadMark(
                    box=_box(candidate.box), kind=MarkKind.not_a_digit, preprocessed_png_base64=png
                )
            )
        else:
            fields = reading(judged, probabilities[index], image)
            digits.append(ReadDigit(box=_box(candidate.box), **fields))
    # A digit-sized piece the model cannot read may be a digit it cannot read (the number
    # could be missing one); where digits touched, the reading depends on where they were
    # cut apart, and sure digits from a wrong cut are a confidently wrong number.
    was_cut = any(cut_through_ink(proposal, index) for index in chosen)
    if not digits:
        verdict = NumberVerdict.no_number
    elif unreadable or was_cut or any(d.verdict is not Verdict.digit for d in digits):
        verdict = NumberVerdict.uncertain
    else:
        verdict = NumberVerdict.number
    return verdict, digits, sorted(marks, key=lambda m: m.box.x)


def _box(box: Box) -> PixelBox:
    return PixelBox(x=box.x, y=box.y, width=box.width, height=box.height)
