"""Train, export, evaluate the exported artifact, publish: one call from data to a model version."""

from __future__ import annotations

import hashlib
import platform
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from training.data import Mnist
from training.evaluate import (
    evaluate_probabilities,
    format_evaluation,
    predict_saved_model,
    predict_tflite,
)
from training.export import METADATA_FILE, REPORT_DIR, TFLITE_FILE, export_version, write_json
from training.report import write_report
from training.train import TrainConfig, train


def train_and_export(
    mnist: Mnist,
    config: TrainConfig,
    out: Path,
    on_evaluated: Callable[[str], object] | None = None,
) -> Path:
    """Return the published version directory.

    The metrics in ``metadata.json`` are measured on the staged SavedModel through its serving
    signature, i.e. on exactly the artifact the service will load, not on the in-memory model.
    """
    result = train(config, mnist.x_train, mnist.y_train, mnist.x_test, mnist.y_test)
    train_examples = min(len(mnist.x_train), config.limit or len(mnist.x_train))

    def finish(staging: Path, version: int) -> None:
        probs = predict_saved_model(staging, mnist.x_test)
        ev = evaluate_probabilities(probs, mnist.y_test)
        lite_probs = predict_tflite(staging / TFLITE_FILE, mnist.x_test)
        lite = evaluate_probabilities(lite_probs, mnist.y_test)
        report_files = write_report(
            staging / REPORT_DIR,
            result.history,
            np.array(ev.confusion_matrix),
            mnist.x_test,
            mnist.y_test,
            probs,
        )
        metadata = {
            "version": str(version),
            "arch": config.arch,
            "parameters": int(result.model.count_params()),
            "epochs": result.epochs,
            "batch_size": result.batch_size,
            "seed": config.seed,
            "train_examples": int(train_examples),
            "test_accuracy": ev.accuracy,
            "test_loss": ev.loss,
            "per_class": ev.per_class,
            "confusion_matrix": ev.confusion_matrix,
            "training_seconds": round(result.seconds, 1),
            "history": result.history,
            "recipe": result.recipe,
            "input": {
                "name": "image",
                "shape": [None, 28, 28, 1],
                "dtype": "float32",
                "range": [0.0, 1.0],
                "convention": "white digit on black, MNIST-normalised",
            },
            "output": {"name": "probabilities", "shape": [None, 10], "dtype": "float32"},
            "signature": "serving_default",
            "tflite": {
                "file": TFLITE_FILE,
                "sha256": hashlib.sha256((staging / TFLITE_FILE).read_bytes()).hexdigest(),
                "test_accuracy": lite.accuracy,
                "max_probability_difference": float(np.max(np.abs(lite_probs - probs))),
            },
            "data": {"source": mnist.source, "sha256": mnist.sha256s()},
            "tensorflow_version": tf.__version__,
            "keras_version": keras.__version__,
            "python_version": platform.python_version(),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "report": [f"{REPORT_DIR}/{name}" for name in report_files],
        }
        write_json(staging / METADATA_FILE, metadata)
        if on_evaluated is not None:
            on_evaluated(format_evaluation(ev))

    return export_version(result.model, out, finish)
