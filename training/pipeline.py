"""From data to a published model version: split, train, calibrate, choose, export, test once.

Every choice is made on data held out of the *training* set: the learning curves, the
temperature and the operating points are fitted on the validation split (and on negatives
drawn by generators the network never trained on). The MNIST test set is touched once, at the
end, on the exported artifact, and that is the figure ``metadata.json`` reports.
"""

from __future__ import annotations

import hashlib
import platform
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from contract import METADATA_FILE, REPORT_DIR, SIGNATURE, TFLITE_FILE, check_written
from training import calibrate
from training.data import Mnist, array_sha256
from training.evaluate import predict_tflite, saved_model_predictor
from training.export import export_version, write_check_batch, write_json
from training.metrics import evaluate_probabilities, format_evaluation
from training.negatives import Negatives, available_held_out_kinds, load_negatives, mnist_frame
from training.negatives import render_ink as render_negative_ink
from training.pairs import digit_pairs
from training.report import write_report
from training.train import (
    TrainConfig,
    augmented_copy,
    negatives_wanted,
    pairs_wanted,
    scale_images,
    split_validation,
    train,
)

# Negatives per held-out kind for choosing the operating points (drawn with their own seed;
# the HTTP benchmark draws its own, different ones).
HELD_OUT_PER_KIND = 300
HELD_OUT_SEED_OFFSET = 1_000
PAIRS_SEED_OFFSET = 2_000


def one_of_each_digit(images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The first image of every class present, in class order (the check batch's digits)."""
    return np.stack([images[np.flatnonzero(labels == d)[0]] for d in np.unique(labels)])


def predict_in_memory(model: keras.Model, images: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """The trained network's own (uncalibrated) probabilities for uint8 (N,28,28) images."""
    x = scale_images(images)
    return np.concatenate(
        [
            np.asarray(model(tf.constant(x[i : i + batch_size]), training=False))
            for i in range(0, len(x), batch_size)
        ]
    )


def held_out_negatives(per_kind: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Negatives from the generators training never used, framed like uploads, with their kinds."""
    images, kinds = [], []
    for kind in available_held_out_kinds():
        inks = render_negative_ink(kind, per_kind, seed, held_out=True)
        images += [mnist_frame(ink) for ink in inks]
        kinds += [kind] * len(inks)
    if not images:
        return np.zeros((0, 28, 28), np.uint8), np.array([], dtype=object)
    return np.stack(images), np.array(kinds, dtype=object)


def rejection_by_kind(
    probs: np.ndarray, kinds: np.ndarray, points: calibrate.OperatingPoints
) -> dict[str, dict[str, float]]:
    verdicts = calibrate.verdicts(probs, points)
    out: dict[str, dict[str, float]] = {}
    for kind in dict.fromkeys(kinds.tolist()):
        members = kinds == kind
        out[kind] = {
            "count": int(members.sum()),
            "not_a_digit": float((verdicts[members] == "not_a_digit").mean()),
            "uncertain": float((verdicts[members] == "uncertain").mean()),
            "digit": float((verdicts[members] == "digit").mean()),
            "confidence_ge_0.9": float((probs[members].max(axis=1) >= 0.9).mean()),
        }
    return out


def train_and_export(
    mnist: Mnist,
    config: TrainConfig,
    out: Path,
    on_evaluated: Callable[[str], object] | None = None,
    negatives: Negatives | None = None,
) -> Path:
    """Return the published version directory.

    ``negatives`` default to ``load_negatives`` (programmatic kinds, plus Fashion-MNIST where a
    source has it). The metrics in ``metadata.json`` are measured on the staged SavedModel
    through its serving signature, i.e. on exactly the artifact the service will load.
    """
    x_all, y_all = mnist.x_train, mnist.y_train
    if config.limit:
        x_all, y_all = x_all[: config.limit], y_all[: config.limit]
    split = split_validation(x_all, y_all, config.validation_size, config.seed)
    wanted = negatives_wanted(config, len(split.y_train))
    if wanted and (negatives is None or len(negatives.x) < wanted):
        negatives = load_negatives(wanted, config.seed)
    x_negatives = negatives.x[:wanted] if wanted and negatives is not None else None
    pair_count = pairs_wanted(config, wanted) if x_negatives is not None else 0
    pair_seed = config.seed + PAIRS_SEED_OFFSET
    pairs = digit_pairs(split.x_train, pair_count, pair_seed)
    pair_sources: list[dict[str, object]] = []
    if x_negatives is not None and pair_count:
        order = np.random.default_rng(pair_seed).permutation(len(x_negatives) + pair_count)
        x_negatives = np.concatenate([x_negatives, pairs])[order]
        pair_sources.append(
            {
                "name": "digit-pairs",
                "kind": "digit-pairs",
                "origin": f"training.pairs.digit_pairs(training split, seed={pair_seed})",
                "split": "train",
                "count": pair_count,
                "sha256": array_sha256(pairs),
            }
        )
    result = train(
        config, split.x_train, split.y_train, split.x_val, split.y_val, x_negatives=x_negatives
    )

    # Calibration, on validation digits only (the network's raw outputs).
    raw_val = predict_in_memory(result.model, split.x_val)
    temperature = calibrate.fit_temperature(raw_val, split.y_val)

    def finish(staging: Path, version: int) -> None:
        # The operating points, on the artifact's own (calibrated) probabilities.
        predict = saved_model_predictor(staging)  # loaded once for all four sets
        val = predict(split.x_val)
        hard = predict(augmented_copy(split.x_val, config.seed))
        neg_x, neg_kinds = held_out_negatives(HELD_OUT_PER_KIND, config.seed + HELD_OUT_SEED_OFFSET)
        neg = predict(neg_x)
        points, rates = calibrate.fit_operating_points(val, split.y_val, hard, split.y_val, neg)
        by_kind = rejection_by_kind(neg, neg_kinds, points) if len(neg) else {}

        # The test set: once, at the end.
        probs = predict(mnist.x_test)
        ev = evaluate_probabilities(probs, mnist.y_test)
        uncalibrated = calibrate.apply_temperature(probs, 1.0 / temperature)
        test_verdicts = calibrate.verdict_rates(probs, mnist.y_test, points)
        lite_probs = predict_tflite(staging / TFLITE_FILE, mnist.x_test)
        lite = evaluate_probabilities(lite_probs, mnist.y_test)
        report_files = write_report(
            staging / REPORT_DIR,
            history=result.history,
            cm=np.array(ev.confusion_matrix),
            images=mnist.x_test,
            labels=mnist.y_test,
            probs=probs,
            uncalibrated=uncalibrated,
            validation_risk=calibrate.risk_coverage(
                np.concatenate([val, hard]), np.concatenate([split.y_val, split.y_val])
            ),
            test_risk=calibrate.risk_coverage(probs, mnist.y_test),
            points=points,
            rejection=by_kind,
        )
        metadata: dict[str, Any] = {
            "version": str(version),
            "arch": config.arch,
            "parameters": int(result.model.count_params()),
            "epochs": result.epochs,
            "batch_size": result.batch_size,
            "seed": config.seed,
            "train_examples": len(split.y_train),
            "validation": split.describe(config.seed),
            "test_accuracy": ev.accuracy,
            "test_loss": ev.loss,
            "test_evaluated": "once, on the exported SavedModel, after every choice was made",
            "per_class": ev.per_class,
            "confusion_matrix": ev.confusion_matrix,
            "test_verdicts": test_verdicts,
            "calibration": {
                "method": "temperature",
                "temperature": round(temperature, 6),
                "fitted_on": f"validation digits ({len(split.y_val)})",
                "applied": "in the serving signature: softmax(log(p) / temperature)",
                "validation": {
                    "before": calibrate.calibration_metrics(raw_val, split.y_val),
                    "after": calibrate.calibration_metrics(val, split.y_val),
                },
                "test": {
                    "before": calibrate.calibration_metrics(uncalibrated, mnist.y_test),
                    "after": calibrate.calibration_metrics(probs, mnist.y_test),
                },
                "ece_bins": calibrate.ECE_BINS,
            },
            "operating_points": {
                **asdict(points),
                "score": "calibrated probability of the most probable digit",
                "chosen_on": (
                    f"validation digits ({len(split.y_val)}), the same digits re-augmented, "
                    f"and {len(neg_x)} negatives from held-out generators"
                ),
                "targets": {
                    "max_digits_rejected": calibrate.MAX_DIGITS_REJECTED,
                    "max_risk_accepted": calibrate.MAX_RISK_ACCEPTED,
                    "min_negatives_rejected": calibrate.MIN_NEGATIVES_REJECTED,
                    "min_uncertain_below": calibrate.MIN_UNCERTAIN_BELOW,
                },
                "rates": rates,
            },
            "negatives": {
                "count": 0 if x_negatives is None else len(x_negatives),
                "sources": (negatives.sources if negatives is not None and wanted else [])
                + pair_sources,
                "held_out": {
                    "seed": config.seed + HELD_OUT_SEED_OFFSET,
                    "kinds": by_kind,
                },
            },
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
            "signature": SIGNATURE,
            "tflite": {
                "file": TFLITE_FILE,
                "sha256": hashlib.sha256((staging / TFLITE_FILE).read_bytes()).hexdigest(),
                "test_accuracy": lite.accuracy,
                "max_probability_difference": float(np.max(np.abs(lite_probs - probs))),
                "runtime": f"ai-edge-litert {package_metadata.version('ai-edge-litert')}",
                "check": write_check_batch(staging, one_of_each_digit(mnist.x_test, mnist.y_test)),
            },
            "data": {"source": mnist.source, "sha256": mnist.sha256s()},
            "tensorflow_version": tf.__version__,
            "keras_version": keras.__version__,
            "python_version": platform.python_version(),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "report": [f"{REPORT_DIR}/{name}" for name in report_files],
        }
        check_written(metadata)  # nothing the readers do not know reaches the directory
        write_json(staging / METADATA_FILE, metadata)
        if on_evaluated is not None:
            on_evaluated(format_evaluation(ev) + "\n\n" + format_verdicts(metadata))

    return export_version(result.model, out, finish, temperature=temperature)


def format_verdicts(metadata: dict[str, Any]) -> str:
    """Calibration and verdict figures for the console, after the test evaluation."""
    cal, points, tv = (
        metadata["calibration"],
        metadata["operating_points"],
        metadata["test_verdicts"],
    )
    before, after = cal["test"]["before"], cal["test"]["after"]
    lines = [
        f"temperature {cal['temperature']:.3f} (fitted on {cal['fitted_on']})",
        f"test ECE {before['ece']:.4f} -> {after['ece']:.4f}   NLL {before['nll']:.4f} -> "
        f"{after['nll']:.4f}   Brier {before['brier']:.4f} -> {after['brier']:.4f}",
        f"operating points: not_a_digit below {points['not_a_digit_below']}, "
        f"uncertain below {points['uncertain_below']}",
        f"test digits: verdict digit {tv['digit']:.4f}, accuracy among them "
        f"{tv['accuracy_among_digit']:.4f}, not_a_digit {tv['not_a_digit']:.4f}, "
        f"confidently wrong {tv['confidently_wrong']:.4f}",
    ]
    for kind, row in metadata["negatives"]["held_out"]["kinds"].items():
        lines.append(f"held-out negatives {kind:>8}: not_a_digit {row['not_a_digit']:.3f}")
    return "\n".join(lines)
