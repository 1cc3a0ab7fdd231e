"""app/runtime/loading.py against the real SavedModel: finding, loading, warming up, TFLite."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from app.runtime.loading import (
    LoadedModel,
    ModelLoadError,
    find_latest_version,
    load_model,
    warm_up,
)
from tests.app.runtime.tflite_models import uniform_tflite


def _fake_version(root: Path, name: str) -> Path:
    path = root / name
    path.mkdir(parents=True)
    (path / "saved_model.pb").write_bytes(b"")
    return path


def test_find_latest_version_picks_the_highest_number(tmp_path: Path) -> None:
    for name in ("1", "2", "10", "9"):
        _fake_version(tmp_path, name)
    _fake_version(tmp_path, ".staging-abc123")  # an export in progress
    _fake_version(tmp_path, "latest")
    (tmp_path / "11").write_text("a file, not a version")
    assert find_latest_version(tmp_path) == tmp_path / "10"


def test_find_latest_version_accepts_a_version_directory(model_dir: Path) -> None:
    assert find_latest_version(model_dir) == model_dir


@pytest.mark.parametrize("layout", ["missing", "empty", "only-staging", "a-file"])
def test_nothing_to_load_is_one_line_naming_the_path_and_make_train(
    tmp_path: Path, layout: str
) -> None:
    root = tmp_path / "mnist"
    if layout == "empty":
        root.mkdir()
    elif layout == "only-staging":
        _fake_version(root, ".staging-x")
    elif layout == "a-file":
        root.write_text("")
    with pytest.raises(ModelLoadError) as error:
        load_model(root)
    message = str(error.value)
    assert str(root) in message
    assert "make train" in message
    assert "\n" not in message


def test_load_model_reads_signature_and_metadata(model: LoadedModel, model_dir: Path) -> None:
    metadata = json.loads((model_dir / "metadata.json").read_text())
    assert model.version == "1"
    assert model.path == model_dir
    assert model.metadata["test_accuracy"] == metadata["test_accuracy"]
    probabilities = model.predict(np.zeros((3, 28, 28, 1), np.float32))
    assert probabilities.shape == (3, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_load_model_from_the_root_serves_the_newest(tmp_path: Path, model_dir: Path) -> None:
    root = tmp_path / "mnist"
    shutil.copytree(model_dir, root / "1")
    shutil.copytree(model_dir, root / "2")
    assert load_model(root).version == "2"


def test_corrupt_saved_model_is_a_one_line_error(tmp_path: Path, model_dir: Path) -> None:
    broken = tmp_path / "mnist" / "3"
    shutil.copytree(model_dir, broken)
    (broken / "saved_model.pb").write_bytes(b"\x00 not a protobuf \xff" * 10)
    with pytest.raises(ModelLoadError) as error:
        load_model(broken.parent)
    assert str(broken) in str(error.value)
    assert "make train" in str(error.value)
    assert "\n" not in str(error.value)


def test_unreadable_metadata_is_a_load_error(tmp_path: Path, model_dir: Path) -> None:
    broken = tmp_path / "4"
    shutil.copytree(model_dir, broken)
    (broken / "metadata.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match=r"metadata\.json"):
        load_model(broken)


def test_warm_up_rejects_a_model_with_the_wrong_output(model: LoadedModel) -> None:
    def three_classes(image: np.ndarray) -> dict[str, SimpleNamespace]:
        probabilities = np.full((len(image), 3), 1 / 3, np.float32)
        return {"probabilities": SimpleNamespace(numpy=lambda: probabilities)}

    broken = LoadedModel(signature=three_classes, metadata={}, version="x", path=model.path)
    with pytest.raises(ModelLoadError, match=r"expected \(1, 10\)"):
        warm_up(broken, max_batch_size=2)


# --- the TFLite backend -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def lite(model_dir: Path) -> LoadedModel:
    return load_model(model_dir, backend="tflite")


def test_tflite_backend_serves_the_file_training_wrote(
    lite: LoadedModel, model: LoadedModel, digits: np.ndarray
) -> None:
    assert model.backend == "savedmodel"
    assert lite.backend == "tflite"
    assert lite.tflite_source == "model.tflite"
    expected = model.predict(digits)
    got = lite.predict(digits)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert (got.argmax(axis=1) == expected.argmax(axis=1)).all()


def test_tflite_backend_answers_any_batch_size_in_any_order(
    lite: LoadedModel, digits: np.ndarray
) -> None:
    """The interpreter is resized per call; a size change must not leak old rows or shapes."""
    alone = [lite.predict(digits[i : i + 1])[0] for i in range(5)]
    for size in (5, 1, 32, 3, 5):
        np.testing.assert_allclose(lite.predict(digits[:size])[:5], alone[:size], atol=1e-6)


def test_a_model_without_tflite_file_is_converted_at_startup(
    tmp_path: Path, model_dir: Path, model: LoadedModel, digits: np.ndarray
) -> None:
    older = shutil.copytree(model_dir, tmp_path / "1")
    (older / "model.tflite").unlink()
    loaded = load_model(older, backend="tflite")
    assert (loaded.backend, loaded.tflite_source) == ("tflite", "converted at startup")
    np.testing.assert_allclose(loaded.predict(digits), model.predict(digits), atol=1e-5)


@pytest.mark.parametrize("replacement", ["another model", "garbage"])
def test_a_tflite_file_that_disagrees_with_the_saved_model_is_not_served(
    tmp_path: Path,
    model_dir: Path,
    model: LoadedModel,
    digits: np.ndarray,
    replacement: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    version = shutil.copytree(model_dir, tmp_path / "1")
    content = uniform_tflite() if replacement == "another model" else b"TFL3" + b"\x00" * 64
    (version / "model.tflite").write_bytes(content)
    loaded = load_model(version, backend="tflite")
    assert (loaded.backend, loaded.tflite_source) == ("tflite", "converted at startup")
    np.testing.assert_allclose(loaded.predict(digits), model.predict(digits), atol=1e-5)
    assert "model.tflite not used" in caplog.text
