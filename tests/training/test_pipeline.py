"""End to end on real digits: train on the committed sample, export, reload the SavedModel."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from contract import versions
from tests.conftest import FIXTURE_NEGATIVES, FIXTURE_VALIDATION
from training import calibrate, export
from training.__main__ import main as training_main
from training.data import array_sha256
from training.evaluate import predict_saved_model, predict_tflite, resolve_version_dir
from training.metrics import evaluate_probabilities
from training.models import build_seed
from training.pairs import PAIRS_PER_NEGATIVE, digit_pairs
from training.pipeline import PAIRS_SEED_OFFSET
from training.train import augment_batch, scale_images, split_validation


def test_signature_contract(model_dir: Path) -> None:
    loaded = tf.saved_model.load(str(model_dir))
    serve = loaded.signatures["serving_default"]
    (args, kwargs) = serve.structured_input_signature
    assert not args
    spec = kwargs["image"]
    assert spec.dtype == tf.float32
    assert spec.shape.as_list() == [None, 28, 28, 1]
    out = serve(image=tf.zeros([3, 28, 28, 1]))
    assert set(out) == {"probabilities"}
    probs = out["probabilities"].numpy()
    assert probs.shape == (3, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_exported_model_beats_chance_by_far(model_dir: Path, mnist_sample) -> None:
    probs = predict_saved_model(model_dir, mnist_sample.x_test)
    accuracy = float((probs.argmax(1) == mnist_sample.y_test).mean())
    assert accuracy > 0.85, f"500 held-out real digits: {accuracy:.3f} (chance is 0.10)"


def test_metadata_describes_the_artifact(model_dir: Path, mnist_sample) -> None:
    meta = json.loads((model_dir / "metadata.json").read_text())
    assert meta["version"] == "1"
    assert meta["arch"] == "default"
    assert meta["seed"] == 0
    assert meta["parameters"] > 100_000
    assert meta["epochs"] == len(meta["history"]["loss"])
    assert meta["train_examples"] == len(mnist_sample.x_train) - FIXTURE_VALIDATION
    assert meta["validation"]["size"] == FIXTURE_VALIDATION
    assert meta["recipe"]["weights"].startswith("exponential moving average")
    pairs = round(PAIRS_PER_NEGATIVE * FIXTURE_NEGATIVES)
    assert meta["negatives"]["count"] == FIXTURE_NEGATIVES + pairs
    assert {s["kind"] for s in meta["negatives"]["sources"]} >= {"letters", "shapes"}
    assert meta["signature"] == "serving_default"
    assert meta["data"]["sha256"]["y_test"] == mnist_sample.sha256s()["y_test"]
    # Metrics are the exported model's, recomputed here through the signature.
    again = evaluate_probabilities(
        predict_saved_model(model_dir, mnist_sample.x_test), mnist_sample.y_test
    )
    assert meta["test_accuracy"] == pytest.approx(again.accuracy, abs=1e-9)
    assert meta["confusion_matrix"] == again.confusion_matrix
    assert sum(map(sum, meta["confusion_matrix"])) == len(mnist_sample.y_test)
    assert [row["digit"] for row in meta["per_class"]] == list(range(10))
    assert meta["training_seconds"] > 0
    assert meta["tensorflow_version"] == tf.__version__
    for name in meta["report"]:
        png = (model_dir / name).read_bytes()
        assert png.startswith(b"\x89PNG"), name
        assert len(png) > 5_000, f"{name} looks empty"


def test_validation_is_split_off_the_training_digits_not_the_test_set(
    model_dir: Path, mnist_sample
) -> None:
    meta = json.loads((model_dir / "metadata.json").read_text())
    split = split_validation(mnist_sample.x_train, mnist_sample.y_train, FIXTURE_VALIDATION, 0)
    assert meta["validation"]["indices_sha256"] == split.describe(0)["indices_sha256"]
    # The learning curves' validation accuracy is the split's, not the test set's: the last
    # epoch's figure is what the exported model scores on those 250 training digits.
    val_acc = (predict_saved_model(model_dir, split.x_val).argmax(1) == split.y_val).mean()
    assert meta["history"]["val_accuracy"][-1] == pytest.approx(val_acc, abs=1e-6)
    # The pairs of digits trained as negatives are drawn from the training split alone.
    (source,) = [s for s in meta["negatives"]["sources"] if s["kind"] == "digit-pairs"]
    seed = meta["seed"] + PAIRS_SEED_OFFSET
    assert source["split"] == "train"
    assert source["sha256"] == array_sha256(digit_pairs(split.x_train, source["count"], seed))


def test_the_signature_serves_the_fitted_temperature(model_dir: Path, mnist_sample) -> None:
    """Undoing the recorded temperature on the artifact gives back the raw network's numbers."""
    meta = json.loads((model_dir / "metadata.json").read_text())["calibration"]
    split = split_validation(mnist_sample.x_train, mnist_sample.y_train, FIXTURE_VALIDATION, 0)
    served = predict_saved_model(model_dir, split.x_val)
    temperature = meta["temperature"]
    assert temperature != pytest.approx(1.0, abs=1e-3), "nothing to calibrate is implausible"
    raw = calibrate.apply_temperature(served, 1.0 / temperature)
    assert calibrate.nll(raw, split.y_val) == pytest.approx(
        meta["validation"]["before"]["nll"], rel=1e-3
    )
    assert calibrate.nll(served, split.y_val) == pytest.approx(
        meta["validation"]["after"]["nll"], rel=1e-6
    )
    assert meta["validation"]["after"]["nll"] <= meta["validation"]["before"]["nll"]


def test_operating_points_are_fitted_and_reported(model_dir: Path, mnist_sample) -> None:
    meta = json.loads((model_dir / "metadata.json").read_text())
    points = meta["operating_points"]
    assert 0 < points["not_a_digit_below"] <= points["uncertain_below"] < 1
    # The test-set verdict figures are what the points give on the exported model.
    probs = predict_saved_model(model_dir, mnist_sample.x_test)
    rates = calibrate.verdict_rates(
        probs,
        mnist_sample.y_test,
        calibrate.OperatingPoints(points["not_a_digit_below"], points["uncertain_below"]),
    )
    assert meta["test_verdicts"] == pytest.approx(rates)
    kinds = meta["negatives"]["held_out"]["kinds"]
    assert {"letters", "shapes", "noise"} <= set(kinds)
    # Even this small model turns most held-out non-digits away.
    assert np.mean([row["not_a_digit"] for row in kinds.values()]) > 0.5


def test_the_tflite_copy_answers_like_the_saved_model(model_dir: Path, mnist_sample) -> None:
    meta = json.loads((model_dir / "metadata.json").read_text())["tflite"]
    lite_file = model_dir / meta["file"]
    assert hashlib.sha256(lite_file.read_bytes()).hexdigest() == meta["sha256"]
    saved = predict_saved_model(model_dir, mnist_sample.x_test)
    lite = predict_tflite(lite_file, mnist_sample.x_test)
    assert np.abs(lite - saved).max() < 1e-4
    assert (lite.argmax(axis=1) == saved.argmax(axis=1)).all()
    assert meta["test_accuracy"] == pytest.approx(
        evaluate_probabilities(lite, mnist_sample.y_test).accuracy, abs=1e-9
    )
    assert meta["max_probability_difference"] < 1e-4


def test_versions_grow_and_staging_is_invisible(tmp_path: Path) -> None:
    model = build_seed()
    published = []
    for _ in range(2):
        published.append(
            export.export_version(
                model,
                tmp_path,
                lambda d, v: export.write_json(d / "metadata.json", {"version": str(v)}),
            )
        )
    assert [p.name for p in published] == ["1", "2"]
    assert resolve_version_dir(tmp_path).name == "2"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_crash_during_export_leaves_no_version(tmp_path: Path) -> None:
    def crash(staging: Path, version: int) -> None:
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        export.export_version(build_seed(), tmp_path, crash)
    assert versions(tmp_path) == []
    assert list(tmp_path.iterdir()) == []


def test_augmentation_keeps_digits_recognisable(mnist_sample) -> None:
    x = tf.constant(scale_images(mnist_sample.x_test[:64]))
    out = augment_batch(x, tf.constant([1, 2], dtype=tf.int64)).numpy()
    assert out.shape == x.shape
    assert out.min() >= 0.0
    assert out.max() <= 1.0
    assert not np.allclose(out, x.numpy()), "augmentation changed nothing"
    # Same seed, same batch; the ink mass moves a little but the digit stays in frame.
    again = augment_batch(x, tf.constant([1, 2], dtype=tf.int64)).numpy()
    np.testing.assert_array_equal(out, again)
    ink_ratio = out.sum(axis=(1, 2, 3)) / x.numpy().sum(axis=(1, 2, 3))
    assert np.median(ink_ratio) == pytest.approx(1.0, abs=0.25)


def test_cli_help_lists_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        training_main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--arch", "--epochs", "--batch-size", "--data", "--out", "--seed", "--limit"):
        assert flag in text


def test_cli_with_bad_data_path_fails_cleanly(tmp_path: Path, capsys) -> None:
    code = training_main(["--data", str(tmp_path / "nope.npz"), "--out", str(tmp_path / "m")])
    assert code == 2
    assert "no such file" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_cli_if_missing_skips_when_a_model_exists(model_root: Path, caplog) -> None:
    assert training_main(["--if-missing", "--out", str(model_root)]) == 0
    assert [v.name for v in versions(model_root)] == ["1"]
