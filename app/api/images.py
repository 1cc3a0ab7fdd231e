"""Upload bytes to the model's input: where each upload is decoded, and its errors typed.

Shared by every route that takes encoded images (/predict, /predict/batch, the Open Inference
Protocol's ``mnist-image`` model, TF Serving's ``{"b64": ...}``), so that each of them
normalises an upload exactly as /predict does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import anyio.to_thread
import numpy as np

from app.api.deps import Serving
from app.errors import ImageError, InvalidImage
from app.preprocessing import (
    decode_grayscale,
    decode_grayscale_scaled,
    png_size,
    preprocess_image,
    preprocess_naive,
    refuse_early,
)
from app.schemas import Preprocess
from app.segmentation import Proposal, choose, cut_through_ink, normalize_counted, propose
from app.settings import Settings
from app.verdicts import Verdict, judge

logger = logging.getLogger(__name__)

T = TypeVar("T")
Counted = tuple[np.ndarray, int]

# Where preprocessing runs, measured on this 2-core machine (best of 7): a 28x28 MNIST-style PNG
# takes ~25 us (~330 us if it needs the general path, e.g. dark on light) and a hop to a worker
# thread and back ~60-90 us, so such uploads are handled inline; a 64x64 PNG already takes
# ~0.9 ms and a 1000x750 photo ~4 ms, which would stall every other request on the event loop.
# Under 32 concurrent clients posting 28x28 PNGs in-process, inline served 1.1-1.7x the
# requests/s of always hopping. The bytes alone cannot tell small from big (a 4 KB PNG can
# hold a 1000x1000 page); the PNG header can, for free.
INLINE_MAX_PIXELS = 28 * 28


def _typed(function: Callable[[bytes], T]) -> Callable[[bytes], T]:
    def run(data: bytes) -> T:
        try:
            return function(data)
        except ImageError:
            raise
        except Exception as exc:
            # Preprocessing promises typed errors; if a strange file slips past that, the
            # client still sent an unusable image (400), and we keep the trace in the log.
            logger.exception("preprocessing raised an untyped error")
            raise InvalidImage("The upload could not be decoded as an image.") from exc

    return run


def _preprocessor(preprocess: Preprocess, settings: Settings) -> Callable[[bytes], np.ndarray]:
    function = preprocess_image if preprocess is Preprocess.full else preprocess_naive
    max_pixels = settings.MAX_IMAGE_PIXELS
    return _typed(lambda data: function(data, max_pixels=max_pixels))


def _counted(preprocess: Preprocess, settings: Settings) -> Callable[[bytes], Counted]:
    """The model input and how many digits the upload seems to hold (1 unless normalised)."""
    if preprocess is not Preprocess.full:
        naive = _preprocessor(preprocess, settings)
        return lambda data: (naive(data), 1)
    max_pixels = settings.MAX_IMAGE_PIXELS

    def run(data: bytes) -> Counted:
        image, count = normalize_counted(decode_grayscale(data, max_pixels))
        return image[..., np.newaxis], count

    return _typed(run)


def decodes_inline(data: bytes) -> bool:
    """True for a PNG whose header says it has at most INLINE_MAX_PIXELS pixels."""
    size = png_size(data)
    return size is not None and size[0] * size[1] <= INLINE_MAX_PIXELS


async def prepare(data: bytes, preprocess: Preprocess, serving: Serving) -> np.ndarray:
    return await _run(_preprocessor(preprocess, serving.settings), data, serving)


async def prepare_counted(data: bytes, preprocess: Preprocess, serving: Serving) -> Counted:
    """/predict's: the model input, and how many digits stand side by side in the upload."""
    return await _run(_counted(preprocess, serving.settings), data, serving)


async def propose_number(data: bytes, serving: Serving) -> Proposal:
    """/read's: every candidate digit of the number in the upload (app.segmentation)."""
    max_pixels = serving.settings.MAX_IMAGE_PIXELS
    return await _run(
        _typed(lambda d: propose(*decode_grayscale_scaled(d, max_pixels))), data, serving
    )


async def digits_read(data: bytes, serving: Serving) -> int:
    """How many sure digits /read reads in ``data``: /predict asks before it answers
    `several_digits`, so that a word or a scatter of blobs is not called a row of digits."""
    try:
        proposal = await propose_number(data, serving)
    except ImageError:
        return 0
    probabilities = await serving.predictor.predict(proposal.images)
    if not len(probabilities):
        return 0
    points = serving.operating_points
    chosen = choose(proposal, probabilities.max(axis=1))
    # Sure digits only, none cut out of shared ink: a letter's strokes, cut apart, can each
    # look like an unsure 1.
    return sum(
        judge(probabilities[i], points).verdict is Verdict.digit
        and not cut_through_ink(proposal, i)
        for i in chosen
    )


async def _run(run: Callable[[bytes], T], data: bytes, serving: Serving) -> T:
    if decodes_inline(data):
        return run(data)
    refuse_early(data, max_pixels=serving.settings.MAX_IMAGE_PIXELS)
    return await anyio.to_thread.run_sync(run, data, limiter=serving.preprocess_limiter)


async def prepare_many(
    uploads: list[bytes], preprocess: Preprocess, serving: Serving
) -> list[np.ndarray | ImageError]:
    """Each upload's model input, or the ImageError that says why it has none."""
    return await _run_many(_preprocessor(preprocess, serving.settings), uploads, serving)


async def prepare_many_counted(
    uploads: list[bytes], preprocess: Preprocess, serving: Serving
) -> list[Counted | ImageError]:
    """/predict/batch's: ``prepare_counted`` for each upload, or its ImageError."""
    return await _run_many(_counted(preprocess, serving.settings), uploads, serving)


async def _run_many(
    run: Callable[[bytes], T], uploads: list[bytes], serving: Serving
) -> list[T | ImageError]:
    def run_all() -> list[T | ImageError]:
        results: list[T | ImageError] = []
        for data in uploads:
            try:
                results.append(run(data))
            except ImageError as exc:
                results.append(exc)
        return results

    if all(decodes_inline(data) for data in uploads):
        return run_all()
    limiter = serving.preprocess_limiter
    return await anyio.to_thread.run_sync(run_all, limiter=limiter)  # one hop for the batch
