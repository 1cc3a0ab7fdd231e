"""``DigitService``: the one object behind the routes, owned by the lifespan.

It holds what serving needs (the model, the batcher, the image preparer, the operating points,
the metrics) and answers the three questions the routes ask: what digit is in this image,
in each of these images, and what number is in this photo. A request goes down once: route
-> service -> imaging -> batcher -> model, and back up to the route, which only turns the
answer into JSON. Readiness is decided here, in ``check_ready``, for every route alike.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from dataclasses import dataclass

import anyio
import anyio.to_thread
import numpy as np
from prometheus_client import multiprocess

from app.imaging.errors import ImageError
from app.imaging.prepare import ImagePreparer, Prepared, Preprocess
from app.imaging.segment import Box, Mark, Proposal, choose, cut_through_ink
from app.observability.metrics import Metrics
from app.runtime.batcher import BatchingPredictor
from app.runtime.loading import LoadedModel, load_model, warm_up
from app.settings import Settings
from app.verdicts import (
    Judgement,
    NumberVerdict,
    OperatingPoints,
    Verdict,
    in_a_number,
    judge,
    resolve_operating_points,
    several,
)

logger = logging.getLogger("app")


class NotReady(Exception):  # noqa: N818 - the service's vocabulary
    """The model is not loaded yet, or shutdown has begun: retry shortly."""


@dataclass(frozen=True, slots=True)
class Stages:
    """When preparing and the model call ended (``time.perf_counter``), for ``timing_ms``."""

    prepared: float
    inferred: float


@dataclass(frozen=True, slots=True)
class Answer:
    """One image's answer: the verdict, the probabilities it was judged on, the model's view."""

    judged: Judgement
    probabilities: np.ndarray
    image: np.ndarray


@dataclass(frozen=True, slots=True)
class ReadPiece:
    """A digit-sized piece of a number, where it is in the upload, and how it was read."""

    box: Box
    judged: Judgement
    probabilities: np.ndarray
    image: np.ndarray
    cut: bool  # cut out of ink it shared with a neighbour (touching digits)


@dataclass(frozen=True, slots=True)
class NumberRead:
    """A number's reading: its verdict, its digits and the digit-sized pieces that are not
    digits (left to right), and the marks set aside before reading (dashes, dots, rules)."""

    verdict: NumberVerdict
    digits: list[ReadPiece]
    not_digits: list[ReadPiece]
    marks: tuple[Mark, ...]
    candidates: int

    @property
    def number(self) -> str | None:
        return "".join(str(piece.judged.best_guess) for piece in self.digits) or None

    @property
    def sure_uncut_digits(self) -> int:
        return sum(d.judged.verdict is Verdict.digit and not d.cut for d in self.digits)


class DigitService:
    """Serving state and the work done with it; ``start`` and ``stop`` are the lifespan's."""

    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self._model: LoadedModel | None = None
        self.predictor: BatchingPredictor | None = None
        self._preparer: ImagePreparer | None = None
        self._points: OperatingPoints | None = None
        self._ready = False

    # --- lifecycle (the lifespan's) ---------------------------------------------------------

    async def start(self) -> None:
        """Load and warm the model, start the batcher; ready once this returns."""
        settings, metrics = self.settings, self.metrics
        started = time.perf_counter()
        loaded, points = await anyio.to_thread.run_sync(_load_and_warm_up, settings)
        predictor = BatchingPredictor(
            loaded.predict,
            max_batch_size=settings.BATCH_MAX_SIZE,
            max_wait_s=settings.batch_max_wait_s,
            queue_max=settings.QUEUE_MAX,
            on_batch=metrics.observe_batch,
        )
        await predictor.start()
        # TensorFlow leaves hundreds of thousands of Python objects behind, and every full
        # collection walked them all with the event loop stopped: that was the service's p99
        # under load. They live as long as the process, so move them out of the collector's
        # sight once, after loading.
        gc.collect()
        gc.freeze()
        limiter = anyio.CapacityLimiter(os.cpu_count() or 1)
        self._preparer = ImagePreparer(max_pixels=settings.MAX_IMAGE_PIXELS, limiter=limiter)
        self._model, self.predictor, self._points = loaded, predictor, points
        self._ready = True
        metrics.set_model(loaded.version, str(loaded.metadata.get("arch", "unknown")))
        metrics.model_ready.set(1)
        test_accuracy = loaded.metadata.get("test_accuracy")
        logger.info(
            "model ready",
            extra={
                "fields": {
                    "model_version": loaded.version,
                    "model_path": str(loaded.path),
                    "backend": loaded.backend,
                    "test_accuracy": test_accuracy if isinstance(test_accuracy, float) else None,
                    "not_a_digit_below": points.not_a_digit_below,
                    "uncertain_below": points.uncertain_below,
                    "operating_points_from": points.source,
                    "startup_ms": round((time.perf_counter() - started) * 1000, 1),
                }
            },
        )

    async def stop(self) -> None:
        """Stop taking work, then let the batcher drain what it holds."""
        self._ready = False
        self.metrics.model_ready.set(0)
        calls = 0
        if self.predictor is not None:
            await self.predictor.stop()
            calls = self.predictor.calls
        multiproc_dir = self.settings.PROMETHEUS_MULTIPROC_DIR
        if multiproc_dir is not None:
            # Its live gauges leave the sum; its counters stay, as prometheus_client intends.
            multiprocess.mark_process_dead(os.getpid(), str(multiproc_dir))
        logger.info("stopped", extra={"fields": {"model_calls": calls}})

    # --- readiness --------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """The one readiness rule, for the prediction routes and every health route alike:
        the model is loaded and warmed up, and shutdown has not begun."""
        return self._ready

    def check_ready(self) -> None:
        if not self.ready:
            raise NotReady()

    @property
    def model(self) -> LoadedModel:
        """The served model; only read once ``check_ready`` has passed."""
        if self._model is None:
            raise NotReady()
        return self._model

    @property
    def loaded(self) -> LoadedModel | None:
        """The model, or None before the lifespan has loaded one (for /health)."""
        return self._model

    @property
    def operating_points(self) -> OperatingPoints:
        if self._points is None:
            raise NotReady()
        return self._points

    @property
    def preparer(self) -> ImagePreparer:
        if self._preparer is None:
            raise NotReady()
        return self._preparer

    def exposition(self) -> bytes:
        """The Prometheus text exposition, with the queue's depth as of now."""
        queued = 0 if self.predictor is None else self.predictor.queued_rows
        self.metrics.queued.set(queued)
        return self.metrics.exposition(self.settings.PROMETHEUS_MULTIPROC_DIR)

    # --- work -------------------------------------------------------------------------------

    async def predict(self, batch: np.ndarray) -> np.ndarray:
        """(N, 28, 28, 1) float32 in [0, 1] -> (N, 10) calibrated probabilities, batched with
        every other request's. Overloaded when the queue is full."""
        if self.predictor is None:
            raise NotReady()
        return await self.predictor.predict(batch)

    def judge(self, probabilities: np.ndarray) -> Judgement:
        return judge(probabilities, self.operating_points)

    async def classify(self, data: bytes, preprocess: Preprocess) -> tuple[Answer, Stages]:
        """The digit in one upload, or ``several_digits`` when /read reads several in it."""
        prepared = await self.preparer.prepare(data, preprocess)
        prepared_at = time.perf_counter()
        probabilities = (await self.predict(prepared.image[np.newaxis]))[0]
        inferred_at = time.perf_counter()
        judged = self.judge(probabilities)
        if await self._several(data, prepared, judged):
            judged = several(judged)
        self.metrics.count_predictions((judged,))
        return Answer(judged, probabilities, prepared.image), Stages(prepared_at, inferred_at)

    async def classify_many(
        self, uploads: list[bytes], preprocess: Preprocess
    ) -> tuple[list[Answer | ImageError], Stages]:
        """Each upload's answer, or the ImageError that says why it has none; one model call."""
        prepared_all = await self.preparer.prepare_many(uploads, preprocess)
        prepared_at = time.perf_counter()
        good = [item for item in prepared_all if not isinstance(item, ImageError)]
        probabilities = np.empty((0, 10), dtype=np.float32)
        if good:
            probabilities = await self.predict(np.stack([item.image for item in good]))
        inferred_at = time.perf_counter()
        rows = iter(zip(good, probabilities, strict=True))
        answers: list[Answer | ImageError] = []
        judgements: list[Judgement] = []
        for data, item in zip(uploads, prepared_all, strict=True):
            if isinstance(item, ImageError):
                answers.append(item)
                continue
            prepared, row = next(rows)
            judged = self.judge(row)
            if await self._several(data, prepared, judged):
                judged = several(judged)
            judgements.append(judged)
            answers.append(Answer(judged, row, prepared.image))
        self.metrics.count_predictions(judgements)
        return answers, Stages(prepared_at, inferred_at)

    async def read_number(self, data: bytes) -> tuple[NumberRead, Stages]:
        """Every digit of the number in one upload, left to right (``app.imaging.segment``)."""
        proposal = await self.preparer.propose_number(data)
        prepared_at = time.perf_counter()
        probabilities = await self.predict(proposal.images)
        inferred_at = time.perf_counter()
        reading = self._read(proposal, probabilities)
        self.metrics.count_number(reading.verdict.value, len(reading.digits))
        return reading, Stages(prepared_at, inferred_at)

    def _read(self, proposal: Proposal, probabilities: np.ndarray) -> NumberRead:
        confidences = probabilities.max(axis=1) if len(probabilities) else probabilities
        chosen = choose(proposal, confidences)
        digits: list[ReadPiece] = []
        not_digits: list[ReadPiece] = []
        points = in_a_number(self.operating_points)
        for index in chosen:
            candidate = proposal.candidates[index]
            judged = judge(probabilities[index], points)
            cut = cut_through_ink(proposal, index)
            piece = ReadPiece(candidate.box, judged, probabilities[index], candidate.image, cut)
            (not_digits if judged.verdict is Verdict.not_a_digit else digits).append(piece)
        # A digit-sized piece the model cannot read may be a digit it cannot read (the number
        # could be missing one); where digits touched, the reading depends on where they were
        # cut apart, and sure digits from a wrong cut are a confidently wrong number.
        was_cut = any(piece.cut for piece in (*digits, *not_digits))
        if not digits:
            verdict = NumberVerdict.no_number
        elif not_digits or was_cut or any(d.judged.verdict is not Verdict.digit for d in digits):
            verdict = NumberVerdict.uncertain
        else:
            verdict = NumberVerdict.number
        return NumberRead(verdict, digits, not_digits, proposal.marks, len(proposal.candidates))

    async def _several(self, data: bytes, prepared: Prepared, judged: Judgement) -> bool:
        """Whether an upload whose answer is not a sure digit holds several digits side by
        side: only when /read's reading finds at least two sure ones, none cut out of shared
        ink, so that a word or a scatter of blobs is not called a row of digits. It starts
        from the decoded picture when /predict kept it; a batch's item is decoded again."""
        if prepared.digits_seen <= 1 or judged.verdict is Verdict.digit:
            return False
        preparer = self.preparer
        try:
            if prepared.picture is not None:
                proposal = await preparer.propose_number_from(prepared.picture)
            else:
                proposal = await preparer.propose_number(data)
        except ImageError:
            return False
        probabilities = await self.predict(proposal.images)
        # A letter's strokes, cut apart, can each look like an unsure 1: only sure digits count.
        return self._read(proposal, probabilities).sure_uncut_digits > 1


def _load_and_warm_up(settings: Settings) -> tuple[LoadedModel, OperatingPoints]:
    loaded = load_model(
        settings.MODEL_DIR, backend=settings.INFERENCE_BACKEND, threads=settings.INFERENCE_THREADS
    )
    # Resolved before the warm-up: settings that do not fit the model fail startup at once.
    points = resolve_operating_points(
        loaded.metadata,
        not_a_digit_below=settings.NOT_A_DIGIT_BELOW,
        uncertain_below=settings.UNCERTAIN_BELOW,
    )
    warm_up(loaded, settings.BATCH_MAX_SIZE)
    return loaded, points
