"""POST /read: one photo of a handwritten number -> every digit in it, left to right.

The upload is decoded and its ink found exactly as for /predict; ``app.segmentation``
proposes every way the ink could split into digits, all candidates go to the model in one
batched call, and the segmentation whose digits the model is surest of is the reading.
"""

from __future__ import annotations

import base64
import time

import numpy as np
from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from app.api.deps import ServingDep
from app.api.images import propose_number
from app.api.predict import IMAGE_ERRORS
from app.api.uploads import multipart_body, read_uploads
from app.observability import REQUEST_STARTED_KEY, add_log_fields
from app.preprocessing import to_png_bytes
from app.schemas import (
    NUMBER_EXAMPLES,
    Alternative,
    Include,
    MarkKind,
    NumberReading,
    NumberVerdict,
    PixelBox,
    ReadDigit,
    ReadMark,
    ReadOptions,
    Timing,
)
from app.segmentation import Box, Proposal, choose, cut_through_ink
from app.tensors import json_values
from app.verdicts import Judgement, Verdict, judge

router = APIRouter(prefix="/read", tags=["read"])

ONE_FILE_ONLY = (400, "Too many files: /read takes one image of one number.")
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


def read_options(request: Request) -> ReadOptions:
    if not request.scope["query_string"]:
        return ReadOptions()
    try:
        return ReadOptions.model_validate(dict(request.query_params))
    except ValidationError as exc:
        errors = [{**error, "loc": ("query", *error["loc"])} for error in exc.errors()]
        raise RequestValidationError(errors) from None


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
    include = read_options(request).include is Include.preprocessed
    uploads = await read_uploads(request, "file", max_files=1, too_many_files=ONE_FILE_ONLY)
    read_done = time.perf_counter()
    proposal = await propose_number(uploads[0].data, serving)
    prepared = time.perf_counter()
    probabilities = await serving.predictor.predict(proposal.images)
    inferred = time.perf_counter()

    reading = _reading(proposal, probabilities, serving, include)
    serving.metrics.count_number(reading.verdict.value, len(reading.digits))
    add_log_fields(
        request.scope,
        verdict=reading.verdict.value,
        number=reading.number,
        digits=len(reading.digits),
        candidates=len(proposal.candidates),
        model_version=reading.model_version,
    )
    arrived = request.scope.get(REQUEST_STARTED_KEY, begun)
    reading.timing_ms = Timing(
        read=round((read_done - arrived) * 1000, 3),
        preprocess=round((prepared - read_done) * 1000, 3),
        inference=round((inferred - prepared) * 1000, 3),
        total=round((time.perf_counter() - arrived) * 1000, 3),
    )
    return Response(reading.model_dump_json(), media_type="application/json")


def _reading(
    proposal: Proposal, probabilities: np.ndarray, serving: ServingDep, include: bool
) -> NumberReading:
    chosen = choose(proposal, probabilities.max(axis=1) if len(probabilities) else probabilities)
    points = serving.operating_points
    digits: list[ReadDigit] = []
    marks = [ReadMark(box=_box(mark.box), kind=mark.kind) for mark in proposal.marks]
    unreadable: list[PixelBox] = []
    for index in chosen:
        candidate = proposal.candidates[index]
        judged = judge(probabilities[index], points)
        png = _png_base64(candidate.image) if include else None
        if judged.verdict is Verdict.not_a_digit:
            unreadable.append(_box(candidate.box))
            marks.append(
                ReadMark(box=unreadable[-1], kind=MarkKind.not_a_digit, preprocessed_png_base64=png)
            )
        else:
            digits.append(_digit(candidate.box, judged, probabilities[index], png))
    # A digit-sized piece the model cannot read may be a digit it cannot read: the number
    # could be missing one, so it is not a sure number.
    unreadable_piece = bool(unreadable)
    # Where digits touched, the reading depends on where they were cut apart: sure digits
    # from a cut in the wrong place are a confidently wrong number, so it is not called sure.
    was_cut = any(cut_through_ink(proposal, index) for index in chosen)
    if not digits:
        verdict = NumberVerdict.no_number
    elif unreadable_piece or was_cut or any(d.verdict is not Verdict.digit for d in digits):
        verdict = NumberVerdict.uncertain
    else:
        verdict = NumberVerdict.number
    return NumberReading(
        verdict=verdict,
        number="".join(str(d.best_guess) for d in digits) or None,
        digits=digits,
        marks=sorted(marks, key=lambda m: m.box.x),
        model_version=serving.model.version,
        timing_ms=Timing(read=0, preprocess=0, inference=0, total=0),
    )


def _digit(box: Box, judged: Judgement, row: np.ndarray, png: str | None) -> ReadDigit:
    alternatives = (
        None
        if judged.alternatives is None
        else [Alternative(digit=d, probability=p) for d, p in judged.alternatives]
    )
    return ReadDigit(
        box=_box(box),
        verdict=judged.verdict,
        digit=judged.digit,
        best_guess=judged.best_guess,
        confidence=judged.confidence,
        alternatives=alternatives,
        probabilities=json_values(row),
        preprocessed_png_base64=png,
    )


def _box(box: Box) -> PixelBox:
    return PixelBox(x=box.x, y=box.y, width=box.width, height=box.height)


def _png_base64(image: np.ndarray) -> str:
    return base64.b64encode(to_png_bytes(image)).decode("ascii")
