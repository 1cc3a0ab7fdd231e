"""Upload bytes to the model's input: where each upload is decoded, and its errors typed.

Shared by every route that takes encoded images (/predict, /predict/batch, the Open Inference
Protocol's ``mnist-image`` model, TF Serving's ``{"b64": ...}``), so that each of them
normalises an upload exactly as /predict does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import anyio.to_thread
import numpy as np

from app.api.deps import Serving
from app.errors import ImageError, InvalidImage
from app.preprocessing import png_size, preprocess_image, preprocess_naive, refuse_early
from app.schemas import Preprocess
from app.settings import Settings

logger = logging.getLogger(__name__)

# Where preprocessing runs, measured on this 2-core machine (best of 7): a 28x28 MNIST-style PNG
# takes ~25 us (~330 us if it needs the general path, e.g. dark on light) and a hop to a worker
# thread and back ~60-90 us, so such uploads are handled inline; a 64x64 PNG already takes
# ~0.9 ms and a 1000x750 photo ~4 ms, which would stall every other request on the event loop.
# Under 32 concurrent clients posting 28x28 PNGs in-process, inline served 1.1-1.7x the
# requests/s of always hopping. The bytes alone cannot tell small from big (a 4 KB PNG can
# hold a 1000x1000 page); the PNG header can, for free.
INLINE_MAX_PIXELS = 28 * 28


def _preprocessor(preprocess: Preprocess, settings: Settings) -> Callable[[bytes], np.ndarray]:
    function = preprocess_image if preprocess is Preprocess.full else preprocess_naive
    max_pixels = settings.MAX_IMAGE_PIXELS

    def run(data: bytes) -> np.ndarray:
        try:
            return function(data, max_pixels=max_pixels)
        except ImageError:
            raise
        except Exception as exc:
            # Preprocessing promises typed errors; if a strange file slips past that, the
            # client still sent an unusable image (400), and we keep the trace in the log.
            logger.exception("preprocessing raised an untyped error")
            raise InvalidImage("The upload could not be decoded as an image.") from exc

    return run


def decodes_inline(data: bytes) -> bool:
    """True for a PNG whose header says it has at most INLINE_MAX_PIXELS pixels."""
    size = png_size(data)
    return size is not None and size[0] * size[1] <= INLINE_MAX_PIXELS


async def prepare(data: bytes, preprocess: Preprocess, serving: Serving) -> np.ndarray:
    run = _preprocessor(preprocess, serving.settings)
    if decodes_inline(data):
        return run(data)
    refuse_early(data, max_pixels=serving.settings.MAX_IMAGE_PIXELS)
    return await anyio.to_thread.run_sync(run, data, limiter=serving.preprocess_limiter)


async def prepare_many(
    uploads: list[bytes], preprocess: Preprocess, serving: Serving
) -> list[np.ndarray | ImageError]:
    """Each upload's model input, or the ImageError that says why it has none."""
    run = _preprocessor(preprocess, serving.settings)

    def run_all() -> list[np.ndarray | ImageError]:
        images: list[np.ndarray | ImageError] = []
        for data in uploads:
            try:
                images.append(run(data))
            except ImageError as exc:
                images.append(exc)
        return images

    if all(decodes_inline(data) for data in uploads):
        return run_all()
    limiter = serving.preprocess_limiter
    return await anyio.to_thread.run_sync(run_all, limiter=limiter)  # one hop for the batch
