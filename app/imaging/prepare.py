"""Uploads -> model input, the one entry every route uses: decode, normalise, and where.

``ImagePreparer`` owns the two choices a route must not make: which uploads are refused from
their first bytes alone (on the event loop, without waiting for a thread), and which are
small enough to decode inline rather than in a worker thread. Each upload's header is read
once (``decode.sniff``) and handed down. The synchronous ``prepare_image`` family is the same
work for callers without an event loop (tests, fuzzing, benchmarks).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

import anyio.to_thread
import numpy as np

from app.imaging.decode import (
    DEFAULT_MAX_PIXELS,
    Sniffed,
    decode_grayscale_scaled,
    sniff,
)
from app.imaging.errors import ImageError, InvalidImage
from app.imaging.normalize import normalize_digit, squash_to_mnist
from app.imaging.segment import Proposal, normalize_counted, propose

logger = logging.getLogger(__name__)

T = TypeVar("T")

# A PNG whose header says it has at most this many pixels (an MNIST-style 28x28 upload) is
# decoded on the event loop: that takes less than a hop to a worker thread and back, while
# anything bigger (a 64x64 PNG already, a photo by far) would stall every other request.
# The bytes alone cannot tell small from big (a 4 KB PNG can hold a 1000x1000 page); the
# header can, for free. ``python -m benchmarks.bench_preprocessing`` measures both.
INLINE_MAX_PIXELS = 28 * 28


class Preprocess(StrEnum):
    """How an upload becomes the model's 28x28 input."""

    full = "full"
    """Find the digit, invert dark-on-light, crop, scale to 20 px, centre by mass (MNIST's way)."""
    none = "none"
    """Greyscale and squash to 28x28 only: for images that already are MNIST-style."""


@dataclass(frozen=True, slots=True)
class Prepared:
    """One upload as the model takes it, (28, 28, 1) float32 in [0, 1], and how many digits
    seemed to stand side by side in it (1 unless normalised: /predict then asks /read's
    segmentation whether they are digits)."""

    image: np.ndarray
    digits_seen: int = 1
    picture: Picture | None = None
    """The decoded upload, kept (when asked for) only if several digits were seen: /read's
    segmentation then starts from it instead of decoding the upload again."""


@dataclass(frozen=True, slots=True)
class Picture:
    """A decoded upload: its greyscale pixels, and how many upload pixels each one spans."""

    gray: np.ndarray
    scale: float


def prepare_image(
    data: bytes,
    preprocess: Preprocess = Preprocess.full,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    sniffed: Sniffed | None = None,
    count_digits: bool = True,
    keep_picture: bool = False,
) -> Prepared:
    """Bytes of any supported image -> the model's input; only ImageErrors leave it.

    ``count_digits`` also counts the digits that stand beside the one normalised (/predict
    answers ``several_digits`` on them); the serving protocols' image model does not ask.
    ``keep_picture`` keeps the decoded upload when there are several: one upload's pixels
    may be held a little longer, a batch's would add up, so only /predict asks.
    """
    gray, scale = decode_grayscale_scaled(data, max_pixels, sniffed)
    if preprocess is Preprocess.none:
        return Prepared(squash_to_mnist(gray)[..., np.newaxis])
    if not count_digits:
        return Prepared(normalize_digit(gray)[..., np.newaxis])
    image, count = normalize_counted(gray)
    picture = Picture(gray, scale) if keep_picture and count > 1 else None
    return Prepared(image[..., np.newaxis], count, picture)


def preprocess_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Bytes of any supported image -> (28, 28, 1) float32 model input in [0, 1]."""
    return prepare_image(data, max_pixels=max_pixels, count_digits=False).image


def preprocess_naive(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """``?preprocess=none``: greyscale and squash to 28x28 only (``squash_to_mnist``)."""
    return prepare_image(data, Preprocess.none, max_pixels=max_pixels).image


def propose_number_in(
    data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, sniffed: Sniffed | None = None
) -> Proposal:
    """/read's: every candidate digit of the number in the upload (``app.imaging.segment``)."""
    return propose(*decode_grayscale_scaled(data, max_pixels, sniffed))


class ImagePreparer:
    """Prepares uploads for the model without stalling the event loop or queueing refusals.

    Big uploads are decoded in worker threads, at most ``limiter``'s many at once: one per
    core is all that can run, and more would only hold more decoded photos in memory.
    """

    def __init__(self, *, max_pixels: int, limiter: anyio.CapacityLimiter) -> None:
        self.max_pixels = max_pixels
        self.limiter = limiter

    async def prepare(self, data: bytes, preprocess: Preprocess) -> Prepared:
        """One upload's model input, or the ImageError that says why it has none."""
        sniffed = sniff(data, max_pixels=self.max_pixels)
        max_pixels = self.max_pixels
        return await self._run(
            lambda: prepare_image(
                data, preprocess, max_pixels=max_pixels, sniffed=sniffed, keep_picture=True
            ),
            inline=decodes_inline(sniffed),
        )

    async def prepare_many(
        self, uploads: list[bytes], preprocess: Preprocess, *, count_digits: bool = True
    ) -> list[Prepared | ImageError]:
        """Each upload's model input, or its ImageError; all decoded in one thread hop."""
        results: list[Prepared | ImageError | Sniffed] = []
        for data in uploads:
            try:
                results.append(sniff(data, max_pixels=self.max_pixels))
            except ImageError as exc:
                results.append(exc)
        max_pixels = self.max_pixels

        def run_all() -> list[Prepared | ImageError]:
            done: list[Prepared | ImageError] = []
            for data, item in zip(uploads, results, strict=True):
                if not isinstance(item, Sniffed):
                    done.append(item)
                    continue
                work = functools.partial(
                    prepare_image,
                    data,
                    preprocess,
                    max_pixels=max_pixels,
                    sniffed=item,
                    count_digits=count_digits,
                )
                try:
                    done.append(_typed(work))
                except ImageError as exc:
                    done.append(exc)
            return done

        inline = all(not isinstance(item, Sniffed) or decodes_inline(item) for item in results)
        if inline:
            return run_all()
        return await anyio.to_thread.run_sync(run_all, limiter=self.limiter)

    async def propose_number(self, data: bytes) -> Proposal:
        """/read's candidate digits (``propose_number_in``), off the event loop."""
        sniffed = sniff(data, max_pixels=self.max_pixels)
        max_pixels = self.max_pixels
        return await self._run(
            lambda: propose_number_in(data, max_pixels=max_pixels, sniffed=sniffed),
            inline=decodes_inline(sniffed),
        )

    async def propose_number_from(self, picture: Picture) -> Proposal:
        """The same candidates for an upload ``prepare`` has decoded already."""
        inline = picture.gray.size <= INLINE_MAX_PIXELS
        return await self._run(lambda: propose(picture.gray, picture.scale), inline=inline)

    async def _run(self, work: Callable[[], T], *, inline: bool) -> T:
        if inline:
            return _typed(work)
        return await anyio.to_thread.run_sync(_typed, work, limiter=self.limiter)


def decodes_inline(sniffed: Sniffed) -> bool:
    """True for a PNG whose header says it has at most INLINE_MAX_PIXELS pixels."""
    pixels = sniffed.pixels
    return pixels is not None and pixels <= INLINE_MAX_PIXELS


def _typed(work: Callable[[], T]) -> T:
    try:
        return work()
    except ImageError:
        raise
    except Exception as exc:
        # Decoding promises typed errors; if a strange file slips past that, the client still
        # sent an unusable image (400), and the trace goes to the log, not to a 500.
        logger.exception("preprocessing raised an untyped error")
        raise InvalidImage("The upload could not be decoded as an image.") from exc
