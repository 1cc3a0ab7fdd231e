"""Versioned, atomic export: the whole contract between ``training/`` and ``app/``.

``<root>/<n>/`` holds a SavedModel (TensorFlow Serving layout) whose ``serving_default`` signature
takes ``image``: float32 [None,28,28,1] in [0,1] and returns ``probabilities``: float32 [None,10]
(calibrated: the fitted temperature is part of the graph),
plus ``metadata.json``, ``report/`` and ``model.tflite``: the same signature converted to
TensorFlow Lite, which the service runs on LiteRT (a Python call of the SavedModel signature
costs about a millisecond before any arithmetic, the interpreter microseconds). The full service
checks that copy against the SavedModel it restores; the lean one, without TensorFlow, checks
it against ``tflite_check.npz``: a check batch with the SavedModel's own answers, written here,
whose sha256 metadata.json records with the TFLite file's. A version is built in a hidden
sibling directory and renamed into place only when complete, so a reader never sees half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from contract import (
    CHECK_FILE,
    CHECK_INPUT,
    CHECK_OUTPUT,
    INPUT_NAME,
    INPUT_SHAPE,
    METADATA_FILE,
    OUTPUT_NAME,
    SIGNATURE,
    STAGING_PREFIX,
    TFLITE_FILE,
    next_version,
    to_model_input,
)

# Pseudo-random images beside the real digits in the check batch: a wrong weight can hide on
# inputs that look like training data, but hardly on noise.
CHECK_NOISE_IMAGES = 4


def calibrated(model: keras.Model, temperature: float) -> Callable[[tf.Tensor], tf.Tensor]:
    """The network's probabilities with temperature scaling applied: softmax(log p / T).

    Baked into the signature (and so into the TFLite copy converted from it) rather than left
    to each reader, so that nobody can serve the uncalibrated numbers by mistake.
    """
    inverse = tf.constant(1.0 / temperature, tf.float32)

    def serve(image: tf.Tensor) -> tf.Tensor:
        probs = model(image, training=False)
        return tf.nn.softmax(tf.math.log(tf.maximum(probs, 1e-30)) * inverse, axis=-1)

    return serve


def write_saved_model(model: keras.Model, path: Path, temperature: float = 1.0) -> None:
    archive = keras.export.ExportArchive()
    archive.track(model)
    serve = calibrated(model, temperature)
    archive.add_endpoint(
        name=SIGNATURE,
        fn=lambda image: {OUTPUT_NAME: serve(image)},
        input_signature=[tf.TensorSpec([None, *INPUT_SHAPE], tf.float32, name=INPUT_NAME)],
    )
    archive.write_out(str(path), verbose=False)


def write_tflite(saved_model_dir: Path) -> Path:
    """Convert the SavedModel's serving signature to ``model.tflite`` beside it."""
    converter = tf.lite.TFLiteConverter.from_saved_model(
        str(saved_model_dir), signature_keys=[SIGNATURE]
    )
    path = saved_model_dir / TFLITE_FILE
    path.write_bytes(converter.convert())
    return path


def write_check_batch(version_dir: Path, digits: np.ndarray, seed: int = 0) -> dict[str, object]:
    """Write ``tflite_check.npz``: ``digits`` (uint8 N,28,28) and noise with the SavedModel's
    probabilities for them; returns the ``metadata.json`` record of it.

    A server that cannot restore the SavedModel (no TensorFlow) runs this batch through its own
    runtime and compares: the comparison training made is then reproducible without it.
    """
    rng = np.random.default_rng(seed)
    images = np.concatenate(
        [
            to_model_input(digits),
            rng.random((CHECK_NOISE_IMAGES, *INPUT_SHAPE), dtype=np.float32),
        ]
    )
    serve = tf.saved_model.load(str(version_dir)).signatures[SIGNATURE]
    probabilities = serve(**{INPUT_NAME: tf.constant(images)})[OUTPUT_NAME].numpy()
    path = version_dir / CHECK_FILE
    np.savez(path, **{CHECK_INPUT: images, CHECK_OUTPUT: probabilities.astype(np.float32)})
    return {
        "file": CHECK_FILE,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "images": len(images),
    }


def export_version(
    model: keras.Model,
    root: Path,
    finish: Callable[[Path, int], None],
    temperature: float = 1.0,
) -> Path:
    """Write the SavedModel, let ``finish(staging_dir, version)`` add metadata and report, publish.

    ``finish`` runs against the staged SavedModel, so metrics come from the artifact itself.
    """
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=root))
    try:
        write_saved_model(model, staging, temperature)
        write_tflite(staging)
        version = next_version(root)
        finish(staging, version)
        while True:  # another exporter may have taken the number meanwhile
            target = root / str(version)
            try:
                os.rename(staging, target)  # atomic on one filesystem; fails if target exists
                break
            except OSError:
                if not target.exists():
                    raise
                version += 1
                meta = json.loads((staging / METADATA_FILE).read_text())
                meta["version"] = str(version)
                write_json(staging / METADATA_FILE, meta)
        os.chmod(target, 0o755)
        return target
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
