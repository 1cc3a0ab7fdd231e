"""Pairs of digits as negatives: two real training digits side by side, framed as one."""

from __future__ import annotations

import numpy as np
import pytest

from training.negatives import mnist_frame
from training.pairs import digit_pairs


def ink_aspect(frame: np.ndarray) -> float:
    """Width over height of the box of pixels at least 0.2 of the peak."""
    mask = frame >= 0.2 * frame.max()
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return (cols[-1] - cols[0] + 1) / (rows[-1] - rows[0] + 1)


def test_a_pair_is_framed_like_one_digit_but_as_wide_as_two(mnist_sample) -> None:
    digits = mnist_sample.x_train[:500]
    pairs = digit_pairs(digits, 200, seed=0)
    assert pairs.shape == (200, 28, 28)
    assert pairs.dtype == np.uint8
    # Framed as MNIST frames a digit: the longer side of the ink box is 20 px, the peak 255.
    assert (pairs.max(axis=(1, 2)) == 255).all()
    for pair in pairs:
        rows, cols = np.flatnonzero(pair.any(axis=1)), np.flatnonzero(pair.any(axis=0))
        assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 == 20
    single = np.median([ink_aspect(mnist_frame(d)) for d in digits])
    double = np.median([ink_aspect(p) for p in pairs])
    # One MNIST digit is taller than wide; two written into one another are wider than tall.
    assert single < 0.9 < 1.1 < double


def test_pairs_are_made_of_the_digits_given(mnist_sample) -> None:
    """Only the images passed in (the training split) are used: pairs of 1s are tall and thin
    compared with pairs of 0s, which they could not be if other digits slipped in."""
    x, y = mnist_sample.x_train, mnist_sample.y_train
    ones, zeros = digit_pairs(x[y == 1], 50, seed=1), digit_pairs(x[y == 0], 50, seed=1)
    assert np.median([ink_aspect(p) for p in ones]) < np.median([ink_aspect(p) for p in zeros])


def test_pairs_are_deterministic_and_vary(mnist_sample) -> None:
    digits = mnist_sample.x_train[:300]
    a, b = digit_pairs(digits, 30, seed=5), digit_pairs(digits, 30, seed=5)
    assert a.tobytes() == b.tobytes()
    assert digit_pairs(digits, 30, seed=6).tobytes() != a.tobytes()
    assert len({p.tobytes() for p in a}) == 30


def test_bad_arguments_are_refused(mnist_sample) -> None:
    with pytest.raises(ValueError, match="n must be"):
        digit_pairs(mnist_sample.x_train[:10], -1, seed=0)
    with pytest.raises(ValueError, match="two 28x28"):
        digit_pairs(mnist_sample.x_train[:1], 3, seed=0)
    assert digit_pairs(mnist_sample.x_train[:1], 0, seed=0).shape == (0, 28, 28)
