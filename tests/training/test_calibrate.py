"""Calibration and operating points on synthetic probabilities whose truth is known."""

from __future__ import annotations

import numpy as np
import pytest

from training import calibrate
from training.calibrate import OperatingPoints


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _calibrated_sample(n: int, seed: int, scale: float = 3) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities that are calibrated by construction: labels are drawn from them."""
    rng = np.random.default_rng(seed)
    probs = _softmax(rng.normal(0, scale, size=(n, 10)))
    labels = np.array([rng.choice(10, p=row) for row in probs])
    return probs, labels


def test_temperature_recovers_the_overconfidence_it_undoes() -> None:
    probs, labels = _calibrated_sample(6000, 0)
    overconfident = calibrate.apply_temperature(probs, 1 / 2.0)  # logits doubled
    fitted = calibrate.fit_temperature(overconfident, labels)
    assert fitted == pytest.approx(2.0, rel=0.08)
    repaired = calibrate.apply_temperature(overconfident, fitted)
    assert calibrate.expected_calibration_error(repaired, labels) < 0.02
    assert calibrate.expected_calibration_error(overconfident, labels) > 0.1
    assert calibrate.nll(repaired, labels) < calibrate.nll(overconfident, labels)


def test_temperature_keeps_every_argmax() -> None:
    probs, _ = _calibrated_sample(500, 1)
    for t in (0.3, 1.0, 4.0):
        scaled = calibrate.apply_temperature(probs, t)
        np.testing.assert_array_equal(scaled.argmax(axis=1), probs.argmax(axis=1))
        np.testing.assert_allclose(scaled.sum(axis=1), 1.0, atol=1e-9)


def test_ece_variants_and_brier_on_known_cases() -> None:
    labels = np.array([0, 0, 1, 1])
    sure_and_right = np.eye(10)[labels]
    assert calibrate.expected_calibration_error(sure_and_right, labels) == pytest.approx(0.0)
    assert calibrate.equal_mass_ece(sure_and_right, labels) == pytest.approx(0.0)
    assert calibrate.brier(sure_and_right, labels) == pytest.approx(0.0)
    sure_and_wrong = np.eye(10)[1 - labels]
    assert calibrate.expected_calibration_error(sure_and_wrong, labels) == pytest.approx(1.0)
    assert calibrate.brier(sure_and_wrong, labels) == pytest.approx(2.0)


def test_verdicts_follow_the_two_thresholds() -> None:
    probs = np.full((4, 10), 0.0)
    for row, top in enumerate((0.2, 0.6, 0.95, 0.5)):
        probs[row, 3] = top
        probs[row, 4] = 1 - top
    got = calibrate.verdicts(probs, OperatingPoints(0.55, 0.9))
    assert got.tolist() == ["uncertain", "uncertain", "digit", "not_a_digit"]
    # (0.2 is a 0.8 for digit 4: max-based, not digit-3-based)


def test_operating_points_meet_their_targets_on_the_data_they_were_fitted_on() -> None:
    rng = np.random.default_rng(3)
    clean, labels = _calibrated_sample(4000, 4, scale=25)  # mostly confident digits
    hard = calibrate.apply_temperature(clean, 1.5)  # the same digits, less sure
    negatives = _softmax(rng.normal(0, 0.6, size=(1000, 10)))  # flat-ish
    points, rates = calibrate.fit_operating_points(clean, labels, hard, labels, negatives)
    assert 0 <= points.not_a_digit_below <= points.uncertain_below <= 1
    assert points.uncertain_below >= calibrate.MIN_UNCERTAIN_BELOW
    most_rejected = calibrate.MAX_DIGITS_REJECTED_FOR_NEGATIVES
    assert rates["validation_augmented_not_a_digit"] <= most_rejected + 1e-3
    assert rates["negatives_not_a_digit"] >= calibrate.MIN_NEGATIVES_REJECTED - 1e-3
    pooled_wrong = (
        rates["validation_confidently_wrong"] + rates["validation_augmented_confidently_wrong"]
    ) / 2
    pooled_digit = (rates["validation_digit"] + rates["validation_augmented_digit"]) / 2
    assert pooled_digit > 0.5, "the points should still accept most confident digits"
    assert pooled_wrong / pooled_digit <= calibrate.MAX_RISK_ACCEPTED + 1e-9


def test_risk_coverage_ends_at_the_plain_error_rate() -> None:
    probs, labels = _calibrated_sample(1000, 5)
    curve = calibrate.risk_coverage(probs, labels)
    assert curve["coverage"][-1] == pytest.approx(1.0)
    assert curve["risk"][-1] == pytest.approx(float((probs.argmax(1) != labels).mean()))
    # Accepting the confident first: the first points are safer than the whole.
    assert curve["risk"][len(curve["risk"]) // 10] < curve["risk"][-1]
    assert curve["threshold"] == sorted(curve["threshold"], reverse=True)
