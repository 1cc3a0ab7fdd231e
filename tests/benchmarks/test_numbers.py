"""The number-reading benchmark's bookkeeping: what counts as a number read, a digit right."""

from __future__ import annotations

import pytest

from benchmarks.numbers_over_http import coverage_curve, match, score, summary
from digit_photos.numbers import NumberPhoto

BOXES = ((10, 10, 50, 90), (60, 12, 100, 88), (110, 10, 150, 90))
PHOTO = NumberPhoto(b"", "305", BOXES, "separated", "plain")


def answer(guesses: list[int], boxes=BOXES, verdict: str = "number", confidence: float = 0.99):
    digits = [
        {
            "box": {"x": x0, "y": y0, "width": x1 - x0, "height": y1 - y0},
            "best_guess": g,
            "confidence": confidence,
        }
        for g, (x0, y0, x1, y1) in zip(guesses, boxes, strict=True)
    ]
    number = "".join(map(str, guesses)) if verdict != "no_number" else None
    return {"verdict": verdict, "number": number, "digits": digits}


def test_a_number_read_right_is_exact_and_every_digit_counts():
    s = score(PHOTO, 200, answer([3, 0, 5]))
    assert (s.exact, s.reading, s.length_right, s.digits_right) == (True, True, True, 3)


def test_a_wrong_digit_costs_the_number_but_not_the_others():
    s = score(PHOTO, 200, answer([3, 8, 5]))
    assert (s.exact, s.length_right, s.digits_right) == (False, True, 2)


def test_digits_are_matched_by_place_not_by_order():
    """A missing first digit must not shift the others onto the wrong written digits."""
    s = score(PHOTO, 200, answer([0, 5], boxes=BOXES[1:]))
    assert (s.exact, s.length_right, s.digits_right) == (False, False, 2)
    assert match(BOXES, [(200, 10, 240, 90)]) == {}  # far from every written digit


def test_errors_count_as_nothing_read():
    s = score(PHOTO, 422, None)
    assert (s.verdict, s.exact, s.digits_right) == ("error", False, 0)


def test_summary_and_coverage_count_confidently_wrong_numbers():
    scores = [
        score(PHOTO, 200, answer([3, 0, 5])),
        score(PHOTO, 200, answer([3, 8, 5])),  # wrong, yet verdict number: confidently wrong
        score(PHOTO, 200, answer([3, 0, 5], verdict="uncertain", confidence=0.6)),
    ]
    row = summary(scores)
    assert row["exact"] == pytest.approx(2 / 3)
    assert row["per_digit"] == pytest.approx(8 / 9)
    assert row["confidently_wrong"] == pytest.approx(1 / 3)
    assert row["exact_among_number"] == pytest.approx(1 / 2)
    curve = coverage_curve(scores, thresholds=(0.0, 0.9))
    assert curve["0"] == {"coverage": 1.0, "accuracy": pytest.approx(2 / 3)}
    assert curve["0.9"]["coverage"] == pytest.approx(2 / 3)
    assert curve["verdict number"]["accuracy"] == pytest.approx(1 / 2)


def test_tuning_names_how_a_reading_went_wrong():
    from benchmarks.tune_numbers import failure

    assert failure("305", "305") is None
    assert failure("305", "35") == "too few"
    assert failure("305", "3015") == "too many"
    assert failure("305", "385") == "misread"


def test_tuning_reads_numbers_through_the_service_and_accounts_for_every_wrong_one(
    service_settings, mnist_sample
):
    """The harness reads through DigitService itself: every reading it calls wrong is one the
    benchmark's own scoring calls wrong, and the rest are right."""
    import anyio

    from app.service import DigitService
    from benchmarks.numbers_over_http import KINDS
    from benchmarks.tune_numbers import read_as, read_kind

    async def read() -> tuple[dict, object, list]:
        service = DigitService(service_settings)
        await service.start()
        try:
            return await read_kind(service, KINDS[0], 6, (mnist_sample.x_test, mnist_sample.y_test))
        finally:
            await service.stop()

    figures, failures, wrong = anyio.run(read)
    assert figures["photos"] == 6
    assert sum(failures.values()) == len(wrong)
    assert figures["reading"] == pytest.approx(1 - len(wrong) / 6)
    assert all(read_as(reading) != photo.text for photo, reading in wrong)


def test_the_judge_experiment_labels_candidates_by_the_written_digits():
    import numpy as np

    from app.imaging.segment import Box, Candidate
    from benchmarks.segment_judge import PART, SEVERAL, WHOLE, label

    def candidate(x0: int, y0: int, x1: int, y1: int) -> Candidate:
        box = Box(x0, y0, x1 - x0, y1 - y0)
        return Candidate(0, 1, box, np.zeros((28, 28), np.float32), 1.0, 1.0)

    assert label(candidate(10, 10, 50, 90), BOXES) == WHOLE
    assert label(candidate(10, 10, 100, 90), BOXES) == SEVERAL  # the 3 and the 0 as one
    assert label(candidate(10, 10, 30, 90), BOXES) == PART  # the 3's left half
    assert label(candidate(10, 10, 75, 90), BOXES) == PART  # the 3 and a third of the 0
