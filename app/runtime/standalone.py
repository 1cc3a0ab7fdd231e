"""Serving ``model.tflite`` alone on LiteRT: no TensorFlow installed, imported or needed.

The full service restores the SavedModel to check the TFLite copy against it, which costs the
TensorFlow runtime's memory and import time in every replica. Here that check has already been
made at training time, and this module verifies the record of it instead:

- the file's sha256 equals the one ``metadata.json`` recorded at export (``tflite.sha256``), so
  the bytes are the ones training compared with the SavedModel over the whole test set;
- the check batch written beside it (``tflite_check.npz``: real test digits and pseudo-random
  images, with the SavedModel's own probabilities for them) gets the same probabilities from
  this runtime, so this LiteRT build computes what TensorFlow computed.

Anything missing or different fails startup with a ModelLoadError: a replica that cannot prove
it serves the trained model must not become ready.
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from app.runtime.litert import MAX_DIFFERENCE, LiteRunner, TFLiteUnusable, read_tflite
from app.runtime.loading import (
    TRAIN_HINT,
    LoadedModel,
    ModelLoadError,
    find_latest_version,
    read_metadata,
    version_name,
)
from contract import (
    CHECK_FILE,
    CHECK_INPUT,
    CHECK_OUTPUT,
    INPUT_SHAPE,
    METADATA_FILE,
    NUM_CLASSES,
    TFLITE_FILE,
    ModelMetadata,
    TFLiteRecord,
)

logger = logging.getLogger(__name__)

REEXPORT_HINT = (
    "Retrain with this version's `make train`, or serve the SavedModel with "
    "INFERENCE_BACKEND=tflite (the full image)."
)


def load_standalone(path: Path, *, threads: int = 1) -> LoadedModel:
    """The newest ``model.tflite`` under ``path`` (or in ``path``), verified against its record."""
    started = time.perf_counter()
    version_dir = find_latest_version(path, marker=TFLITE_FILE)
    model_file = version_dir / TFLITE_FILE
    if not model_file.is_file():
        raise ModelLoadError(
            f"No model found in {version_dir}: {TFLITE_FILE} is missing. {TRAIN_HINT}"
        )
    metadata = read_metadata(version_dir)
    try:
        record = ModelMetadata.model_validate({"version": version_dir.name, **metadata}).tflite
    except ValidationError as exc:
        raise ModelLoadError(
            f"{version_dir / METADATA_FILE} does not match the metadata schema "
            f"({exc.error_count()} errors, first at {'.'.join(map(str, exc.errors()[0]['loc']))}). "
            f"{REEXPORT_HINT}"
        ) from exc
    if record is None:
        raise ModelLoadError(
            f"{version_dir / METADATA_FILE} records no sha256 for {TFLITE_FILE}, so the file "
            f"cannot be verified without TensorFlow. {REEXPORT_HINT}"
        )
    digest = _sha256(model_file)
    if digest != record.sha256:
        raise ModelLoadError(
            f"{model_file} is not the file training exported: its sha256 is {digest[:12]}..., "
            f"{METADATA_FILE} records {record.sha256[:12]}.... {TRAIN_HINT}"
        )
    try:
        runner = read_tflite(model_file, threads)
    except TFLiteUnusable as exc:
        raise ModelLoadError(f"{model_file} could not be loaded ({exc}). {TRAIN_HINT}") from exc
    if runner is None:  # removed between the lookup and the read
        raise ModelLoadError(f"No model found: {model_file} is missing. {TRAIN_HINT}")
    difference = check_recorded(runner, version_dir, record)
    logger.info(
        "serving model.tflite on LiteRT, without TensorFlow",
        extra={
            "fields": {
                "path": str(version_dir),
                "sha256": digest,
                "threads": threads,
                "max_difference": difference,
                "ms": round((time.perf_counter() - started) * 1000, 1),
            }
        },
    )
    return LoadedModel(
        signature=None,
        metadata=metadata,
        version=version_name(version_dir, metadata),
        path=version_dir,
        tflite=runner,
        tflite_source=f"{TFLITE_FILE} (sha256 and check batch verified)",
    )


def check_recorded(runner: LiteRunner, version_dir: Path, record: TFLiteRecord) -> float:
    """Largest difference between ``runner`` and the SavedModel's recorded check answers."""
    check_file = version_dir / CHECK_FILE
    check = record.check
    if check is None or not check_file.is_file():
        raise ModelLoadError(
            f"{version_dir} has no check batch recorded at export ({CHECK_FILE} and "
            f"{METADATA_FILE} tflite.check). {REEXPORT_HINT}"
        )
    if _sha256(check_file) != check.sha256:
        raise ModelLoadError(
            f"{check_file} does not match the sha256 {METADATA_FILE} records. {TRAIN_HINT}"
        )
    try:
        with np.load(check_file, allow_pickle=False) as arrays:
            images = np.asarray(arrays[CHECK_INPUT], dtype=np.float32)
            expected = np.asarray(arrays[CHECK_OUTPUT], dtype=np.float32)
    except (OSError, KeyError, ValueError) as exc:
        raise ModelLoadError(f"Could not read {check_file} ({exc}). {TRAIN_HINT}") from exc
    if images.shape[1:] != INPUT_SHAPE or expected.shape != (len(images), NUM_CLASSES):
        raise ModelLoadError(
            f"{check_file} holds images {images.shape} and probabilities {expected.shape}; "
            f"expected (N, 28, 28, 1) and (N, 10). {TRAIN_HINT}"
        )
    got = runner(images)
    if got.shape != expected.shape:
        raise ModelLoadError(
            f"{TFLITE_FILE} returned {got.shape} for the check batch, expected {expected.shape}."
        )
    difference = float(np.max(np.abs(got - expected)))
    if not difference <= MAX_DIFFERENCE:  # also catches NaN
        raise ModelLoadError(
            f"{TFLITE_FILE} on this LiteRT answers the check batch differently from the "
            f"SavedModel at export (largest probability difference {difference:.2g}, allowed "
            f"{MAX_DIFFERENCE:g}). {REEXPORT_HINT}"
        )
    return difference


def _sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise ModelLoadError(f"Could not read {path} ({exc.strerror}). {TRAIN_HINT}") from exc
