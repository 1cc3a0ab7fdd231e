"""app.imaging.segment: a photo of a number -> candidate digits, marks, and the reading chosen.

Model-free: the geometry is checked against the ink boxes ``digit_photos.numbers`` records,
and the choice against confidences given by hand. Reading through the model is tested over
the API (tests/app/test_read.py).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from app.imaging import segment
from app.imaging.decode import decode_grayscale_scaled
from app.imaging.errors import NoDigitFound
from app.imaging.segment import Box, Candidate, MarkKind, Proposal, choose, digits_beside, propose
from digit_photos.numbers import number_digits, number_photo


def iou(a: Box, b: tuple[int, int, int, int]) -> float:
    ax0, ay0, ax1, ay1 = a.x, a.y, a.x + a.width, a.y + a.height
    bx0, by0, bx1, by1 = b
    w = max(0, min(ax1, bx1) - max(ax0, bx0))
    h = max(0, min(ay1, by1) - max(ay0, by0))
    union = (ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - w * h
    return w * h / union if union else 0.0


def photos(mnist_sample, spacing: str, paper: str, length: int, count: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for k in range(count):
        digits, labels = number_digits(rng, mnist_sample.x_test, mnist_sample.y_test, length)
        yield number_photo(digits, labels, spacing, paper, seed * 1000 + k)


def matched(proposal: Proposal, truth: tuple[tuple[int, int, int, int], ...]) -> int:
    """How many true digit boxes have a candidate that covers them (IoU >= 0.5)."""
    return sum(any(iou(c.box, box) >= 0.5 for c in proposal.candidates) for box in truth)


def proposed(data: bytes) -> Proposal:
    return propose(*decode_grayscale_scaled(data, 40_000_000))


@pytest.mark.parametrize("paper", ["plain", "notebook"])
def test_separated_digits_are_each_a_candidate_where_they_are_written(mnist_sample, paper: str):
    total = found = 0
    for photo in photos(mnist_sample, "separated", paper, length=4, count=6):
        proposal = proposed(photo.data)
        total += len(photo.boxes)
        found += matched(proposal, photo.boxes)
    assert found >= 0.95 * total, f"{found} of {total} digits had a candidate on their ink"


def test_boxes_are_in_the_uploads_pixels_when_the_jpeg_is_decoded_smaller(mnist_sample):
    """Big JPEGs are decoded at 1/2-1/8 scale; /read's boxes still land on the upload's ink."""
    rng = np.random.default_rng(3)
    digits, labels = number_digits(rng, mnist_sample.x_test, mnist_sample.y_test, 3)
    photo = number_photo(digits, labels, "separated", "plain", 11)
    page = cv2.imdecode(np.frombuffer(photo.data, np.uint8), cv2.IMREAD_GRAYSCALE)
    big = cv2.resize(page, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)
    data = cv2.imencode(".jpg", big, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()
    gray, scale = decode_grayscale_scaled(data, 40_000_000)
    assert scale > 1  # decoded smaller than it is
    truth = tuple(tuple(3 * v for v in box) for box in photo.boxes)
    assert matched(propose(gray, scale), truth) == len(truth)  # type: ignore[arg-type]


def test_touching_digits_are_cut_apart_among_the_candidates(mnist_sample):
    """Digits whose strokes run into each other are one piece of ink; the seams proposed
    through it must include the cut that parts them."""
    merged = parted = 0
    for photo in photos(mnist_sample, "touching", "plain", length=2, count=12, seed=1):
        gray, scale = decode_grayscale_scaled(photo.data, 40_000_000)
        line = segment._split_line(segment.locate_number(gray).ink)
        if len(line.groups) != 1:
            continue  # this pair was left just apart
        merged += 1
        parted += matched(propose(gray, scale), photo.boxes) == 2
    assert merged >= 6
    assert parted >= 0.75 * merged, f"{parted} of {merged} touching pairs had both cuts"


def test_overlapping_digits_are_cut_where_the_profile_has_no_minimum(mnist_sample):
    """Where two digits' strokes overlap, the column profile has no low point at the join;
    the evenly spaced extra cuts through a wide group must still part them closely (without
    them, 74% of these digits had a candidate this close)."""
    total = close = 0
    for spacing in ("overlapping", "touching"):
        for photo in photos(mnist_sample, spacing, "plain", length=3, count=20, seed=2):
            proposal = proposed(photo.data)
            total += len(photo.boxes)
            close += sum(
                any(iou(c.box, b) >= 0.8 for c in proposal.candidates) for b in photo.boxes
            )
    assert close >= 0.82 * total, f"{close} of {total} digits had a candidate at IoU >= 0.8"


def test_a_cut_out_digit_drops_what_the_cut_left_of_its_neighbour():
    inside = np.zeros((40, 30), bool)
    inside[5:35, 5:9] = True  # the digit's stroke
    inside[5:9, 5:20] = True
    inside[20:23, 27:30] = True  # the end of the neighbour's stroke, cut off
    kept = segment._without_slivers(inside)
    assert kept[5:35, 5:9].all()
    assert kept[5:9, 5:20].all()
    assert not kept[20:23, 27:30].any()
    # Two big pieces (a digit broken in two) both stay.
    broken = np.zeros((40, 30), bool)
    broken[2:18, 5:9] = True
    broken[22:38, 5:9] = True
    assert (segment._without_slivers(broken) == broken).all()


def line_of(*pieces: tuple[str, tuple[int, int, int, int]]) -> np.ndarray:
    """A white page with dark strokes: each piece a kind and (x0, y0, x1, y1)."""
    page = np.full((300, 900), 235, np.uint8)
    for kind, (x0, y0, x1, y1) in pieces:
        if kind == "one":
            cv2.line(page, ((x0 + x1) // 2, y0), ((x0 + x1) // 2, y1), 30, 12, cv2.LINE_AA)
        elif kind == "zero":
            centre, axes = ((x0 + x1) // 2, (y0 + y1) // 2), ((x1 - x0) // 2, (y1 - y0) // 2)
            cv2.ellipse(page, centre, axes, 0, 0, 360, 30, 12, cv2.LINE_AA)
        elif kind == "bar":
            cv2.line(page, (x0, (y0 + y1) // 2), (x1, (y0 + y1) // 2), 30, 12, cv2.LINE_AA)
        elif kind == "dot":
            cv2.circle(page, ((x0 + x1) // 2, (y0 + y1) // 2), (x1 - x0) // 2, 30, -1)
        elif kind == "frame":
            cv2.rectangle(page, (x0, y0), (x1, y1), 30, 6, cv2.LINE_AA)
    return page


def test_a_dash_a_dot_and_an_underline_are_marks_not_digits():
    page = line_of(
        ("zero", (100, 80, 200, 230)),
        ("bar", (240, 140, 300, 160)),  # a dash
        ("one", (340, 80, 360, 230)),
        ("dot", (400, 215, 416, 231)),  # a full stop
        ("zero", (450, 80, 550, 230)),
        ("bar", (80, 255, 600, 265)),  # an underline
    )
    proposal = propose(page)
    kinds = sorted(mark.kind.value for mark in proposal.marks)
    assert kinds == ["line", "small", "small"]
    single = {(c.start, c.end) for c in proposal.candidates if c.end == c.start + 1}
    assert len(single) == proposal.units == 3


def test_a_filled_triangle_beside_the_number_is_not_a_digit():
    """What lighting leaves of a shadow's corner narrowing to a point is a filled triangle,
    tall and thin enough to pass for strokes; it is dropped as /predict drops it."""
    for triangle in ([[520, 30], [575, 30], [560, 270]], [[520, 60], [600, 60], [560, 250]]):
        page = line_of(
            ("zero", (100, 80, 200, 230)),
            ("zero", (240, 80, 340, 230)),
            ("one", (400, 80, 420, 230)),
        )
        cv2.fillConvexPoly(page, np.array(triangle, np.int32), 30)
        line = segment._split_line(segment.locate_number(page).ink)
        assert len(line.groups) == 3
        assert max(group.x1 for group in line.groups) < 440 * line.labels.shape[1] / 900


def test_a_digit_whose_loops_closed_is_read_but_a_faint_blob_is_not():
    """A thick pen in a dim photo fills a small 8's loops: the blob is as dark as the digits
    beside it and digit-sized, so the model gets to read it. A fainter blob of the same size
    is what lighting leaves of a shadow, and a much smaller one is a smudge."""
    page = line_of(("zero", (100, 80, 200, 230)), ("one", (400, 80, 420, 230)))
    cv2.ellipse(page, (300, 155), (45, 70), 0, 0, 360, 30, -1, cv2.LINE_AA)
    line = segment._split_line(segment.locate_number(page).ink)
    assert len(line.groups) == 3

    ink = np.zeros((200, 400), np.uint8)
    cv2.ellipse(ink, (50, 100), (30, 60), 0, 0, 360, 200, 12)  # a 0
    cv2.ellipse(ink, (150, 100), (30, 60), 0, 0, 360, 200, -1)  # an 8 whose loops closed
    cv2.ellipse(ink, (250, 100), (30, 60), 0, 0, 360, 120, -1)  # as big, fainter
    cv2.circle(ink, (350, 100), 15, 200, -1)  # as dark, much smaller
    count, labels, stats = segment.strokes.components((ink > 0).astype(np.uint8) * 255)
    assert count == 4
    order = np.argsort(stats[:, 0])
    blobs = segment._inky_blobs(ink, labels, stats, order[1:], order[:1], height=120.0)
    assert list(blobs) == [order[1]]


def test_a_box_drawn_around_the_number_is_a_line_mark():
    page = line_of(
        ("frame", (60, 50, 620, 260)),
        ("zero", (100, 80, 200, 230)),
        ("one", (300, 80, 320, 230)),
        ("zero", (450, 80, 550, 230)),
    )
    proposal = propose(page)
    assert [mark.kind for mark in proposal.marks] == [MarkKind.line]
    assert proposal.units == 3


def test_a_digit_sized_piece_above_the_row_is_off_the_line():
    """A shadow's tip or a note in the margin, digit-sized but above the digits, is a mark."""
    page = line_of(
        ("zero", (100, 170, 160, 270)),
        ("zero", (200, 170, 260, 270)),
        ("zero", (300, 170, 360, 270)),
        ("zero", (420, 20, 480, 120)),  # above the row, not on it
    )
    proposal = propose(page)
    assert [mark.kind for mark in proposal.marks] == [MarkKind.off_line]
    assert proposal.marks[0].box.y < 130
    assert proposal.units == 3


def test_one_tall_piece_does_not_make_the_digits_beside_it_marks():
    """A piece three digits tall (a shadow's edge, a stroke down the page) is not what sets the
    digits' height: the digits beside it stay digits."""
    zeros = [(200, 120, 250, 190), (300, 120, 350, 190), (400, 120, 450, 190)]
    page = line_of(("one", (80, 30, 100, 270)), *(("zero", box) for box in zeros))
    proposal = propose(page)
    assert not [mark for mark in proposal.marks if mark.kind is MarkKind.small]
    for x0, y0, x1, y1 in zeros:  # each zero whole among the candidates
        assert any(iou(c.box, (x0 - 6, y0 - 6, x1 + 6, y1 + 6)) > 0.7 for c in proposal.candidates)


def test_a_loose_piece_above_a_digit_is_merged_into_it():
    """A 5 whose bar came loose is one digit: the small piece over a bigger one joins it."""
    page = np.full((300, 500), 235, np.uint8)
    cv2.ellipse(page, (200, 180), (55, 50), 0, -120, 160, 30, 12, cv2.LINE_AA)  # the bowl
    cv2.line(page, (160, 70), (160, 125), 30, 12, cv2.LINE_AA)  # the stem
    cv2.line(page, (175, 50), (250, 50), 30, 12, cv2.LINE_AA)  # the loose bar
    line = segment._split_line(segment.locate_number(page).ink)
    assert len(line.groups) == 1
    assert not line.marks
    proposal = propose(page)
    assert any(c.start == 0 and c.end == proposal.units for c in proposal.candidates)


def test_a_loose_bar_reaching_out_from_a_digits_top_right_is_merged_into_it():
    """A narrow 5 whose bar came loose beside its top, barely over it, is still one digit."""
    page = np.full((300, 500), 235, np.uint8)
    cv2.ellipse(page, (185, 180), (30, 50), 0, -120, 160, 30, 12, cv2.LINE_AA)  # the bowl
    cv2.line(page, (160, 70), (160, 125), 30, 12, cv2.LINE_AA)  # the stem
    cv2.line(page, (214, 72), (272, 72), 30, 12, cv2.LINE_AA)  # the bar, off the stem's top
    cv2.line(page, (330, 110), (372, 110), 30, 12, cv2.LINE_AA)  # a dash further on stays one
    line = segment._split_line(segment.locate_number(page).ink)
    assert len(line.groups) == 1
    group = line.groups[0]
    assert group.x1 - group.x0 > (272 - 150) * line.labels.shape[1] / 500 * 0.9
    assert [kind for kind, _ in line.marks] == [MarkKind.small]


def test_a_digit_broken_in_two_one_piece_above_the_other_is_one_digit():
    """Where a shadow's edge crosses a 7, its top and its foot part; with a 1 beside it the
    pieces set the digits' height at the foot's, so the 7 is nearly twice as tall. Stacked
    pieces in the same columns are one digit all the same; side by side, they are two."""
    page = line_of(("one", (130, 80, 150, 230)))
    cv2.line(page, (300, 86), (380, 86), 30, 12, cv2.LINE_AA)  # the 7's bar
    cv2.line(page, (380, 86), (365, 130), 30, 12, cv2.LINE_AA)  # its stroke, then a break
    cv2.line(page, (360, 146), (330, 230), 30, 12, cv2.LINE_AA)  # and its foot
    cv2.line(page, (520, 140), (520, 230), 30, 12, cv2.LINE_AA)  # a short 1 beside it
    line = segment._split_line(segment.locate_number(page).ink)
    assert len(line.groups) == 3
    scale = line.labels.shape[1] / 900
    seven = line.groups[1]
    assert seven.y1 - seven.y0 > 130 * scale


def test_blank_pages_have_no_number():
    with pytest.raises(NoDigitFound):
        propose(np.full((200, 600), 230, np.uint8))


def test_every_candidate_is_an_mnist_framed_image(mnist_sample):
    photo = next(photos(mnist_sample, "separated", "plain", length=3, count=1, seed=4))
    proposal = proposed(photo.data)
    assert proposal.images.shape == (len(proposal.candidates), 28, 28, 1)
    assert proposal.images.dtype == np.float32
    for image in proposal.images:
        ys, xs = np.nonzero(image[..., 0] > 0.05)
        assert max(ys.max() - ys.min(), xs.max() - xs.min()) + 1 <= 21  # MNIST's 20 px box
        assert image.max() == pytest.approx(1.0)


# --- the choice ----------------------------------------------------------------------------


def candidate(start: int, end: int, width: float = 0.6, height: float = 1.0) -> Candidate:
    return Candidate(start, end, Box(start, 0, end - start, 1), np.zeros((28, 28)), width, height)


def test_the_reading_the_model_is_surest_of_wins():
    """Units 0-1-2: either one digit (0-2) and one (2-3), or three singles."""
    proposal = Proposal(
        units=3,
        candidates=(candidate(0, 1), candidate(1, 2), candidate(0, 2), candidate(2, 3)),
        cuts=(0.0, 0.3, 0.0, 0.0),
    )
    # The halves are unsure, the whole is sure: the whole wins.
    assert choose(proposal, np.array([0.6, 0.6, 0.99, 0.98])) == [2, 3]
    # The halves are sure and the whole is not: they win, even paying for the cut.
    assert choose(proposal, np.array([0.99, 0.99, 0.3, 0.98])) == [0, 1, 3]


def test_a_cut_through_ink_costs_and_a_gap_does_not():
    # Same confidences; only what parting units 0 and 1 costs differs.
    singles = (candidate(0, 1), candidate(1, 2), candidate(0, 2))
    confidences = np.array([0.95, 0.95, 0.85])
    gap = Proposal(units=2, candidates=singles, cuts=(0.0, 0.0, 0.0))
    cut = Proposal(units=2, candidates=singles, cuts=(0.0, 1.0, 0.0))
    assert choose(gap, confidences) == [0, 1]
    assert choose(cut, confidences) == [2]


def test_too_wide_and_too_short_candidates_pay_for_it():
    wide = Proposal(
        units=2,
        candidates=(candidate(0, 1), candidate(1, 2), candidate(0, 2, width=1.6)),
        cuts=(0.0, 0.3, 0.0),
    )
    assert choose(wide, np.array([0.9, 0.9, 0.99])) == [0, 1]
    short = Proposal(
        units=2,
        candidates=(candidate(0, 1, height=0.3), candidate(1, 2), candidate(0, 2)),
        cuts=(0.0, 0.0, 0.0),
    )
    assert choose(short, np.array([0.99, 0.99, 0.9])) == [2]


def test_a_unit_no_candidate_covers_is_skipped():
    proposal = Proposal(units=3, candidates=(candidate(0, 1), candidate(2, 3)), cuts=(0.0,) * 4)
    assert choose(proposal, np.array([0.9, 0.9])) == [0, 1]


# --- /predict's "several digits" ------------------------------------------------------------


def test_digits_side_by_side_are_seen_as_several(mnist_sample):
    seen = [
        segment.normalize_counted(decode_grayscale_scaled(photo.data, 10**8)[0])[1]
        for photo in photos(mnist_sample, "separated", "plain", length=3, count=8, seed=5)
    ]
    assert sum(count >= 2 for count in seen) >= 7, seen


def test_one_digit_is_one(mnist_sample):
    from digit_photos import photograph

    counts = [
        segment.normalize_counted(decode_grayscale_scaled(photograph(x, "jpeg", i), 10**8)[0])[1]
        for i, x in enumerate(mnist_sample.x_test[:40])
    ]
    assert counts == [1] * 40


def test_a_digit_broken_in_two_is_not_several():
    """An open 4: its bar beside its angle is no wider together than a digit."""
    page = np.full((300, 300), 235, np.uint8)
    cv2.line(page, (110, 60), (90, 170), 30, 12, cv2.LINE_AA)
    cv2.line(page, (90, 170), (150, 170), 30, 12, cv2.LINE_AA)
    cv2.line(page, (175, 80), (175, 240), 30, 12, cv2.LINE_AA)
    ink = segment.locate_ink(page).ink
    assert digits_beside(ink, (0, 0, ink.shape[1], ink.shape[0])) == 0


def test_a_cut_through_a_loop_costs_more_than_one_through_a_joint():
    """Two digits touch at one place; a cut through a 0 crosses two strokes."""
    loop = propose(line_of(("zero", (60, 80, 300, 230))))  # as wide as the two below
    joined = line_of(("one", (54, 80, 74, 230)), ("one", (286, 80, 306, 230)))
    cv2.line(joined, (64, 225), (296, 225), 30, 12, cv2.LINE_AA)  # joined at the foot only
    joint = propose(joined)
    loop_costs = [c for c in loop.cuts[1:-1] if c]
    joint_costs = [c for c in joint.cuts[1:-1] if c]
    assert loop_costs
    assert joint_costs
    assert min(loop_costs) > min(joint_costs)


def test_only_candidates_cut_out_of_shared_ink_count_as_cut():
    proposal = Proposal(
        units=3,
        candidates=(candidate(0, 1), candidate(1, 2), candidate(2, 3)),
        cuts=(0.0, 0.0, 0.3, 0.0),  # units 1 and 2 share ink; 0 stands apart
    )
    assert [segment.cut_through_ink(proposal, i) for i in range(3)] == [False, True, True]
