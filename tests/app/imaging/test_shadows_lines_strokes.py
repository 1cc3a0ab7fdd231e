"""Real-photo hazards in app.imaging: hard shadows, notebook lines, pens of any width."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from app.imaging import normalize
from app.imaging.errors import NoDigitFound
from app.imaging.lighting import flat_field_ink
from app.imaging.normalize import MIN_INK_CONTRAST, normalize_digit
from app.imaging.prepare import preprocess_image
from app.imaging.strokes import components, remove_lines, stroke_width, wedges
from digit_photos.notebook import notebook_photo
from tests.app.imaging.test_decode_and_normalize import similarity


@pytest.fixture(scope="module")
def digits(mnist_sample) -> np.ndarray:
    return mnist_sample.x_test


def written(
    digit: np.ndarray, size: tuple[int, int] = (640, 480), at: tuple[int, int] = (140, 240)
) -> np.ndarray:
    """float32 reflectance of a white page with ``digit`` in dark ink, 200 px tall."""
    height, width = size[::-1]
    side = 280
    big = cv2.resize(digit, (side, side), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255
    page = np.full((height, width), 0.9, np.float32)
    top, left = at
    page[top : top + side, left : left + side] *= 1 - 0.8 * np.clip(big, 0, 1)
    return page


def half_plane(shape: tuple[int, int], through: tuple[float, float], angle: float) -> np.ndarray:
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    side = np.cos(angle) * (xs - through[0]) + np.sin(angle) * (ys - through[1])
    return (side > 0).astype(np.float32)


def photo(reflectance: np.ndarray, light: np.ndarray | float = 1.0) -> np.ndarray:
    noise = np.random.default_rng(0).normal(0, 2, reflectance.shape)
    return np.clip(reflectance * light * 250 + noise, 0, 255).astype(np.uint8)


def stray_ink(x: np.ndarray, clean: np.ndarray) -> float:
    """Strongest pixel of ``x`` more than a pixel away from where ``clean`` has ink."""
    near = cv2.dilate((clean > 0.05).astype(np.uint8), np.ones((3, 3), np.uint8))
    return float(np.squeeze(x)[near == 0].max(initial=0))


# --- lighting -------------------------------------------------------------------------------


@pytest.mark.parametrize("angle", [0.0, 0.6, 1.4, 2.5])
def test_a_step_in_the_light_is_not_ink(angle: float):
    """Neither the edge nor, with the shadow followed, the corners it makes with the frame."""
    light = 1 - 0.5 * half_plane((300, 400), (200, 150), angle)
    page = photo(np.full((300, 400), 0.9, np.float32), light)
    assert cv2.minMaxLoc(flat_field_ink(page, -1.0, 75, shadow_reach=300))[1] < MIN_INK_CONTRAST


def test_ink_is_as_strong_in_the_shade_as_in_the_sun(digits: np.ndarray):
    page = written(digits[0])
    sun, shade = photo(page), photo(page, 0.45)
    strongest = [np.percentile(flat_field_ink(p, -1.0, 81), 99.5) for p in (sun, shade)]
    assert strongest[1] == pytest.approx(strongest[0], rel=0.1)


@pytest.mark.parametrize("angle", [0.3, 1.2, 2.0, 2.8, 4.0, 5.5])
def test_hard_shadow_across_a_digit_is_background(digits: np.ndarray, angle: float):
    """A shadow with a one-pixel edge through the middle of the digit: neither its edge nor
    the shaded side turns into ink, and the digit comes out as it does in full light."""
    for digit in digits[:10]:
        page = written(digit)
        shadow = cv2.GaussianBlur(half_plane(page.shape, (380, 280), angle), (0, 0), 0.6)
        clean = normalize_digit(photo(page))
        shaded = normalize_digit(photo(page, 1 - 0.55 * shadow))
        assert similarity(shaded, clean) > 0.85
        assert stray_ink(shaded, clean) < 0.35


def test_a_shaded_corner_of_the_page_is_not_ink(digits: np.ndarray):
    """The shade covers a quarter of the frame, its corner just beside the digit."""
    page = written(digits[1])
    corner = half_plane(page.shape, (230, 130), np.pi) * half_plane(
        page.shape, (230, 130), 1.5 * np.pi
    )
    clean = normalize_digit(photo(page))
    shaded = normalize_digit(photo(page, 1 - 0.5 * corner))
    assert similarity(shaded, clean) > 0.9
    assert stray_ink(shaded, clean) < 0.35


def wedge(shape: tuple[int, int], tip: tuple[float, float], half_angle: float) -> np.ndarray:
    """1 inside a wedge opening leftwards from ``tip`` (x, y), 0 elsewhere."""
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    angle = np.abs(np.arctan2(ys - tip[1], tip[0] - xs))
    return ((angle < half_angle) & (xs < tip[0])).astype(np.float32)


def test_a_shadows_corner_pointing_at_the_digit_is_not_ink(digits: np.ndarray):
    """A hard-edged wedge of shade narrowing to a point just beside the digit: what lighting
    leaves of its tip is a filled triangle, which is neither the digit nor a piece of it.

    The wider wedges still beat it now and then (README, Known limits): the previous
    normaliser got 14 of these 30 right, this one 22.
    """
    right = 0
    for half_angle in (0.12, 0.2, 0.3):
        for digit in digits[:10]:
            page = written(digit)
            shade = cv2.GaussianBlur(wedge(page.shape, (225, 280), half_angle), (0, 0), 0.6)
            clean = normalize_digit(photo(page))
            shaded = normalize_digit(photo(page, 1 - 0.5 * shade))
            right += similarity(shaded, clean) > 0.85 and stray_ink(shaded, clean) < 0.35
    assert right >= 20


def test_a_filled_triangle_is_a_wedge_and_a_bold_digit_is_not(digits: np.ndarray):
    triangle = np.zeros((120, 120), np.uint8)
    cv2.fillConvexPoly(triangle, np.array([[5, 10], [115, 55], [5, 100]], np.int32), 1)
    shapes = [triangle]
    for digit in digits[:50]:
        big = cv2.resize(digit, (84, 84), interpolation=cv2.INTER_LINEAR) > 128
        shapes.append(cv2.dilate(big.astype(np.uint8), np.ones((5, 5), np.uint8)))
    found = []
    for shape in shapes:
        _, labels, stats = components(shape)
        found.append(bool(wedges(labels, stats, np.array([int(np.argmax(stats[:, 4]))]))[0]))
    assert found[0]
    assert not any(found[1:])


# --- printed lines --------------------------------------------------------------------------


def ruled(page: np.ndarray, spacing: int, grid: bool, contrast: float = 0.3) -> np.ndarray:
    lined = page.copy()
    lined[spacing // 2 :: spacing, :] *= 1 - contrast
    lined[spacing // 2 + 1 :: spacing, :] *= 1 - contrast / 2
    if grid:
        lined[:, spacing // 3 :: spacing] *= 1 - contrast
    return lined


@pytest.mark.parametrize(("spacing", "grid"), [(70, False), (110, False), (40, True), (65, True)])
def test_ruled_and_squared_lines_are_not_ink(digits: np.ndarray, spacing: int, grid: bool):
    """Lines a third as dark as the ink, crossing the digit: gone, and the digit left whole.

    Not always quite whole: a stroke lying along a line, within a few degrees of it, loses
    the ink it has in common with the line.
    """
    scores, stray = [], []
    for digit in digits[10:20]:
        page = written(digit)
        clean = normalize_digit(photo(page))
        lined = normalize_digit(photo(ruled(page, spacing, grid)))
        scores.append(similarity(lined, clean))
        stray.append(stray_ink(lined, clean))
    assert np.median(scores) > 0.95
    assert np.mean(np.array(scores) > 0.85) >= 0.9
    assert np.median(stray) < 0.1
    assert max(stray) < 0.5


@pytest.mark.parametrize("grid", [False, True])
def test_a_blank_notebook_page_has_no_digit(grid: bool):
    page = ruled(np.full((480, 640), 0.9, np.float32), 45, grid)
    with pytest.raises(NoDigitFound):
        normalize_digit(photo(page))


def test_remove_lines_keeps_strokes_shorter_than_a_line():
    ink = np.zeros((200, 300), np.uint8)
    ink[50, :] = ink[150, :] = 80  # two rules across the frame
    ink[:, 30] = 80
    cv2.line(ink, (120, 60), (160, 140), 220, 6)  # a stroke crossing a rule
    cv2.line(ink, (200, 100), (260, 100), 220, 6)  # a horizontal stroke, shorter than a rule
    cleaned = remove_lines(ink, (240, 160))
    assert cleaned[[50, 150], :].max() == 0
    assert cleaned[:, 30].max() == 0
    assert cleaned[100, 140] >= 200  # the crossing stroke keeps its ink
    assert cleaned[100, 230] == 220  # and so does the short horizontal one


# --- stroke weight --------------------------------------------------------------------------


def mnist_widths(digits: np.ndarray) -> tuple[float, float, float]:
    """The 5th, 95th and 99th percentile stroke widths of MNIST's own digits, px at 28x28."""
    widths = [stroke_width(((d > 127) * 255).astype(np.uint8)) for d in digits[:200]]
    return tuple(float(np.percentile(widths, q)) for q in (5, 95, 99))  # type: ignore[return-value]


def pen(digit: np.ndarray, change: int) -> np.ndarray:
    """A page with ``digit`` 280 px tall, strokes eroded (< 0) or dilated (> 0) by ``change`` px."""
    big = cv2.resize(digit, (392, 392), interpolation=cv2.INTER_CUBIC)
    mask = (big > 127).astype(np.uint8)
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * abs(change) + 1,) * 2)
    if change > 0:
        mask = cv2.dilate(mask, disk)
    elif change < 0:  # a hairline that keeps every stroke: thin, but never below 2 px
        mask = np.maximum(
            cv2.erode(mask, disk), cv2.dilate(_skeleton(mask), np.ones((2, 2), np.uint8))
        )
    page = np.full((560, 560), 230, np.uint8)
    page[84:476, 84:476] -= (mask * 180).astype(np.uint8)
    return page


def _skeleton(mask: np.ndarray) -> np.ndarray:
    from digit_photos.notebook import _thin

    return _thin(mask > 0).astype(np.uint8)


@pytest.mark.parametrize("change", [-40, 30])
def test_hairline_and_marker_come_out_at_mnist_weight(
    digits: np.ndarray, monkeypatch: pytest.MonkeyPatch, change: int
):
    """Measured on the 28x28 the model sees: inside the range of MNIST's own pens (a marker
    as one of MNIST's bold digits), where without the correction they fall outside it."""
    low, high, boldest = mnist_widths(digits)
    measured, untouched = [], []
    for digit in digits[20:40]:
        page = pen(digit, change)
        x = normalize_digit(page)
        measured.append(stroke_width(((x > 0.5) * 255).astype(np.uint8)))
    with monkeypatch.context() as patch:
        patch.setattr(normalize, "MNIST_STROKE", (0.0, np.inf))  # no reweighting
        for digit in digits[20:40]:
            x = normalize_digit(pen(digit, change))
            untouched.append(stroke_width(((x > 0.5) * 255).astype(np.uint8)))
    assert low <= np.median(measured) <= boldest
    if change < 0:
        assert np.median(untouched) < low, "the hairline should have been too thin without"
    else:
        assert np.median(untouched) > high, "the marker should have been too bold without"


def test_mnist_weight_strokes_are_left_alone(digits: np.ndarray, monkeypatch: pytest.MonkeyPatch):
    pages = [pen(d, 0) for d in digits[40:60]]
    with_reweighting = [normalize_digit(p) for p in pages]
    monkeypatch.setattr(normalize, "MNIST_STROKE", (0.0, np.inf))
    without = [normalize_digit(p) for p in pages]
    same = [np.array_equal(a, b) for a, b in zip(with_reweighting, without, strict=True)]
    assert np.mean(same) >= 0.9


# --- end to end -----------------------------------------------------------------------------


@pytest.mark.parametrize("shadow", ["none", "soft", "hard"])
def test_notebook_photos_normalise_back_to_the_digit(digits: np.ndarray, shadow: str):
    """Generated notebook photos (other pens, lines, shadows, perspective) of 40 sample digits."""
    scores = [
        similarity(preprocess_image(notebook_photo(d, shadow, seed=900 + i)), d / 255)
        for i, d in enumerate(digits[100:140])
    ]
    assert np.median(scores) > 0.7
    assert np.mean(np.array(scores) > 0.5) >= 0.9


def smiley(eyes: int, *, dust: bool = False) -> np.ndarray:
    """A drawn face on white, as the page's canvas exports it: a ring, a mouth, round eyes."""
    face = np.full((280, 280), 255, np.uint8)
    cv2.circle(face, (140, 140), 105, 0, 20, cv2.LINE_AA)
    cv2.ellipse(face, (140, 140), (60, 60), 0, 20, 160, 0, 20, cv2.LINE_AA)
    for x in (100, 180):
        cv2.circle(face, (x, 105), eyes, 0, -1, cv2.LINE_AA)
    if dust:  # specks and a short hair inside the ring, far below the pen's width
        for x, y in ((120, 150), (170, 160), (150, 190)):
            cv2.circle(face, (x, y), 2, 0, -1)
        cv2.line(face, (90, 170), (130, 172), 0, 2)
    return face


def test_pen_dots_inside_a_drawing_are_kept():
    """A smiley's eyes are a tenth of the ring's ink: too small for a broken-off piece, but
    round and pen-wide, so they stay (without them the face reads as a 0)."""
    seen = np.squeeze(normalize_digit(smiley(eyes=10)))
    blank = np.squeeze(normalize_digit(smiley(eyes=0)))
    eyes = seen[8:13, 9:19]  # where the eyes land in the 28x28 frame
    assert eyes.sum() > 3
    assert eyes.sum() > 5 * blank[8:13, 9:19].sum() + 1


def test_dust_and_hairs_inside_a_drawing_are_not_dots():
    clean = np.squeeze(normalize_digit(smiley(eyes=0)))
    dusty = np.squeeze(normalize_digit(smiley(eyes=0, dust=True)))
    assert np.abs(dusty - clean).max() < 0.25
