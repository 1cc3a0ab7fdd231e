"""Versioned, atomic export: the whole contract between ``training/`` and ``app/``.

``<root>/<n>/`` holds a SavedModel (TensorFlow Serving layout) whose ``serving_default`` signature
takes ``image``: float32 [None,28,28,1] in [0,1] and returns ``probabilities``: float32 [None,10]
(calibrated: the fitted temperature is part of the graph),
plus ``metadata.json``, ``report/`` and ``model.tflite``: the same signature converted to
TensorFlow Lite, which the service runs once it has checked it against the SavedModel (a Python
call of the SavedModel signature costs ~1 ms before any arithmetic; the TFLite interpreter
~0.02 ms). A version is built in a hidden sibling directory and renamed
into place only when complete, so a reader never sees half of one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import keras
import tensorflow as tf

from training.evaluate import INPUT_NAME, OUTPUT_NAME, SIGNATURE
from training.versions import next_version

METADATA_FILE = "metadata.json"
REPORT_DIR = "report"
TFLITE_FILE = "model.tflite"


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
        input_signature=[tf.TensorSpec([None, 28, 28, 1], tf.float32, name=INPUT_NAME)],
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
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
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
