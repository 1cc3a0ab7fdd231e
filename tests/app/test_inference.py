"""app/inference.py against the real SavedModel: finding, loading, and the dynamic batcher."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import TypeVar

import numpy as np
import pytest

from app.inference import (
    BatchingPredictor,
    InferenceFailed,
    LoadedModel,
    ModelLoadError,
    Overloaded,
    PredictorClosed,
    find_latest_version,
    load_model,
    warm_up,
)
from tests.app.tflite_models import uniform_tflite

T = TypeVar("T")


@pytest.fixture(scope="module")
def model(model_dir: Path) -> LoadedModel:
    return load_model(model_dir)


@pytest.fixture(scope="module")
def digits(mnist_sample) -> np.ndarray:
    """The first 64 sample test digits as model input, (64, 28, 28, 1) float32 in [0, 1]."""
    return (mnist_sample.x_test[:64, ..., np.newaxis] / 255).astype(np.float32)


class CountingModel:
    """The real model's predict, counting calls and optionally refusing poisoned batches."""

    def __init__(self, predict: Callable[[np.ndarray], np.ndarray]) -> None:
        self.predict = predict
        self.batch_sizes: list[int] = []
        self.poison: float | None = None  # a batch holding an image of this constant value fails

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.batch_sizes.append(len(batch))
        if self.poison is not None and np.any(np.all(batch == self.poison, axis=(1, 2, 3))):
            raise ValueError("poisoned image")
        return self.predict(batch)


def run_with_predictor(predictor: BatchingPredictor, scenario: Callable[[], Awaitable[T]]) -> T:
    """Run ``scenario`` on a fresh event loop with ``predictor`` started, then stop it."""

    async def main() -> T:
        await predictor.start()
        try:
            return await scenario()
        finally:
            await predictor.stop()

    return asyncio.run(main())


# --- finding and loading ----------------------------------------------------------------------


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
    assert lite.compiled_source == "model.tflite"
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
    assert (loaded.backend, loaded.compiled_source) == ("tflite", "converted at startup")
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
    assert (loaded.backend, loaded.compiled_source) == ("tflite", "converted at startup")
    np.testing.assert_allclose(loaded.predict(digits), model.predict(digits), atol=1e-5)
    assert "model.tflite not used" in caplog.text


# --- batching ---------------------------------------------------------------------------------


def test_concurrent_requests_share_calls_and_get_their_own_rows(
    model: LoadedModel, digits: np.ndarray
) -> None:
    counting = CountingModel(model.predict)
    predictor = BatchingPredictor(counting, max_batch_size=32, max_wait_s=0.002)

    async def scenario() -> list[np.ndarray]:
        return await asyncio.gather(*(predictor.predict(digits[i : i + 1]) for i in range(64)))

    rows = run_with_predictor(predictor, scenario)
    expected = model.predict(digits)
    assert len(counting.batch_sizes) < 64
    assert max(counting.batch_sizes) <= 32
    assert sum(counting.batch_sizes) == 64
    for i, row in enumerate(rows):
        assert row.shape == (1, 10)
        np.testing.assert_allclose(row[0], expected[i], atol=1e-5)
    assert predictor.calls == len(counting.batch_sizes)


def test_a_request_larger_than_a_batch_is_split_in_order(
    model: LoadedModel, digits: np.ndarray
) -> None:
    counting = CountingModel(model.predict)
    predictor = BatchingPredictor(counting, max_batch_size=16)

    async def scenario() -> np.ndarray:
        return await predictor.predict(digits[:40])

    probabilities = run_with_predictor(predictor, scenario)
    assert counting.batch_sizes == [16, 16, 8]
    np.testing.assert_allclose(probabilities, model.predict(digits[:40]), atol=1e-5)


def test_a_lone_request_does_not_wait_for_company(model: LoadedModel, digits: np.ndarray) -> None:
    # A wait of an hour would hang the test if an idle batcher waited for more requests.
    predictor = BatchingPredictor(model.predict, max_wait_s=3600)

    async def scenario() -> np.ndarray:
        first = await asyncio.wait_for(predictor.predict(digits[:1]), timeout=30)
        await asyncio.wait_for(predictor.predict(digits[1:2]), timeout=30)
        return first

    assert run_with_predictor(predictor, scenario).shape == (1, 10)


def test_a_full_queue_refuses_instead_of_growing(model: LoadedModel, digits: np.ndarray) -> None:
    entered, release = threading.Event(), threading.Event()

    def gated(batch: np.ndarray) -> np.ndarray:
        entered.set()
        release.wait(timeout=30)
        return model.predict(batch)

    predictor = BatchingPredictor(gated, max_batch_size=1, queue_max=2)

    async def scenario() -> tuple[np.ndarray, ...]:
        running = asyncio.create_task(predictor.predict(digits[:1]))
        await asyncio.to_thread(entered.wait, 30)  # the first is inside the model call
        queued = [asyncio.create_task(predictor.predict(digits[i : i + 1])) for i in (1, 2)]
        await asyncio.sleep(0)
        assert predictor.queued_rows == 2
        with pytest.raises(Overloaded, match="busy"):
            await predictor.predict(digits[3:4])
        release.set()
        return tuple(await asyncio.gather(running, *queued))

    results = run_with_predictor(predictor, scenario)
    assert [r.shape for r in results] == [(1, 10)] * 3
    assert predictor.queued_rows == 0


def test_a_failing_batch_fails_only_the_bad_request_and_the_batcher_lives_on(
    model: LoadedModel, digits: np.ndarray
) -> None:
    counting = CountingModel(model.predict)
    counting.poison = 0.5
    poisoned = np.full((1, 28, 28, 1), 0.5, np.float32)
    predictor = BatchingPredictor(counting, max_batch_size=32)

    async def scenario() -> tuple[list[object], np.ndarray]:
        together = await asyncio.gather(
            predictor.predict(digits[:1]),
            predictor.predict(poisoned),
            predictor.predict(digits[1:3]),
            return_exceptions=True,
        )
        after = await predictor.predict(digits[3:4])
        return together, after

    (good1, bad, good2), after = run_with_predictor(predictor, scenario)
    assert isinstance(bad, InferenceFailed)
    assert "ValueError" in str(bad)
    expected = model.predict(digits[:4])
    np.testing.assert_allclose(good1, expected[:1], atol=1e-5)
    np.testing.assert_allclose(good2, expected[1:3], atol=1e-5)
    np.testing.assert_allclose(after, expected[3:4], atol=1e-5)
    assert counting.batch_sizes[0] == 4  # all three shared one call, which failed


def test_stop_answers_queued_requests_then_refuses(model: LoadedModel, digits: np.ndarray) -> None:
    predictor = BatchingPredictor(model.predict, max_batch_size=4)

    async def scenario() -> None:
        await predictor.start()
        pending = [asyncio.create_task(predictor.predict(digits[i : i + 1])) for i in range(10)]
        await asyncio.sleep(0)
        await predictor.stop()
        assert all(task.done() and task.result().shape == (1, 10) for task in pending)
        with pytest.raises(PredictorClosed):
            await predictor.predict(digits[:1])

    asyncio.run(scenario())


def test_a_cancelled_request_is_skipped(model: LoadedModel, digits: np.ndarray) -> None:
    counting = CountingModel(model.predict)
    predictor = BatchingPredictor(counting)

    async def scenario() -> np.ndarray:
        abandoned = asyncio.create_task(predictor.predict(digits[:5]))
        kept = asyncio.create_task(predictor.predict(digits[5:6]))
        await asyncio.sleep(0)  # both queued
        abandoned.cancel()
        return await kept

    result = run_with_predictor(predictor, scenario)
    np.testing.assert_allclose(result, model.predict(digits[5:6]), atol=1e-5)
    assert counting.batch_sizes == [1]


def test_predict_rejects_a_wrongly_shaped_batch(model: LoadedModel) -> None:
    predictor = BatchingPredictor(model.predict)

    async def scenario() -> None:
        with pytest.raises(ValueError, match="28, 28, 1"):
            await predictor.predict(np.zeros((1, 28, 28), np.float32))

    run_with_predictor(predictor, scenario)
