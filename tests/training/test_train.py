"""The training recipe's pure parts: the validation split and the outlier-exposure targets."""

from __future__ import annotations

import numpy as np
import pytest

from training.train import soft_targets, split_validation


def test_validation_split_is_disjoint_stratified_and_seeded(mnist_sample) -> None:
    x, y = mnist_sample.x_train, mnist_sample.y_train
    split = split_validation(x, y, 500, seed=7)
    assert len(split.y_val) == 500
    assert len(split.y_train) + len(split.y_val) == len(y)
    # Disjoint and complete: every training index is in exactly one half.
    kept = np.setdiff1d(np.arange(len(y)), split.val_indices)
    np.testing.assert_array_equal(split.x_train, x[kept])
    np.testing.assert_array_equal(split.x_val, x[split.val_indices])
    # Stratified: the class shares of the sample (250 each) are kept (50 each).
    assert np.bincount(split.y_val, minlength=10).tolist() == [50] * 10
    again = split_validation(x, y, 500, seed=7)
    np.testing.assert_array_equal(again.val_indices, split.val_indices)
    other = split_validation(x, y, 500, seed=8)
    assert not np.array_equal(other.val_indices, split.val_indices)
    assert split.describe(7)["indices_sha256"] != other.describe(8)["indices_sha256"]


@pytest.mark.parametrize("size", [0, 2500, 10_000])
def test_validation_split_refuses_impossible_sizes(mnist_sample, size: int) -> None:
    with pytest.raises(ValueError, match="validation size"):
        split_validation(mnist_sample.x_train, mnist_sample.y_train, size, seed=0)


def test_soft_targets_one_hot_then_uniform() -> None:
    targets = soft_targets(np.array([3, 0]), negatives=2)
    assert targets.shape == (4, 10)
    assert targets[0].argmax() == 3
    assert targets[0].max() == 1.0
    assert targets[1].argmax() == 0
    np.testing.assert_allclose(targets[2:], 0.1)
    np.testing.assert_allclose(targets.sum(axis=1), 1.0)
