"""Finds, loads, checks and warms up the served model, as a ``LoadedModel``.

The model directory written by ``training/`` is the whole contract: ``<root>/<n>/`` holds a
SavedModel whose ``serving_default`` signature maps ``image`` float32 [N,28,28,1] in [0,1] to
``probabilities`` float32 [N,10], and ``metadata.json`` beside it. Which directory that is, and
what its files are called, is ``contract``'s to say; nothing here imports ``training/``.
Serving its TFLite copy is ``app.runtime.litert``; ``model.tflite`` alone, without TensorFlow,
is ``app.runtime.standalone``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
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
    ``tflite``), or, on the lean image, ``model.tflite`` alone (``signature`` None).
    """

    signature: Callable[..., Mapping[str, Any]] | None
    metadata: dict[str, Any]
    version: str
    path: Path
    # The restored object owns the variables the signature reads; if it were garbage-collected
    # the signature would fail with "resource does not exist".
    owner: Any = field(default=None, repr=False, compare=False)
    # The TFLite copy's runner (app.runtime.litert), when one was asked for and agreed.
    tflite: Callable[[np.ndarray], np.ndarray] | None = field(
        default=None, repr=False, compare=False
    )
    tflite_source: str | None = None

    @property
    def backend(self) -> str:
        """What answers ``predict``: ``tflite`` (the TFLite copy beside the SavedModel),
        ``savedmodel`` (the signature) or ``litert`` (``model.tflite`` without TensorFlow)."""
        if self.tflite is None:
            return "savedmodel"
        return "tflite" if self.signature is not None else "litert"

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """(N,28,28,1) float32 -> (N,10) probabilities. Blocks: call from one worker thread."""
        if self.tflite is not None:
            return self.tflite(batch)
        return self.call_signature(batch)

    def call_signature(self, batch: np.ndarray) -> np.ndarray:
        """The SavedModel's own answer, whatever serves ``predict``."""
        if self.signature is None:
            raise RuntimeError("served without TensorFlow: there is no SavedModel signature")
        return self.signature(image=batch)[OUTPUT_NAME].numpy()


def load_model(path: Path, *, backend: str = "savedmodel", threads: int = 1) -> LoadedModel:
    """Restore the newest version under ``path`` (or ``path`` itself) and check its signature.

    With ``backend="litert"`` only ``model.tflite`` is read, on LiteRT, and TensorFlow is never
    imported (``app.runtime.standalone``). With ``backend="tflite"`` the model is also served
    through TFLite (``threads`` kernel threads) once that agrees with the signature; if no TFLite
    copy can be read or converted, or the answers differ, a warning is logged and the signature
    itself is served.

    Every failure is a ModelLoadError with a one-line message; the cause stays chained for
    debugging but never needs to be shown to an operator.
    """
    if backend == "litert":
        from app.runtime.standalone import load_standalone

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
        loaded = _with_tflite(loaded, threads)
    return loaded


def _with_tflite(loaded: LoadedModel, threads: int) -> LoadedModel:
    """``loaded`` served through TFLite: its ``model.tflite`` if that agrees with the signature,
    else the signature converted now; unchanged (the signature itself) if neither works."""
    from app.runtime.litert import TFLiteUnusable, check_agreement, convert_signature, read_tflite

    started = time.perf_counter()
    # (source reported by /model and the log, what a warning calls it, how to get a runner)
    candidates = (
        (TFLITE_FILE, TFLITE_FILE, lambda: read_tflite(loaded.path / TFLITE_FILE, threads)),
        (
            "converted at startup",
            "the signature converted to TFLite",
            lambda: convert_signature(loaded.signature, loaded.owner, threads),
        ),
    )
    for source, name, make_runner in candidates:
        try:
            runner = make_runner()
            if runner is None:  # no model.tflite: an older model directory
                continue
            difference = check_agreement(loaded.call_signature, runner)
        except TFLiteUnusable as exc:
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
        return replace(loaded, tflite=runner, tflite_source=source)
    logger.warning(
        "serving the SavedModel signature itself", extra={"fields": {"path": str(loaded.path)}}
    )
    return loaded


def warm_up(model: LoadedModel, max_batch_size: int) -> None:
    """Call the model once at every batch size it will be called with, and check its output.

    The first call at a new batch size is many times slower than a steady one (the CPU kernels
    are set up per input shape), which would otherwise land on the first unlucky users. Blocks.
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
