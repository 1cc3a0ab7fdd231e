"""Evaluate an exported model through its ``serving_default`` signature, as the service calls it.

``python -m training.evaluate MODEL_DIR`` prints test accuracy, per-class precision and recall and
the confusion matrix. MODEL_DIR is one version directory or the parent of several (newest wins).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from contract import (
    INPUT_NAME,
    METADATA_FILE,
    OUTPUT_NAME,
    SIGNATURE,
    NoModelFound,
    latest_version,
    to_model_input,
)
from training.metrics import evaluate_probabilities, format_evaluation


def resolve_version_dir(path: Path) -> Path:
    """A version directory itself, or the newest version under a model root."""
    try:
        return latest_version(path)
    except NoModelFound as exc:
        raise FileNotFoundError(str(exc)) from exc


def saved_model_predictor(
    version_dir: Path, batch_size: int = 1000
) -> Callable[[np.ndarray], np.ndarray]:
    """Load the exported signature once; the function maps uint8 (N,28,28) to probabilities."""
    import tensorflow as tf

    serve = tf.saved_model.load(str(version_dir)).signatures[SIGNATURE]

    def predict(images: np.ndarray) -> np.ndarray:
        x = to_model_input(images)
        out = [
            serve(**{INPUT_NAME: tf.constant(x[i : i + batch_size])})[OUTPUT_NAME].numpy()
            for i in range(0, len(x), batch_size)
        ]
        return np.concatenate(out) if out else np.zeros((0, 10), np.float32)

    return predict


def predict_saved_model(
    version_dir: Path, images: np.ndarray, batch_size: int = 1000
) -> np.ndarray:
    """Class probabilities for uint8 (N,28,28) images via the exported signature."""
    return saved_model_predictor(version_dir, batch_size)(images)


def predict_tflite(model_path: Path, images: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """Class probabilities for uint8 (N,28,28) images via the exported ``model.tflite``.

    Run on the standalone LiteRT runtime, the one the service's lean image serves it with, so
    the accuracy recorded for the TFLite copy is the accuracy that image delivers.
    """
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(model_path))
    runner = interpreter.get_signature_runner(SIGNATURE)
    x = to_model_input(images)
    out = [
        runner(**{INPUT_NAME: x[i : i + batch_size]})[OUTPUT_NAME]
        for i in range(0, len(x), batch_size)
    ]
    return np.concatenate(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.evaluate", description=__doc__.splitlines()[0]
    )
    parser.add_argument("model_dir", type=Path, help="a version directory or models/mnist")
    parser.add_argument("--data", type=Path, default=None, help="MNIST npz or IDX directory")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    args = parser.parse_args(argv)

    from training.data import DatasetError, load_mnist

    try:
        version_dir = resolve_version_dir(args.model_dir)
        mnist = load_mnist(args.data)
    except (FileNotFoundError, DatasetError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    probs = predict_saved_model(version_dir, mnist.x_test)
    ev = evaluate_probabilities(probs, mnist.y_test)
    result: dict[str, object] = ev.to_dict()
    text = f"{version_dir}\n{format_evaluation(ev)}"
    meta_path = version_dir / METADATA_FILE
    points = (
        json.loads(meta_path.read_text()).get("operating_points") if meta_path.is_file() else None
    )
    if points:
        from training.calibrate import OperatingPoints, calibration_metrics, verdict_rates

        rates = verdict_rates(
            probs,
            mnist.y_test,
            OperatingPoints(points["not_a_digit_below"], points["uncertain_below"]),
        )
        calibration = calibration_metrics(probs, mnist.y_test)
        result |= {"verdicts": rates, "calibration": calibration}
        text += (
            f"\n\nverdicts (not_a_digit below {points['not_a_digit_below']}, uncertain below "
            f"{points['uncertain_below']}): "
            + ", ".join(f"{k} {v:.4f}" for k, v in rates.items())
            + f"\ncalibration: ECE {calibration['ece']:.4f}, equal-mass ECE "
            f"{calibration['ece_equal_mass']:.4f}, NLL {calibration['nll']:.4f}, "
            f"Brier {calibration['brier']:.4f}"
        )
    print(json.dumps(result) if args.json else text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
