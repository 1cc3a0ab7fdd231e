"""Batches concurrent requests into shared model calls, on one worker thread off the event loop.

Every model call pays a fixed overhead before any arithmetic, which the images of one call
share: calling the model once per request would cap the service at the rate that overhead
allows, while a call for a full batch costs little more than a call for one image.
``BatchingPredictor`` therefore queues requests and runs whatever has gathered as one call. It
does not know how the model was loaded: it is given a function from a batch to probabilities.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from contract import INPUT_SHAPE, NUM_CLASSES

logger = logging.getLogger(__name__)


class Overloaded(Exception):  # noqa: N818 - the service's vocabulary
    """The queue already holds ``queue_max`` images; the caller should retry shortly."""


class PredictorClosed(Exception):  # noqa: N818 - the service's vocabulary
    """The predictor is not running (not started yet, or shutting down)."""


class InferenceFailed(Exception):  # noqa: N818 - the service's vocabulary
    """The model call for this request's images raised; other requests are unaffected."""


@dataclass(slots=True, eq=False)
class _Job:
    rows: np.ndarray
    future: asyncio.Future[np.ndarray]
    enqueued_at: float


BatchObserver = Callable[[int, float], None]
"""Called after every model call with (images in the call, seconds it took)."""


class BatchingPredictor:
    """Owns the model calls: gathers concurrent ``predict`` calls into shared batches.

    A dispatcher task takes every queued request that fits in ``max_batch_size`` images and runs
    them as one call on a single worker thread; requests that arrive meanwhile form the next
    batch, so under load batches fill without anyone waiting on a timer. Only when the previous
    batch was shared (evidence of concurrent clients) and the current one is not full does the
    dispatcher wait, at most until the oldest request has been queued ``max_wait_s``: a lone
    request on an idle service goes straight to the model.

    Use from one event loop: ``await start()`` before the first ``predict``, ``await stop()``
    to refuse new work and finish what is queued.
    """

    def __init__(
        self,
        infer: Callable[[np.ndarray], np.ndarray],
        *,
        max_batch_size: int = 32,
        max_wait_s: float = 0.002,
        queue_max: int = 512,
        on_batch: BatchObserver | None = None,
    ) -> None:
        if max_batch_size < 1 or queue_max < 1 or max_wait_s < 0:
            raise ValueError("max_batch_size and queue_max must be >= 1, max_wait_s >= 0")
        self._infer = infer
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.queue_max = queue_max
        self._on_batch = on_batch
        self._queue: deque[_Job] = deque()
        self._queued_rows = 0
        self._accepting = False
        self._last_batch_jobs = 0
        self._calls = 0
        self._arrived: asyncio.Event | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None

    @property
    def queued_rows(self) -> int:
        """Images waiting for a model call (not counting the call in progress)."""
        return self._queued_rows

    @property
    def calls(self) -> int:
        """Model calls made so far, successful or not."""
        return self._calls

    @property
    def running(self) -> bool:
        return self._accepting

    async def start(self) -> None:
        if self._dispatcher is not None:
            raise RuntimeError("BatchingPredictor.start() called twice")
        self._arrived = asyncio.Event()
        # One thread: TensorFlow already spreads one call over every core, and two concurrent
        # calls would only fight over them.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self._dispatcher = asyncio.create_task(self._dispatch_forever(), name="batching-predictor")
        self._accepting = True

    async def stop(self) -> None:
        """Refuse new requests, answer every queued one, then release the worker thread."""
        if self._dispatcher is None:
            return
        self._accepting = False
        assert self._arrived is not None
        assert self._executor is not None
        self._arrived.set()
        await self._dispatcher
        self._executor.shutdown(wait=True)

    async def predict(self, batch: np.ndarray) -> np.ndarray:
        """(N,28,28,1) float32 in [0,1] -> (N,10) probabilities, row i for image i.

        Raises Overloaded when the queue is full, PredictorClosed when not running, and
        InferenceFailed when the model call for these images raised.
        """
        if batch.ndim != 4 or batch.shape[1:] != INPUT_SHAPE or batch.dtype != np.float32:
            raise ValueError(f"expected float32 (N, 28, 28, 1), got {batch.dtype} {batch.shape}")
        if not self._accepting:
            raise PredictorClosed("The model is not serving right now.")
        n = len(batch)
        if n == 0:
            return np.empty((0, NUM_CLASSES), dtype=np.float32)
        # An empty queue admits any request, so a batch larger than queue_max is not refused
        # forever; otherwise the queue's memory stays bounded by queue_max images.
        if self._queued_rows and self._queued_rows + n > self.queue_max:
            raise Overloaded("The service is busy: the inference queue is full; retry shortly.")
        loop = asyncio.get_running_loop()
        now = loop.time()
        futures = []
        for start in range(0, n, self.max_batch_size):
            job = _Job(batch[start : start + self.max_batch_size], loop.create_future(), now)
            self._queue.append(job)
            futures.append(job.future)
        self._queued_rows += n
        assert self._arrived is not None
        self._arrived.set()
        if len(futures) == 1:
            return await futures[0]
        return np.concatenate(await asyncio.gather(*futures))

    async def _dispatch_forever(self) -> None:
        assert self._arrived is not None
        loop = asyncio.get_running_loop()
        while True:
            while not self._queue:
                if not self._accepting:
                    return
                self._arrived.clear()
                await self._arrived.wait()
            jobs: list[_Job] = []
            rows, full = self._take(jobs, 0)
            if not full and self.max_wait_s > 0 and max(len(jobs), self._last_batch_jobs) > 1:
                deadline = jobs[0].enqueued_at + self.max_wait_s
                while not full and (remaining := deadline - loop.time()) > 0:
                    self._arrived.clear()
                    try:
                        async with asyncio.timeout(remaining):
                            await self._arrived.wait()
                    except TimeoutError:
                        pass
                    rows, full = self._take(jobs, rows)
            if not jobs:  # every queued job had been cancelled by its client
                continue
            self._last_batch_jobs = len(jobs)
            try:
                await self._run(jobs)
            except Exception as exc:  # a bug here must not leave requests hanging forever
                logger.exception("batch dispatch failed")
                self._fail(jobs, exc)

    def _take(self, jobs: list[_Job], rows: int) -> tuple[int, bool]:
        """Move queued jobs into ``jobs`` while they fit; return (rows, batch is full)."""
        queue = self._queue
        while queue:
            job = queue[0]
            n = len(job.rows)
            if job.future.done():  # cancelled: the client went away
                queue.popleft()
                self._queued_rows -= n
                continue
            if rows + n > self.max_batch_size:
                return rows, True
            queue.popleft()
            self._queued_rows -= n
            jobs.append(job)
            rows += n
        return rows, rows >= self.max_batch_size

    async def _run(self, jobs: list[_Job]) -> None:
        batch = jobs[0].rows if len(jobs) == 1 else np.concatenate([job.rows for job in jobs])
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        self._calls += 1
        error: Exception | None = None
        try:
            probabilities = await loop.run_in_executor(self._executor, self._infer, batch)
        except Exception as exc:
            error = exc
        seconds = time.perf_counter() - started
        if error is None and probabilities.shape != (len(batch), NUM_CLASSES):
            error = InferenceFailed(
                f"the model returned shape {probabilities.shape} for {len(batch)} images"
            )
        self._observe(len(batch), seconds)
        if error is None:
            offset = 0
            for job in jobs:
                n = len(job.rows)
                if not job.future.done():
                    job.future.set_result(probabilities[offset : offset + n])
                offset += n
        elif len(jobs) > 1:
            # Retry each request alone so that one bad input cannot fail its batch-mates.
            logger.warning(
                "batch failed; retrying its requests one by one",
                extra={"fields": {"requests": len(jobs), "error": repr(error)}},
            )
            for job in jobs:
                if not job.future.done():
                    await self._run([job])
        else:
            logger.error(
                "model call failed", exc_info=error, extra={"fields": {"images": len(batch)}}
            )
            self._fail(jobs, error)

    def _observe(self, images: int, seconds: float) -> None:
        if self._on_batch is None:
            return
        try:
            self._on_batch(images, seconds)
        except Exception:  # metrics must never fail a prediction
            logger.exception("batch observer failed")

    @staticmethod
    def _fail(jobs: list[_Job], cause: Exception) -> None:
        if isinstance(cause, InferenceFailed):
            detail = str(cause)
        else:  # the exception's own text may hold paths or tensors; the log has it
            detail = f"the model call raised {type(cause).__name__}"
        for job in jobs:
            if not job.future.done():
                job.future.set_exception(InferenceFailed(detail))
