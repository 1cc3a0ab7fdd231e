"""The accuracy benchmark's bookkeeping: what it counts as right, confident or turned away."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from benchmarks.accuracy_over_http import Answers, calibration_row, digit_row, negative_pages
from training.calibrate import apply_temperature


def _answers(guess: list[int], verdict: list[str], status: list[int]) -> Answers:
    probs = np.full((len(guess), 10), 0.01)
    for row, g in enumerate(guess):
        probs[row, g] = 0.91
    return Answers(np.array(status), np.array(guess), np.array(verdict, dtype=object), probs)


def test_digit_row_counts_confidently_wrong_only_among_digit_verdicts() -> None:
    labels = np.array([1, 2, 3, 4])
    answers = _answers([1, 7, 3, 9], ["digit", "digit", "uncertain", "not_a_digit"], [200] * 4)
    row = digit_row(answers, labels)
    assert row["accuracy"] == pytest.approx(0.5)
    assert row["digit"] == pytest.approx(0.5)
    assert row["accuracy_among_digit"] == pytest.approx(0.5)
    assert row["confidently_wrong"] == pytest.approx(0.25)  # the 7 for a 2, nothing else
    assert row["not_a_digit"] == pytest.approx(0.25)


def test_calibration_row_undoes_the_temperature() -> None:
    rng = np.random.default_rng(0)
    raw = np.exp(rng.normal(0, 3, (50, 10)))
    raw /= raw.sum(axis=1, keepdims=True)
    labels = raw.argmax(axis=1)
    served = apply_temperature(raw, 2.0)
    answers = Answers(np.full(50, 200), labels, np.full(50, "digit", dtype=object), served)
    row = calibration_row(answers, labels, temperature=2.0)
    assert row["before"]["nll"] == pytest.approx(
        -np.mean(np.log(raw[np.arange(50), labels])), rel=1e-6
    )
    assert row["after"]["nll"] > row["before"]["nll"]  # a hotter softmax on right answers


def test_negative_pages_are_pngs_of_dark_ink_on_paper_per_kind() -> None:
    pages, kinds = negative_pages(2)
    assert len(pages) == len(kinds)
    assert {"letters", "shapes", "noise"} <= set(kinds)
    for data in pages[:4]:
        page = np.asarray(Image.open(io.BytesIO(data)))
        assert page.ndim == 2
        assert np.median(page) > 150  # paper is light
