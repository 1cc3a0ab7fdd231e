"""app/verdicts.py: the verdict on ten probabilities, and which operating points are in force."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest

from app.verdicts import (
    DEFAULT_POINTS,
    InvalidOperatingPoints,
    OperatingPoints,
    Verdict,
    in_a_number,
    judge,
    resolve_operating_points,
)

POINTS = OperatingPoints(not_a_digit_below=0.55, uncertain_below=0.93)


def row(best: int, confidence: float, runner_up: int | None = None, second: float = 0.0) -> list:
    """Ten probabilities summing to 1: ``best`` at ``confidence``, ``runner_up`` at ``second``,
    the rest shared evenly (each below both)."""
    probabilities = np.zeros(10)
    probabilities[best] = confidence
    others = [d for d in range(10) if d not in (best, runner_up)]
    if runner_up is not None:
        probabilities[runner_up] = second
    probabilities[others] = (1 - confidence - second) / len(others)
    assert probabilities.argmax() == best
    return probabilities.tolist()


# --- judge ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("confidence", "verdict"),
    [
        (0.549999, Verdict.not_a_digit),
        (0.55, Verdict.uncertain),  # the lower point belongs to uncertain
        (0.929999, Verdict.uncertain),
        (0.93, Verdict.digit),  # the upper point belongs to digit
        (1.0, Verdict.digit),
    ],
)
def test_each_operating_point_starts_the_verdict_above_it(
    confidence: float, verdict: Verdict
) -> None:
    judged = judge(row(3, confidence, 8, (1 - confidence) / 2), POINTS)
    assert judged.verdict is verdict
    assert judged.best_guess == 3
    assert judged.confidence == confidence


def test_not_a_digit_names_no_digit_but_keeps_the_best_guess() -> None:
    judged = judge(row(4, 0.31, 9, 0.3), POINTS)
    assert judged.verdict is Verdict.not_a_digit
    assert judged.digit is None
    assert judged.best_guess == 4
    assert judged.confidence == 0.31
    assert judged.alternatives is None


def test_a_piece_of_a_number_is_not_a_digit_only_far_lower() -> None:
    """In a row of digits a digit-sized piece read at 0.31 is an uncertain digit, not a gap
    in the number; one read near chance still is no digit."""
    points = in_a_number(POINTS)
    assert points.not_a_digit_below == pytest.approx(0.275)
    assert points.uncertain_below == POINTS.uncertain_below
    piece = judge(row(4, 0.31, 9, 0.3), points)
    assert (piece.verdict, piece.digit) == (Verdict.uncertain, 4)
    assert judge(row(4, 0.2, 9, 0.15), points).verdict is Verdict.not_a_digit
    assert judge(row(4, 0.95), points).verdict is Verdict.digit


def test_a_digit_names_it_without_alternatives() -> None:
    judged = judge(row(7, 0.998, 1, 0.001), POINTS)
    assert (judged.verdict, judged.digit, judged.best_guess) == (Verdict.digit, 7, 7)
    assert judged.alternatives is None


def test_uncertain_names_the_top_three_most_probable_first() -> None:
    probabilities = [0.0, 0.01, 0.02, 0.03, 0.6, 0.0, 0.0, 0.012, 0.0, 0.328]
    judged = judge(np.array(probabilities, np.float32), POINTS)
    assert judged.verdict is Verdict.uncertain
    assert (judged.digit, judged.best_guess) == (4, 4)
    assert [a.digit for a in judged.alternatives] == [4, 9, 3]
    assert [a.probability for a in judged.alternatives] == [0.6, 0.328, 0.03]


def test_tied_alternatives_start_with_the_best_guess() -> None:
    """argmax picks the lowest of equal digits; the alternatives must agree with it."""
    probabilities = [0.0, 0.0, 0.0, 0.0, 0.0, 0.3, 0.0, 0.4, 0.0, 0.3]
    probabilities[2] = 0.4  # 2 and 7 tie
    probabilities = np.array(probabilities) / sum(probabilities)
    judged = judge(probabilities, OperatingPoints(0.0, 1.0))
    assert judged.best_guess == 2
    assert [a.digit for a in judged.alternatives] == [2, 7, 5]


def test_the_confidence_judged_is_the_one_reported() -> None:
    """0.9299996 is reported as 0.93; a client comparing that with uncertain_below=0.93 reads
    `digit`, and so must the service."""
    judged = judge(row(1, 0.9299996), POINTS)
    assert judged.confidence == 0.93
    assert judged.verdict is Verdict.digit


def test_float32_rows_give_plain_python_numbers() -> None:
    judged = judge(np.array(row(5, 0.6, 6, 0.3), np.float32), POINTS)
    assert type(judged.best_guess) is int
    assert type(judged.confidence) is float
    assert all(type(a.digit) is int and type(a.probability) is float for a in judged.alternatives)


# --- OperatingPoints --------------------------------------------------------------------------


@pytest.mark.parametrize(("low", "high"), [(0.0, 0.0), (0.0, 1.0), (1.0, 1.0), (0.7, 0.7)])
def test_operating_points_may_meet_and_touch_the_ends(low: float, high: float) -> None:
    points = OperatingPoints(low, high)
    assert (points.not_a_digit_below, points.uncertain_below) == (low, high)


@pytest.mark.parametrize(
    ("low", "high"), [(0.9, 0.5), (-0.1, 0.5), (0.5, 1.01), (math.nan, 0.9), (0.5, math.nan)]
)
def test_operating_points_out_of_order_or_range_are_refused(low: float, high: float) -> None:
    with pytest.raises(InvalidOperatingPoints, match="0 <= not_a_digit_below"):
        OperatingPoints(low, high)


# --- which operating points are in force ------------------------------------------------------

FITTED = {"operating_points": {"not_a_digit_below": 0.61, "uncertain_below": 0.95, "rates": {}}}


def test_the_models_own_points_are_used_when_nothing_overrides_them() -> None:
    assert resolve_operating_points(FITTED) == OperatingPoints(0.61, 0.95, "metadata")


def test_settings_override_the_model(caplog: pytest.LogCaptureFixture) -> None:
    points = resolve_operating_points(FITTED, not_a_digit_below=0.2, uncertain_below=0.99)
    assert points == OperatingPoints(0.2, 0.99, "settings")
    # Only one set: the other stays the model's; still "settings", since they changed it.
    assert resolve_operating_points(FITTED, uncertain_below=1.0) == OperatingPoints(
        0.61, 1.0, "settings"
    )
    assert resolve_operating_points(FITTED, not_a_digit_below=0.0) == OperatingPoints(
        0.0, 0.95, "settings"
    )
    assert "no fitted operating points" not in caplog.text


def test_a_model_without_points_gets_the_defaults_and_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="app.verdicts"):
        points = resolve_operating_points({"version": "1"})
    assert points == DEFAULT_POINTS
    assert points.source == "default"
    [record] = [r for r in caplog.records if "no fitted operating points" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert "retrain" in record.getMessage()


def test_settings_alone_need_no_points_from_the_model(caplog: pytest.LogCaptureFixture) -> None:
    both = resolve_operating_points({}, not_a_digit_below=0.3, uncertain_below=0.8)
    assert both == OperatingPoints(0.3, 0.8, "settings")
    assert "no fitted operating points" not in caplog.text
    # One setting on a model without points: the other is a default, and that is warned of.
    with caplog.at_level(logging.WARNING, logger="app.verdicts"):
        one = resolve_operating_points({}, uncertain_below=0.99)
    assert one == OperatingPoints(DEFAULT_POINTS.not_a_digit_below, 0.99, "settings")
    assert "no fitted operating points" in caplog.text


def test_settings_that_clash_with_the_model_are_refused_naming_both() -> None:
    with pytest.raises(InvalidOperatingPoints) as raised:
        resolve_operating_points(FITTED, not_a_digit_below=0.97)
    message = str(raised.value)
    assert "NOT_A_DIGIT_BELOW=0.97 (from the settings)" in message
    assert "uncertain_below=0.95 (from the model's metadata.json)" in message
    assert "\n" not in message
    with pytest.raises(InvalidOperatingPoints, match=r"UNCERTAIN_BELOW=0\.4 \(from the settings\)"):
        resolve_operating_points({}, uncertain_below=0.4)  # below the default 0.5


def test_settings_out_of_order_are_refused() -> None:
    with pytest.raises(InvalidOperatingPoints, match=r"NOT_A_DIGIT_BELOW=0\.9 "):
        resolve_operating_points(FITTED, not_a_digit_below=0.9, uncertain_below=0.5)


@pytest.mark.parametrize(
    "garbled",
    [
        "0.5,0.9",
        {"not_a_digit_below": 0.5},
        {"not_a_digit_below": "0.5", "uncertain_below": 0.9},
        {"not_a_digit_below": True, "uncertain_below": 0.9},
        {"not_a_digit_below": math.nan, "uncertain_below": 0.9},
        {"not_a_digit_below": 0.5, "uncertain_below": 1.5},
    ],
)
def test_a_model_with_garbled_points_is_refused(garbled: object) -> None:
    with pytest.raises(InvalidOperatingPoints, match="operating"):
        resolve_operating_points({"operating_points": garbled})
    # ...unless the settings replace both values: then the model's are not used at all.
    points = resolve_operating_points(
        {"operating_points": garbled}, not_a_digit_below=0.5, uncertain_below=0.9
    )
    assert points.source == "settings"
