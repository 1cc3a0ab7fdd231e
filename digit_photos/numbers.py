"""Photos of whole handwritten numbers, composed from real MNIST digits, deterministically.

``number_photo(digits, labels, spacing, paper, seed)`` writes the given 28x28 MNIST digits
(white on black) side by side as one number on a single, roughly horizontal line (tilt at most
3°): each digit scaled up to 60-120 px (±15 % per digit), lifted or dropped on the baseline by up
to 8 % of the height, slanted a little, its strokes a little thicker or thinner; the digits
``"separated"`` (a gap of 0.17-0.6 digit heights between their ink boxes), ``"touching"`` (slid
together until their strokes meet, then by 1-3 px more, so they merge into one blob: as long as
the ink boxes then overlap by at most 0.2 heights, which leaves about one pair in eight just
apart, a round digit after a "7" for one) or ``"overlapping"`` (ink boxes overlapping by
0.12-0.25 heights, whether or not the strokes cross; less beside a narrow "1"). The ink is
then photographed on ``"plain"`` paper (as ``digit_photos``' paper photos: dark ink on unevenly
lit, noisy paper) or on notebook paper (``"notebook"``: ruled or squared, lit unevenly, in slight
perspective; ``"notebook_shadow"``: the same with a soft- or hard-edged shadow across the page),
drawn by ``digit_photos.notebook``'s page and camera, and encoded as a JPEG (quality 75-95) or,
one time in five, a PNG, 300-1200 px wide.

The layout (digit sizes, gaps, tilt, frame size, the number's place in it) depends on the seed
only, not on the paper: the same digits and seed on ``"plain"`` and ``"notebook"`` paper give the
same number in the same frame, so the two compare. Each photo comes with each digit's ink box in
the encoded image's pixels. The same arguments always give the same bytes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from digit_photos.notebook import (
    _PAGE_MARGIN,
    TUNED,
    NotebookStyle,
    _choose,
    _colour,
    _paper,
    _uniform,
    _view,
    camera,
)

SPACINGS: tuple[str, ...] = ("separated", "touching", "overlapping")
PAPERS: tuple[str, ...] = ("plain", "notebook", "notebook_shadow")

# Gap between consecutive ink boxes, in digit heights (negative: the boxes overlap).
SEPARATED_GAP = (0.17, 0.6)  # >= 0.1 even after notebook paper's camera turns the page
# Strokes that only meet deeper than this (a "0" under a 7's bar) are left just apart.
TOUCHING_MAX_OVERLAP = 0.2
OVERLAPPING_GAP = (-0.25, -0.12)
# Two boxes never overlap by more than this share of the narrower one, so that their left
# edges (and centres) stay in the order of the digits even around a narrow "1".
MAX_OVERLAP_OF_NARROWER = 0.6
DIGIT_HEIGHT = (60.0, 120.0)  # px, the nominal height of a digit (MNIST's 20 px box)
WIDTH_PX = (300, 1200)
MAX_TILT_DEG = 1.5  # of the line of ink; notebook paper's camera adds up to as much again
JPEG_QUALITY = (75, 95)
PNG_SHARE = 0.2

# Notebook paper: TUNED's pages, pens and light, seen nearly square on, so the line stays level.
NUMBER_NOTEBOOK: NotebookStyle = dataclasses.replace(
    TUNED, rotation_deg=MAX_TILT_DEG, perspective=0.02
)
_INK_COLOURS = TUNED.ink_colours  # blue ballpoint, black

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class NumberPhoto:
    """An encoded photo of a number, what it says, and where each digit's ink is.

    ``boxes[i]`` is ``(x0, y0, x1, y1)`` of digit ``text[i]``'s ink (its coverage above one
    half) in the encoded image's pixels, ``x1`` and ``y1`` exclusive (width = x1 - x0).
    """

    data: bytes
    text: str
    boxes: tuple[Box, ...]
    spacing: str
    paper: str

    @property
    def format(self) -> str:
        return "png" if self.data[:4] == b"\x89PNG" else "jpeg"


def number_digits(
    rng: np.random.Generator, images: np.ndarray, labels: np.ndarray, length: int
) -> tuple[np.ndarray, list[int]]:
    """``length`` digits drawn at random (without replacement) from ``images`` and their labels."""
    index = rng.choice(len(images), size=length, replace=False)
    return images[index], [int(label) for label in np.asarray(labels)[index]]


def number_photo(
    digits: np.ndarray, labels: Sequence[int], spacing: str, paper: str, seed: int
) -> NumberPhoto:
    """A photo of ``digits`` (n x 28 x 28 uint8, white on black) written as one number."""
    if spacing not in SPACINGS:
        raise ValueError(f"unknown spacing {spacing!r}; expected one of {SPACINGS}")
    if paper not in PAPERS:
        raise ValueError(f"unknown paper {paper!r}; expected one of {PAPERS}")
    digits = np.asarray(digits)
    if digits.ndim != 3 or digits.shape[1:] != (28, 28) or len(digits) != len(labels):
        raise ValueError(f"need n x 28 x 28 digits and n labels, got {digits.shape}, {len(labels)}")
    if len(digits) == 0:
        raise ValueError("a number needs at least one digit")
    text = "".join(str(int(label)) for label in labels)
    if len(text) != len(labels):
        raise ValueError(f"labels must be single digits, got {list(labels)}")

    layout_rng = np.random.default_rng([seed, 0])
    line, margins = _compose(digits.astype(np.float32) / 255, spacing, layout_rng)
    frame = _frame(line, margins, layout_rng)
    photo_rng = np.random.default_rng([seed, 1 + PAPERS.index(paper)])
    if paper == "plain":
        rgb, boxes = _plain_photo(line, frame, photo_rng)
    else:
        shadow = str(photo_rng.choice(["soft", "hard"])) if paper == "notebook_shadow" else "none"
        rgb, boxes = _notebook_photo(line, frame, shadow, photo_rng)
    return NumberPhoto(_encode(rgb, photo_rng), text, boxes, spacing, paper)


# --- the line of ink ------------------------------------------------------------------------


@dataclass
class _Line:
    """Ink coverage of the whole number, and each digit's ink pixels (above one half) in it."""

    coverage: np.ndarray  # float32 (h, w) in [0, 1], cropped to the ink with no margin
    points: list[np.ndarray]  # per digit, (k, 2) float32 x, y of its ink pixels' centres
    height: float  # nominal digit height, px


@dataclass(frozen=True)
class _DigitStyle:
    """One digit's random choices, in units of the nominal height (so they survive a rescale)."""

    size: float  # x nominal height
    baseline: float  # x nominal height, + is down
    slant: float  # dx / dy
    stroke: float  # dilation radius in MNIST px, - erodes
    gap: float  # x nominal height, before this digit; for touching, the overlap in px
    ink_overlap: int  # px of stroke overlap for "touching"


def _compose(
    digits: np.ndarray, spacing: str, rng: np.random.Generator
) -> tuple[_Line, tuple[float, float]]:
    """The line of ink, and the frame's margins left and right of it (x nominal height)."""
    height = _uniform(rng, DIGIT_HEIGHT)
    slant = rng.uniform(-0.15, 0.15)  # the writer's
    styles = []
    for _ in digits:
        if spacing == "separated":
            gap = _uniform(rng, SEPARATED_GAP)
        elif spacing == "overlapping":
            gap = _uniform(rng, OVERLAPPING_GAP)
        else:
            gap = 0.0
        styles.append(
            _DigitStyle(
                size=rng.uniform(0.85, 1.15),
                baseline=rng.uniform(-0.08, 0.08),
                slant=slant + rng.uniform(-0.06, 0.06),
                stroke=rng.uniform(-0.4, 0.3),
                gap=gap,
                ink_overlap=int(rng.integers(1, 4)),
            )
        )
    tilt = np.tan(np.deg2rad(rng.uniform(-MAX_TILT_DEG, MAX_TILT_DEG)))
    margin = rng.uniform(0.3, 1.5, size=2)  # frame margins either side, x height
    # The whole frame is at most 1200 px wide: shrink the writing until the number fits.
    for _ in range(8):
        line = _lay_out(digits, styles, spacing, height, tilt)
        room = WIDTH_PX[1] - 2 * 0.3 * height
        if line.coverage.shape[1] <= room:
            break
        height *= 0.97 * room / line.coverage.shape[1]
    return line, (float(margin[0]), float(margin[1]))


def _digit_ink(digit: np.ndarray, style: _DigitStyle, height: float) -> np.ndarray:
    """float32 coverage of one digit, upscaled, slanted, its strokes reweighted, cropped."""
    scale = height * style.size / 20  # MNIST fits a digit's longer side in 20 px
    side = max(8, round(28 * scale))
    big = cv2.resize(digit, (side, side), interpolation=cv2.INTER_CUBIC)
    shape = np.clip((big - 0.5) * 4 + 0.5, 0, 1)  # crisp edges at the half-ink contour
    pad = round(abs(style.slant) * side / 2 + abs(style.stroke) * scale + 4)
    shape = np.pad(shape, pad)
    n = shape.shape[0]
    shear = np.array([[1, style.slant, -style.slant * n / 2], [0, 1, 0]], np.float32)
    shape = cv2.warpAffine(shape, shear, (n, n), flags=cv2.INTER_LINEAR)
    radius = round(abs(style.stroke) * scale)
    if radius >= 1:
        disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1,) * 2)
        morphed = (cv2.dilate if style.stroke > 0 else cv2.erode)(shape, disk)
        if (morphed > 0.5).sum() >= 0.3 * (shape > 0.5).sum():  # never erase a thin digit
            shape = morphed
    ys, xs = np.nonzero(shape > 0.5)
    if not len(ys):  # an empty image: keep a speck so the digit has a place
        shape[n // 2, n // 2] = 1.0
        ys, xs = np.array([n // 2]), np.array([n // 2])
    return shape[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def _lay_out(
    digits: np.ndarray, styles: list[_DigitStyle], spacing: str, height: float, tilt: float
) -> _Line:
    inks = [_digit_ink(d, s, height) for d, s in zip(digits, styles, strict=True)]
    # Each ink's bottom sits on the baseline (y = 0), moved by the jitter: its top row in y.
    tops = [round(s.baseline * height) - ink.shape[0] for ink, s in zip(inks, styles, strict=True)]
    y_min = min(tops)
    rows = max(t + ink.shape[0] for t, ink in zip(tops, inks, strict=True)) - y_min
    # Rightmost ink column per row of everything placed so far (-inf: none yet).
    right = np.full(rows, -np.inf)
    lefts: list[int] = []
    prev: tuple[int, int] | None = None  # previous digit's left, right (exclusive)
    for ink, top, style in zip(inks, tops, styles, strict=True):
        w = ink.shape[1]
        if prev is None:
            left = 0
        else:
            prev_w = prev[1] - prev[0]
            floor = prev[1] - round(MAX_OVERLAP_OF_NARROWER * min(w, prev_w))
            if spacing == "touching":
                # Slide the digit left until its strokes meet what is there, then by 1-3 px more.
                mask = ink > 0.5
                has = mask.any(axis=1)
                first = np.argmax(mask, axis=1)
                rows_here = np.arange(top - y_min, top - y_min + ink.shape[0])
                contact = right[rows_here][has] - first[has] + 1
                contact = contact[np.isfinite(contact)]
                left = int(contact.max()) - style.ink_overlap if len(contact) else prev[1]
                most = round(TOUCHING_MAX_OVERLAP * height)
                left = min(max(left, prev[1] - most), prev[1])
            else:
                left = prev[1] + round(style.gap * height)
            left = max(left, floor, prev[0] + 1)
        lefts.append(left)
        mask = ink > 0.5
        has = mask.any(axis=1)
        last = ink.shape[1] - 1 - np.argmax(mask[:, ::-1], axis=1)
        span = slice(top - y_min, top - y_min + ink.shape[0])
        right[span] = np.where(has, np.maximum(right[span], left + last), right[span])
        prev = (left, left + w)
    width = max(left + ink.shape[1] for left, ink in zip(lefts, inks, strict=True))
    # The line rises or falls by ``tilt`` per px: a vertical shear, which keeps every x.
    lift = abs(tilt) * width
    canvas_h = rows + int(np.ceil(lift)) + 2
    coverage = np.zeros((canvas_h, width), np.float32)
    points = []
    for ink, top, left in zip(inks, tops, lefts, strict=True):
        y0 = top - y_min
        h, w = ink.shape
        region = coverage[y0 : y0 + h, left : left + w]
        np.maximum(region, ink, out=region)
        ys, xs = np.nonzero(ink > 0.5)
        points.append(np.stack([xs + left, ys + y0], axis=1).astype(np.float32))
    offset = lift if tilt < 0 else 0.0
    shear = np.array([[1, 0, 0], [tilt, 1, offset]], np.float32)
    coverage = cv2.warpAffine(coverage, shear, (width, canvas_h), flags=cv2.INTER_LINEAR)
    points = [np.stack([p[:, 0], p[:, 1] + tilt * p[:, 0] + offset], axis=1) for p in points]
    return _Line(coverage, points, height)


# --- the frame ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Frame:
    width: int
    height: int
    left: int  # where the line's coverage goes in the frame
    top: int


def _frame(line: _Line, margins: tuple[float, float], rng: np.random.Generator) -> _Frame:
    h, w = line.coverage.shape
    digit_h = line.height
    width = round(w + (margins[0] + margins[1]) * digit_h)
    width = int(np.clip(width, WIDTH_PX[0], WIDTH_PX[1]))
    width = max(width, w + 2)
    height = max(
        round(h + 2 * rng.uniform(0.4, 1.5) * digit_h), round(width * rng.uniform(0.25, 0.75))
    )
    height = max(height, 64)
    spare_x = width - w
    left = round(spare_x * margins[0] / (margins[0] + margins[1]))
    edge = min(round(0.25 * digit_h), (height - h) // 2)  # keep the ink off the frame's edge
    top = int(rng.integers(edge, height - h - edge + 1))
    return _Frame(width, height, min(max(left, 0), spare_x), top)


def _box(points: np.ndarray, width: int, height: int) -> Box:
    """Bounding box of pixel centres ``points``, exclusive on the right and bottom, clipped."""
    x0, y0 = np.floor(points.min(axis=0) + 0.5).astype(int)
    x1, y1 = np.floor(points.max(axis=0) + 0.5).astype(int) + 1
    return (
        int(np.clip(x0, 0, width - 1)),
        int(np.clip(y0, 0, height - 1)),
        int(np.clip(x1, 1, width)),
        int(np.clip(y1, 1, height)),
    )


# --- plain paper ----------------------------------------------------------------------------


def _ink_density(coverage: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Ballpoint ink is uneven: its density varies slowly along the strokes."""
    h, w = coverage.shape
    cells = (max(2, round(4 * w / max(h, 1))), 4)
    noise = rng.standard_normal(cells[::-1]).astype(np.float32)
    density = 1 - 0.2 * np.abs(cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC))
    return coverage * np.clip(density, 0.6, 1) * rng.uniform(0.85, 1.0)


def _plain_photo(
    line: _Line, frame: _Frame, rng: np.random.Generator
) -> tuple[np.ndarray, tuple[Box, ...]]:
    """RGB uint8: paper lit by a gradient, dark blue or black ink, sensor noise, maybe defocus."""
    width, height = frame.width, frame.height
    coverage = np.zeros((height, width), np.float32)
    h, w = line.coverage.shape
    coverage[frame.top : frame.top + h, frame.left : frame.left + w] = _ink_density(
        line.coverage, rng
    )
    blur = rng.uniform(0.5, 0.25 * line.height / 20 + 0.5) if rng.random() < 0.5 else 0.0
    ink_cover: np.ndarray = cv2.GaussianBlur(coverage, (0, 0), blur) if blur else coverage
    angle = rng.uniform(0, 2 * np.pi)
    xs = np.linspace(0, np.cos(angle), width, dtype=np.float32)
    ys = np.linspace(0, np.sin(angle), height, dtype=np.float32)
    ramp = xs[None, :] + ys[:, None]
    paper = rng.uniform(170, 235) - rng.uniform(15, 45) * (ramp - ramp.min())
    noise = rng.standard_normal((height // 2 + 1, width // 2 + 1), dtype=np.float32)
    paper += cv2.resize(noise, (width, height)) * rng.uniform(3, 9)
    tint = np.array([1.0, 0.97, 0.9]) * rng.uniform(0.95, 1.05, size=3)
    ink = _colour(rng, _INK_COLOURS) * rng.uniform(0.6, 1.2)  # reflectance of the ink
    channels = [
        cv2.convertScaleAbs(paper * float(t) * (1 - ink_cover * (1 - min(float(k), 0.9))))
        for t, k in zip(tint, ink, strict=True)
    ]
    offset = np.array([frame.left, frame.top], np.float32)
    boxes = tuple(_box(p + offset, width, height) for p in line.points)
    return cv2.merge(channels), boxes


# --- notebook paper -------------------------------------------------------------------------


def _notebook_photo(
    line: _Line, frame: _Frame, shadow: str, rng: np.random.Generator
) -> tuple[np.ndarray, tuple[Box, ...]]:
    """RGB uint8 of the line written on a notebook page, seen by ``digit_photos.notebook``'s camera."""
    style = NUMBER_NOTEBOOK
    width, height = frame.width, frame.height
    scale = max(width, height) / 1000
    homography = _view(rng, width, height, style)  # frame -> page
    page_w, page_h = round(width * _PAGE_MARGIN), round(height * _PAGE_MARGIN)
    h, w = line.coverage.shape
    centre_out = (frame.left + w / 2, frame.top + h / 2)
    centre = cv2.perspectiveTransform(np.array([[centre_out]], np.float64), homography)[0, 0]
    reflectance = _paper(
        rng, _choose(rng, style.papers), (page_h, page_w), line.height, centre, style
    )
    # The line goes onto the page about the centre the frame's placement maps to.
    left, top = round(centre[0] - w / 2), round(centre[1] - h / 2)
    colour = _colour(rng, style.ink_colours)
    ink = _ink_density(line.coverage, rng)
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + h, page_h), min(left + w, page_w)
    patch = ink[y0 - top : y1 - top, x0 - left : x1 - left, None]
    reflectance[y0:y1, x0:x1] *= 1 - patch * (1 - colour)

    photo = camera(
        reflectance, homography, (width, height), shadow, centre_out, line.height, scale, style, rng
    )
    to_frame = np.linalg.inv(homography)
    offset = np.array([left, top], np.float32)
    boxes = tuple(
        _box(
            cv2.perspectiveTransform((p + offset)[None].astype(np.float64), to_frame)[0],
            width,
            height,
        )
        for p in line.points
    )
    return np.clip(np.rint(photo), 0, 255).astype(np.uint8), boxes


def _encode(rgb: np.ndarray, rng: np.random.Generator) -> bytes:
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if rng.random() < PNG_SHARE:
        options = [cv2.IMWRITE_PNG_COMPRESSION, 1]
        return cv2.imencode(".png", bgr, options)[1].tobytes()
    quality = int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1))
    return cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()
