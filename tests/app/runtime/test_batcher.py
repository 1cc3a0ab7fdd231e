"""app/runtime/batcher.py against the real SavedModel: the dynamic batcher."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

import numpy as np
import pytest

from app.runtime.batcher import BatchingPredictor, InferenceFailed, Overloaded, PredictorClosed
from app.runtime.loading import LoadedModel

T = TypeVar("T")


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
