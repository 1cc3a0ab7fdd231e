"""Finds, loads and owns the served SavedModel, and batches concurrent requests into its calls.

The model directory written by ``training/`` is the whole contract: ``<root>/<n>/`` holds a
SavedModel whose ``serving_default`` signature maps ``image`` float32 [N,28,28,1] in [0,1] to
``probabilities`` float32 [N,10], and ``metadata.json`` beside it. Nothing here imports
``training/``.

One model call costs about 1 ms of fixed overhead plus ~0.2 ms per image on a 2-core CPU, so
calling the signature once per request caps the service near a few hundred requests/s while
one call for 32 images costs barely more than a call for one. ``BatchingPredictor`` therefore
queues requests and runs whatever has gathered as one call on a worker thread, off the event
loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from contract import (
    INPUT_NAME,
    INPUT_SHAPE,
    METADATA_FILE,
    NUM_CLASSES,
    OUTPUT_NAME,
    SAVED_MODEL_FILE,
    SIGNATURE,
    TFLITE_FILE,
    NoModelFound,
    latest_version,
)

TRAIN_HINT = "Train one with `make train`, or point MODEL_DIR at a model directory."

logger = logging.getLogger(__name__)


class ModelLoadError(Exception):
    """Why no model could be served: one line naming what was looked for and what to do."""


class Overloaded(Exception):  # noqa: N818 - the service's vocabulary
    """The queue already holds ``queue_max`` images; the caller should retry shortly."""


class PredictorClosed(Exception):  # noqa: N818 - the service's vocabulary
    """The predictor is not running (not started yet, or shutting down)."""


class InferenceFailed(Exception):  # noqa: N818 - the service's vocabulary
    """The model call for this request's images raised; other requests are unaffected."""


# --- finding and loading ----------------------------------------------------------------------


def find_latest_version(root: Path, marker: str = SAVED_MODEL_FILE) -> Path:
    """``contract.latest_version``, failing as a ModelLoadError that says how to get a model."""
    try:
        return latest_version(root, marker)
    except NoModelFound as exc:
        raise ModelLoadError(f"{exc} {TRAIN_HINT}") from exc


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A served model with the metadata written beside it.

    Either a restored SavedModel's serving signature (optionally with its TFLite copy in
    ``compiled``), or, on the lean image, ``model.tflite`` alone (``signature`` None).
    """

    signature: Callable[..., Mapping[str, Any]] | None
    metadata: dict[str, Any]
    version: str
    path: Path
    # The restored object owns the variables the signature reads; if it were garbage-collected
    # the signature would fail with "resource does not exist".
    owner: Any = field(default=None, repr=False, compare=False)
    # The signature compiled to TFLite (app.compiled), when that succeeded and was asked for.
    compiled: Callable[[np.ndarray], np.ndarray] | None = field(
        default=None, repr=False, compare=False
    )
    compiled_source: str | None = None

    @property
    def backend(self) -> str:
        """What answers ``predict``: ``tflite`` (the TFLite copy beside the SavedModel),
        ``savedmodel`` (the signature) or ``litert`` (``model.tflite`` without TensorFlow)."""
        if self.compiled is None:
            return "savedmodel"
        return "tflite" if self.signature is not None else "litert"

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """(N,28,28,1) float32 -> (N,10) probabilities. Blocks: call from one worker thread."""
        if self.compiled is not None:
            return self.compiled(batch)
        return self.call_signature(batch)

    def call_signature(self, batch: np.ndarray) -> np.ndarray:
        """The SavedModel's own answer, whatever serves ``predict``."""
        if self.signature is None:
            raise RuntimeError("served without TensorFlow: there is no SavedModel signature")
        return self.signature(image=batch)[OUTPUT_NAME].numpy()


def load_model(path: Path, *, backend: str = "savedmodel", threads: int = 1) -> LoadedModel:
    """Restore the newest version under ``path`` (or ``path`` itself) and check its signature.

    With ``backend="litert"`` only ``model.tflite`` is read, on LiteRT, and TensorFlow is never
    imported (``app.standalone``). With ``backend="tflite"`` the signature is also compiled to TFLite (``threads`` kernel
    threads) and served that way once it agrees with the signature; if conversion fails or
    the answers differ, a warning is logged and the signature itself is served.

    Every failure is a ModelLoadError with a one-line message; the cause stays chained for
    debugging but never needs to be shown to an operator.
    """
    if backend == "litert":
        from app.standalone import load_standalone

        return load_standalone(path, threads=threads)
    version_dir = find_latest_version(path)
    if not (version_dir / SAVED_MODEL_FILE).is_file():
        raise ModelLoadError(
            f"No model found in {version_dir}: {SAVED_MODEL_FILE} is missing. {TRAIN_HINT}"
        )
    metadata = read_metadata(version_dir)
    # Imported here, not at module level: TensorFlow takes seconds to import, and settings
    # errors or `import app.main` should not wait for it.
    try:
        import tensorflow as tf
    except ImportError as exc:
        raise ModelLoadError(
            f"INFERENCE_BACKEND={backend} restores the SavedModel, but TensorFlow is not "
            "installed (the lean image, or `pip install mnist-service` without the "
            "[tensorflow] extra). Set INFERENCE_BACKEND=litert to serve model.tflite alone."
        ) from exc

    try:
        owner = tf.saved_model.load(str(version_dir))
    except Exception as exc:
        raise ModelLoadError(
            f"Could not load the SavedModel in {version_dir} ({_one_line(exc)}); "
            f"it may be corrupt or from an incompatible TensorFlow. {TRAIN_HINT}"
        ) from exc
    signature = owner.signatures.get(SIGNATURE)
    if signature is None:
        raise ModelLoadError(
            f"The SavedModel in {version_dir} has no {SIGNATURE!r} signature "
            f"(it has {sorted(owner.signatures) or 'none'}). {TRAIN_HINT}"
        )
    _check_signature(signature, version_dir)
    loaded = LoadedModel(
        signature=signature,
        metadata=metadata,
        version=version_name(version_dir, metadata),
        path=version_dir,
        owner=owner,
    )
    if backend == "tflite":
        loaded = _compiled(loaded, threads)
    return loaded


def _compiled(loaded: LoadedModel, threads: int) -> LoadedModel:
    """``loaded`` served through TFLite: its ``model.tflite`` if that agrees with the signature,
    else the signature converted now; unchanged (the signature itself) if neither works."""
    from app.compiled import (
        CompilationFailed,
        check_agreement,
        compile_signature,
        read_compiled,
    )

    started = time.perf_counter()
    # (source reported by /model and the log, what a warning calls it, how to get a runner)
    candidates = (
        (TFLITE_FILE, TFLITE_FILE, lambda: read_compiled(loaded.path / TFLITE_FILE, threads)),
        (
            "converted at startup",
            "the signature converted to TFLite",
            lambda: compile_signature(loaded.signature, loaded.owner, threads),
        ),
    )
    for source, name, make_runner in candidates:
        try:
            runner = make_runner()
            if runner is None:  # no model.tflite: an older model directory
                continue
            difference = check_agreement(loaded.call_signature, runner)
        except CompilationFailed as exc:
            logger.warning(
                f"{name} not used",
                extra={"fields": {"path": str(loaded.path), "reason": str(exc)}},
            )
            continue
        logger.info(
            "serving through TFLite",
            extra={
                "fields": {
                    "source": source,
                    "threads": threads,
                    "bytes": runner.model_bytes,
                    "max_difference": difference,
                    "ms": round((time.perf_counter() - started) * 1000, 1),
                }
            },
        )
        return replace(loaded, compiled=runner, compiled_source=source)
    logger.warning(
        "serving the SavedModel signature itself", extra={"fields": {"path": str(loaded.path)}}
    )
    return loaded


def warm_up(model: LoadedModel, max_batch_size: int) -> None:
    """Call the model once at every batch size it will be called with, and check its output.

    The first call at a new batch size can take 10-40x a steady one (the CPU kernels are set up
    per input shape), which would otherwise land on the first unlucky users. Blocks.
    """
    for size in range(1, max_batch_size + 1):
        batch = np.zeros((size, *INPUT_SHAPE), dtype=np.float32)
        try:
            probabilities = model.predict(batch)
        except Exception as exc:
            raise ModelLoadError(
                f"The model in {model.path} failed on a warm-up batch of {size} "
                f"({_one_line(exc)}). {TRAIN_HINT}"
            ) from exc
        if probabilities.shape != (size, NUM_CLASSES) or not np.all(np.isfinite(probabilities)):
            raise ModelLoadError(
                f"The model in {model.path} returned {probabilities.shape} for a batch of "
                f"{size}; expected ({size}, {NUM_CLASSES}) finite probabilities. {TRAIN_HINT}"
            )


def version_name(version_dir: Path, metadata: Mapping[str, Any]) -> str:
    """The directory's number; for a version directory served directly under another name,
    the version its metadata records, else the directory's name."""
    if version_dir.name.isdigit():
        return version_dir.name
    return str(metadata.get("version") or version_dir.name)


def read_metadata(version_dir: Path) -> dict[str, Any]:
    """metadata.json as a dict; a model without one is served with empty metadata."""
    metadata_path = version_dir / METADATA_FILE
    if not metadata_path.is_file():
        logger.warning("model has no metadata", extra={"fields": {"path": str(version_dir)}})
        return {}
    try:
        metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(
            f"Could not read {metadata_path} ({_one_line(exc)}). {TRAIN_HINT}"
        ) from exc
    if not isinstance(metadata, dict):
        raise ModelLoadError(f"{metadata_path} is not a JSON object. {TRAIN_HINT}")
    return metadata


def _check_signature(signature: Any, version_dir: Path) -> None:
    inputs = signature.structured_input_signature[1]
    outputs = signature.structured_outputs
    spec = inputs.get(INPUT_NAME)
    shape_ok = spec is not None and tuple(spec.shape.as_list()[1:]) == INPUT_SHAPE
    if not shape_ok or OUTPUT_NAME not in outputs:
        raise ModelLoadError(
            f"The SavedModel in {version_dir} does not take {INPUT_NAME!r} [N,28,28,1] and "
            f"return {OUTPUT_NAME!r} (inputs {sorted(inputs)}, outputs {sorted(outputs)}). "
            f"{TRAIN_HINT}"
        )


def _one_line(exc: BaseException, limit: int = 200) -> str:
    """TensorFlow errors span dozens of lines; an operator needs the first."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- batching ---------------------------------------------------------------------------------


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
