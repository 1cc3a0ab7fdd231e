"""A greyscale picture -> the 28x28 float32 digit the model was trained on.

MNIST digits were made by scaling each handwritten digit so that its longer side is 20 px
(anti-aliased, aspect ratio kept) and pasting it into a 28x28 frame with its centre of mass
at the centre, white ink on black. A photo of a digit only classifies like MNIST once it has
been brought into that same form, which is what ``normalize_digit`` does: find the ink over
the whole frame (``locate_ink``: polarity, lighting, printed lines), choose the digit's
strokes (``digit_box``), cut them at more detail (``cut_strokes``) and frame them
(``fit_mnist_frame``). /read (``app.imaging.segment``) reuses the same steps for each digit
of a number.

Every function here is pure (arrays in, arrays out), so the service may call them from
worker threads. Failures are NoDigitFound (``app.imaging.errors``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from app.imaging import lighting, strokes
from app.imaging.errors import NoDigitFound

MNIST_SIZE = 28
MNIST_BOX = 20  # MNIST fits each digit in a 20x20 box, leaving a 4 px margin
MNIST_CENTRE = 14.0  # where MNIST puts the centre of mass (row, col), measured on the sample

# Sizes are of the longer side, reached by whole-factor shrinking (so within 1.5x of these).
# The digit is cut from an image about WORK_SIZE long: one a tenth of the frame high is then
# still ~50 px, plenty for a 20 px result...
WORK_SIZE = 512
# ...but found on a copy about FIND_SIZE long: locating it needs far less detail than cutting.
FIND_SIZE = 256
# The page's lighting is fitted on a thumbnail about this long: it varies slowly across a page.
THUMB_SIZE = 32
# Grey levels above the local background that count as ink; sensor noise and JPEG ringing on
# a blank page stay well below it once lightly blurred.
MIN_INK_CONTRAST = 40
# The digit's box must be at least this fraction of the frame's longer side (and 4 px):
# smaller blobs are specks of dust or noise, not something a person meant to photograph.
MIN_DIGIT_FRACTION = 1 / 25
MIN_DIGIT_PX = 4
# Pieces of a broken stroke are kept if they are this large relative to the main stroke...
MIN_PIECE_AREA = 0.1
# ...and lie within this fraction of the main stroke's size from its box.
MAX_PIECE_GAP = 0.5
# Ink levels from RAMP_FLOOR x the ink threshold up to the STROKE_QUANTILE of the strokes are
# ramped to 0..255: anti-aliased edges keep their grey and the cores saturate, as in MNIST.
# A floor this low keeps MNIST's own faint edge pixels, and with them its box.
RAMP_FLOOR = 0.1
STROKE_QUANTILE = 0.9
# The darker extreme is the ink when it stands out this many times further than the lighter
# one; within a factor of POLARITY_MARGIN**6 either way, thin detail decides (_polarity).
POLARITY_MARGIN = 1.5
# Locating the digit, the lighting kernel is this fraction of the frame's shorter side: wider
# than any stroke of a digit that fits in the frame.
FIND_KERNEL = 1 / 4
# Locating the digit, a shadow's level is flooded this many kernels from where it is kept.
FIND_REACH = 1.0
# A shadow's level is flooded only into areas this many stroke widths wide (app.imaging.lighting).
FLOOD_WIDER = 1.5
# Printed lines are straight runs at least this fraction of the frame long: longer than any
# straight stroke of a digit that fits in the frame, shorter than a rule across the page.
LINE_RUN = 0.8
# ...looked for on a copy this many times smaller each way (app.imaging.strokes.remove_lines).
FIND_LINE_POOL = 2
# The strokes are cut from a region this many digit-sizes beyond the digit's box on each side,
# scaled so the digit is about CUT_SIZE px long: enough detail for a 20 px result, little
# work, and enough page around the digit to tell its strokes from the lines crossing it...
REGION_MARGIN = 0.75
CUT_SIZE = 64
# ...where a printed line is any straight run longer than the digit itself...
REGION_LINE_RUN = 1.3
# ...and no stroke is wider than this fraction of the digit's longer side.
MAX_STROKE = 0.6
# The lighting kernel is this many of the digit's measured stroke widths.
STROKE_KERNEL = 3.0
# At most this many of the largest ink components are judged as digit candidates; a component
# that is not stroke-like (or lies outside the digit's box) counts this much of its size.
MAX_CANDIDATES = 12
NOT_STROKE_WEIGHT = 0.05
# A candidate's ink counts by its area times its mean strength to this power (_digit_parts).
INK_POWER = 2.0
# Ink is at least this fraction as strong as the strongest strokes (_digit_parts).
INK_FRACTION = 0.5
# MNIST's stroke width as a fraction of the digit's longer side (app.imaging.strokes.stroke_width at
# the cut's scale): its pens span about (low, high); strokes outside that band are brought
# to the (low, high) weight of MNIST's pens just inside it, so a hairline or a marker comes
# out as a thin or bold MNIST digit, and MNIST's own digits are left as they are.
MNIST_STROKE = (0.075, 0.25)
MNIST_STROKE_TARGET = (0.125, 0.18)
# Below this many pixels the width of a stroke cannot be measured well enough to change it.
MIN_REWEIGHT_PX = 24
_NORMAL_CHOLESKY = cv2.DECOMP_NORMAL | cv2.DECOMP_CHOLESKY


def normalize_digit(gray: np.ndarray) -> np.ndarray:
    """Return a (28, 28) float32 image in [0, 1]: the digit white on black, MNIST-style.

    ``gray`` is any 2-D uint8 picture of one digit, light on dark or dark on light, evenly lit
    or not. An input that already is an MNIST digit is returned as ``gray / 255``, unchanged.
    Raises NoDigitFound when there is no ink-like contrast or only specks of it.
    """
    if gray.ndim != 2 or gray.dtype != np.uint8 or gray.size == 0:
        raise ValueError(f"expected a non-empty 2-D uint8 array, got {gray.dtype} {gray.shape}")
    mnist = already_mnist(gray)
    if mnist is not None:
        return mnist
    return normalize_located(locate_ink(gray))


def squash_to_mnist(gray: np.ndarray) -> np.ndarray:
    """Squash to 28x28 and scale to [0, 1], nothing else: for callers who send MNIST-format
    images (``?preprocess=none``). Nothing is inverted, cropped or centred, so a photo comes
    out as the model would see it without normalisation."""
    if gray.shape != (MNIST_SIZE, MNIST_SIZE):
        gray = cv2.resize(gray, (MNIST_SIZE, MNIST_SIZE), interpolation=cv2.INTER_AREA)
    return gray / np.float32(255)


def already_mnist(gray: np.ndarray) -> np.ndarray | None:
    """``gray / 255`` when the general path would leave ``gray`` where it is, else None.

    That is a 28x28 image on a clean black background whose ink box's longer side is already
    20 px and whose centre of mass is within half a pixel of the centre, exactly what MNIST
    itself contains. Returning it untouched reproduces the offline test accuracy exactly.
    """
    if gray.shape != (MNIST_SIZE, MNIST_SIZE) or cv2.countNonZero(gray) > gray.size // 2:
        return None
    _, _, width, height = cv2.boundingRect(gray)
    if max(width, height) != MNIST_BOX or cv2.minMaxLoc(gray)[1] < 128:
        return None
    row, col = _centre_of_mass(gray)
    if _shift_to_centre(row) != 0 or _shift_to_centre(col) != 0:
        return None
    return gray / np.float32(255)


def _shrink(gray: np.ndarray, longest: int) -> np.ndarray:
    """Shrink by the whole factor that brings the longer side closest to ``longest``.

    Whole factors put OpenCV's area filter on its fast path, many times faster than a
    fractional factor for the same box average.
    """
    factor = min(round(max(gray.shape) / longest), min(gray.shape))  # keep at least 1 px
    if factor <= 1:
        return gray
    return cv2.resize(gray, None, fx=1 / factor, fy=1 / factor, interpolation=cv2.INTER_AREA)


@dataclass(frozen=True, slots=True)
class Located:
    """A picture's ink, found over the whole frame: what both /predict and /read start from.

    ``work`` is the picture at cutting resolution, ``find`` a smaller copy, ``ink`` the ink
    map on ``find`` (0..255, lighting and printed lines removed), ``polarity`` -1 for dark
    ink on a light page.
    """

    work: np.ndarray
    find: np.ndarray
    ink: np.ndarray
    polarity: float


def locate_ink(gray: np.ndarray, *, vertical_line_run: float = LINE_RUN) -> Located:
    """The ink of any 2-D uint8 picture, on a copy small enough to search cheaply.

    Locating needs little resolution and is the costly part (lighting and lines over the
    whole frame); the strokes are cut later (``cut_strokes``) at more detail, but only around
    a digit. No stroke of a digit that fits in the frame is wider than a quarter of it, nor
    any straight stretch longer than LINE_RUN of it; a row of digits may fill the frame's
    height, so /read asks for vertical lines to run further (``vertical_line_run``).
    """
    work = _shrink(gray, WORK_SIZE)
    find = _shrink(work, FIND_SIZE)
    if find is work and max(work.shape) >= 100:
        find = cv2.GaussianBlur(work, (3, 3), 0)  # sensor noise; a shrunk copy is averaged already
    polarity = _polarity(find)
    kernel = lighting.odd(FIND_KERNEL * min(find.shape))
    ink = lighting.flat_field_ink(
        find, polarity, kernel, shadow_reach=round(FIND_REACH * kernel), stroke=3
    )
    height, width = find.shape
    ink = strokes.remove_lines(
        ink, (round(LINE_RUN * width), round(vertical_line_run * height)), pool=FIND_LINE_POOL
    )
    return Located(work, find, ink, polarity)


@dataclass(frozen=True, slots=True)
class LitRegion:
    """Ink lit and cleared of lines around a digit (or a row of them), at cutting detail.

    ``ink`` covers ``located.find``'s columns and rows from (``left``, ``top``) on, each
    ``find`` pixel ``scale`` of its pixels wide: ``box_of`` maps boxes between the two.
    """

    ink: np.ndarray
    left: float
    top: float
    scale_x: float
    scale_y: float

    def box_of(self, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        x0, y0, x1, y1 = box
        return (
            max(int((x0 - self.left) * self.scale_x), 0),
            max(int((y0 - self.top) * self.scale_y), 0),
            int(np.ceil((x1 - self.left) * self.scale_x)),
            int(np.ceil((y1 - self.top) * self.scale_y)),
        )


def light_region(
    located: Located,
    box: tuple[int, int, int, int],
    stroke_px: float,
    digit_size: float | None = None,
) -> LitRegion:
    """The ink around ``box`` (x0, y0, x1, y1 on ``located.find``), at cutting detail.

    A region around the box is taken from ``located.work``, at a scale where a digit is about
    CUT_SIZE long, lit with a kernel a few of its strokes wide (every stroke fits in it,
    little of a shadow's corner does) and cleared of lines at the digit's own scale. The
    digit is the box itself unless ``digit_size`` (its longer side on ``find``) says
    otherwise: /read lights a whole row of digits at once.
    """
    work, height, width = located.work, *located.find.shape
    x0, y0, x1, y1 = box
    scale_y, scale_x = work.shape[0] / height, work.shape[1] / width
    top, bottom = int(y0 * scale_y), min(work.shape[0], int(np.ceil(y1 * scale_y)))
    left, right = int(x0 * scale_x), min(work.shape[1], int(np.ceil(x1 * scale_x)))
    size = max(bottom - top, right - left, 1) if digit_size is None else digit_size * scale_y
    reach = round(REGION_MARGIN * size)
    r_top, r_left = max(top - reach, 0), max(left - reach, 0)
    r_bottom, r_right = min(bottom + reach, work.shape[0]), min(right + reach, work.shape[1])
    region = work[r_top:r_bottom, r_left:r_right]
    scale = min(1.0, CUT_SIZE / max(size, 1))
    if scale < 1:
        target = (max(1, round(region.shape[1] * scale)), max(1, round(region.shape[0] * scale)))
        region = cv2.resize(region, target, interpolation=cv2.INTER_AREA)
    digit_px = size * scale
    stroke_px *= scale * scale_x
    kernel = lighting.odd(min(MAX_STROKE * digit_px, max(STROKE_KERNEL * stroke_px, 3)))
    ink = lighting.flat_field_ink(
        region,
        located.polarity,
        kernel,
        shadow_reach=3 * kernel,
        stroke=round(FLOOD_WIDER * stroke_px),
    )
    run = round(REGION_LINE_RUN * digit_px)
    ink = strokes.remove_lines(ink, (run, run))
    return LitRegion(
        ink,
        left=r_left / scale_x,
        top=r_top / scale_y,
        scale_x=region.shape[1] / ((r_right - r_left) / scale_x),
        scale_y=region.shape[0] / ((r_bottom - r_top) / scale_y),
    )


def strokes_in(
    lit: LitRegion, box: tuple[int, int, int, int], only: np.ndarray | None = None
) -> np.ndarray:
    """The digit's strokes in ``box`` (on ``find``), from ``lit``; with ``only`` (a 0/255
    mask on ``find``) just that ink: /read cuts one digit of a row without its neighbours."""
    ink = lit.ink
    x0, y0, x1, y1 = lit.box_of(box)
    if only is not None:
        # Only the box's own neighbourhood is looked at: ``only`` holds nothing beyond it.
        f_x0, f_y0 = max(box[0] - 1, 0, int(lit.left)), max(box[1] - 1, 0, int(lit.top))
        f_x1, f_y1 = min(box[2] + 1, only.shape[1]), min(box[3] + 1, only.shape[0])
        c_x0, c_y0, c_x1, c_y1 = lit.box_of((f_x0, f_y0, f_x1, f_y1))
        c_x1, c_y1 = min(c_x1, ink.shape[1]), min(c_y1, ink.shape[0])
        if c_x1 <= c_x0 or c_y1 <= c_y0:
            raise NoDigitFound("The ink is too faint to make out a digit.")
        keep = cv2.dilate(only[f_y0:f_y1, f_x0:f_x1], np.ones((3, 3), np.uint8))
        keep = cv2.resize(keep, (c_x1 - c_x0, c_y1 - c_y0), interpolation=cv2.INTER_LINEAR)
        ink = cv2.min(ink[c_y0:c_y1, c_x0:c_x1], keep)
        x0, y0, x1, y1 = x0 - c_x0, y0 - c_y0, x1 - c_x0, y1 - c_y0
    cut = (max(x0, 0), max(y0, 0), min(x1, ink.shape[1]), min(y1, ink.shape[0]))
    # Within ``only`` everything is this digit's ink already, found against the whole row:
    # Otsu on a crop that is mostly ink would split a pen's firm strokes from its light ones.
    return _strokes(ink, cut, None if only is None else MIN_INK_CONTRAST / 2)


def cut_strokes(located: Located, box: tuple[int, int, int, int], stroke_px: float) -> np.ndarray:
    """The strokes of the digit in ``box`` (on ``find``), cut at detail (``light_region``)."""
    return strokes_in(light_region(located, box, stroke_px), box)


def normalize_located(located: Located) -> np.ndarray:
    """The (28, 28) MNIST-style input for the one digit in ``located``: the most ink that is
    strokes, plus its pieces, cut at detail and framed as MNIST frames digits."""
    return frame_located(located)[0]


def frame_located(
    located: Located, parts: InkParts | None = None
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """``normalize_located``'s input, and the digit's box on ``located.find``; ``parts`` is
    ``ink_parts(located.ink)`` when the caller needs it too (/predict's digit count)."""
    box, stroke_px = digit_box(located.ink, parts)
    return fit_mnist_frame(cut_strokes(located, box, stroke_px)), box


@dataclass(frozen=True, slots=True)
class InkParts:
    """The whole frame's ink (``ink_mask``) as 8-connected components (``strokes.components``).

    Choosing the digit and counting the digits beside it both start from these, so they are
    found once per upload."""

    threshold: float
    count: int
    labels: np.ndarray
    stats: np.ndarray


def ink_parts(ink: np.ndarray) -> InkParts:
    threshold, mask = ink_mask(ink, whole_frame=True)
    return InkParts(threshold, *strokes.components(mask))


def _polarity(find: np.ndarray) -> float:
    """-1 for dark ink on a light page, +1 for light ink on a dark one.

    Usually the ink is whichever extreme stands out further from the page's smooth lighting.
    A shadow makes that ambiguous: the lit part of a half-shaded page stands out from the
    shaded part about as far as the ink does. Then the thin features decide: ink is a pen's
    width, so whichever of dark-thin (a black-hat) and light-thin (a top-hat) detail holds
    more contrast, at a scale near a stroke's, is the ink; a lit or shaded area is neither.
    """
    page = cv2.resize(_fit_page(_shrink(find, THUMB_SIZE)), find.shape[::-1])
    darkest, brightest = cv2.minMaxLoc(find - page)[:2]
    if -darkest >= POLARITY_MARGIN * brightest:
        return -1.0
    if -darkest <= brightest / POLARITY_MARGIN**6 or min(find.shape) < 3:
        return 1.0
    element = cv2.getStructuringElement(cv2.MORPH_RECT, (lighting.odd(min(find.shape) / 24),) * 2)
    dark = cv2.sumElems(cv2.morphologyEx(find, cv2.MORPH_BLACKHAT, element))[0]
    light = cv2.sumElems(cv2.morphologyEx(find, cv2.MORPH_TOPHAT, element))[0]
    return -1.0 if dark > light else 1.0


def _fit_page(thumb: np.ndarray) -> np.ndarray:
    """The page's brightness without the ink, as a quadratic surface over the thumbnail.

    Lighting across a photographed sheet is close to a gradient plus vignetting, which a
    quadratic captures; fitting it while repeatedly dropping outliers (ink of either
    polarity) keeps even a bold digit filling a third of the frame out of the estimate. It
    only decides which way the ink goes: a shadow's hard edge is beyond any smooth surface,
    and is left to ``app.imaging.lighting``.
    """
    if thumb.size < 64:  # too few pixels to fit lighting to: call the page flat
        return np.full(thumb.shape, np.median(thumb), np.float32)
    terms = _quadratic_terms(*thumb.shape)
    values = thumb.reshape(-1).astype(np.float32)
    residual = values - _quantile(values, 0.5)  # start from a flat page, the majority level
    kept = np.ones(values.size, bool)
    for _ in range(3):
        spread = max(1.4826 * _quantile(np.abs(residual[kept]), 0.5), 2.0)
        kept = np.abs(residual) < 2.5 * spread
        # OpenCV's Cholesky on the 6x6 normal equations, not np.linalg.lstsq, whose LAPACK
        # threads cost more than this tiny problem.
        solved, coefficients = cv2.solve(terms[kept], values[kept], flags=_NORMAL_CHOLESKY)
        if not solved:  # degenerate thumbnail (a single row or column): least-norm solution
            coefficients = cv2.solve(terms[kept], values[kept], flags=cv2.DECOMP_SVD)[1]
        residual = values - (terms @ coefficients).ravel()
    return (terms @ coefficients).reshape(thumb.shape)


@functools.lru_cache(maxsize=64)
def _quadratic_terms(height: int, width: int) -> np.ndarray:
    """Columns 1, x, y, x², xy, y² over a height x width grid spanning [-1, 1]²."""
    y, x = np.mgrid[-1 : 1 : height * 1j, -1 : 1 : width * 1j].astype(np.float32)  # type: ignore[misc]
    terms = np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=-1).reshape(-1, 6)
    terms.flags.writeable = False  # shared between calls
    return terms


def digit_box(
    ink: np.ndarray, parts: InkParts | None = None
) -> tuple[tuple[int, int, int, int], float]:
    """(x0, y0, x1, y1) around the digit, with a margin, and its stroke width in pixels.

    NoDigitFound if there is none.

    A digit is the strokes holding the most ink plus sizeable pieces near them; it must stand
    out from the page by MIN_INK_CONTRAST and be more than a speck relative to the frame.
    """
    if cv2.minMaxLoc(ink)[1] < MIN_INK_CONTRAST:
        raise NoDigitFound("The image has no contrast that looks like ink.")
    _, labels, stats, keep = _digit_parts(ink, None, parts=parts)
    boxes = stats[keep, :4]
    x0, y0 = boxes[:, 0].min(), boxes[:, 1].min()
    x1 = (boxes[:, 0] + boxes[:, 2]).max()
    y1 = (boxes[:, 1] + boxes[:, 3]).max()
    if max(x1 - x0, y1 - y0) < max(MIN_DIGIT_PX, MIN_DIGIT_FRACTION * max(ink.shape)):
        raise NoDigitFound("Only specks of ink were found, nothing digit-sized.")
    chosen = np.zeros(int(labels.max()) + 1, np.uint8)
    chosen[keep + 1] = 255
    stroke_px = strokes.stroke_width(chosen[labels[y0:y1, x0:x1]])
    # Two pixels of margin keep the grey fringe just below the threshold.
    height, width = ink.shape
    box = max(x0 - 2, 0), max(y0 - 2, 0), min(x1 + 2, width), min(y1 + 2, height)
    return box, stroke_px


def _strokes(
    ink: np.ndarray, box: tuple[int, int, int, int], threshold: float | None = None
) -> np.ndarray:
    """The digit's strokes, tightly cropped, 0..255 with anti-aliased edges kept, MNIST's weight.

    Ink levels are ramped (see RAMP_FLOOR) rather than cut hard; whatever is not part of the
    digit's strokes, or a pixel of fringe around them, is zeroed. Strokes far thinner or
    thicker than MNIST's pens, for a digit this size, are brought to MNIST's weight: the
    network learned digit shapes drawn at that weight, not hairlines or marker blobs.
    """
    if max(ink.shape) > 2 * MNIST_BOX:  # it will be shrunk at least 2x: blurring costs no detail
        ink = cv2.GaussianBlur(ink, (3, 3), 0)
    threshold, labels, _, keep = _digit_parts(ink, box, threshold)
    chosen = np.zeros(int(labels.max()) + 1, np.uint8)
    chosen[keep + 1] = 255
    mask = chosen[labels]
    stroke_level = _quantile(ink[mask > 0], STROKE_QUANTILE) if cv2.countNonZero(mask) else 0
    floor = threshold * RAMP_FLOOR
    gain = 255 / max(stroke_level - floor, 1)
    ramped = cv2.convertScaleAbs(cv2.subtract(ink, floor), alpha=gain)  # type: ignore[call-overload]
    digit = cv2.bitwise_and(ramped, cv2.dilate(mask, np.ones((3, 3), np.uint8)))
    x, y, width, height = cv2.boundingRect(digit)
    if width == 0:
        raise NoDigitFound("The ink is too faint to make out a digit.")
    digit = digit[y : y + height, x : x + width]
    mask = mask[y : y + height, x : x + width]
    size = max(width, height)
    if size >= MIN_REWEIGHT_PX:
        weight = strokes.stroke_width(mask) / size
        if not MNIST_STROKE[0] <= weight <= MNIST_STROKE[1]:
            target = MNIST_STROKE_TARGET[0] if weight < MNIST_STROKE[0] else MNIST_STROKE_TARGET[1]
            digit = strokes.reweight(digit, weight * size, target * size)
            x, y, width, height = cv2.boundingRect(digit)
            digit = digit[y : y + height, x : x + width]
    return digit


def _digit_parts(
    ink: np.ndarray,
    box: tuple[int, int, int, int] | None,
    threshold: float | None = None,
    parts: InkParts | None = None,
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """Threshold, component labels and stats, and the indices of the digit's components.

    The ink is ``ink_mask``'s. The digit is the stroke-like
    component holding the most ink (overlapping ``box``, when given) plus sizeable
    stroke-like pieces near it (a 5's detached bar) and pen dots inside its box (a smiley's
    eyes); specks, filled areas and what is left of lines are dropped. Over the whole frame
    (``box`` None) the components are ``parts``, when given.
    """
    if box is None and threshold is None:
        parts = parts or ink_parts(ink)
        threshold, count, labels, stats = parts.threshold, parts.count, parts.labels, parts.stats
    else:
        if threshold is None:
            threshold, mask = ink_mask(ink, whole_frame=False)
        else:
            mask = cv2.threshold(ink, threshold, 255, cv2.THRESH_BINARY)[1]
        count, labels, stats = strokes.components(mask)
    if count == 0:
        raise NoDigitFound("The image has no contrast that looks like ink.")
    areas = stats[:, cv2.CC_STAT_AREA].astype(np.float64)
    candidates = np.flatnonzero(areas >= MIN_PIECE_AREA * areas.max())
    candidates = candidates[np.argsort(-areas[candidates])][:MAX_CANDIDATES]
    widths = strokes.widest(labels, stats, candidates)
    shaped = strokes.stroke_like(labels, stats, candidates, widths)
    x, y, w, h = stats[candidates, :4].T
    # Ink absorbs most of the light: what a shadow's corner leaves behind is as wide but fainter.
    strength = strokes.mean_inside(ink, labels, stats, candidates) / 255
    # A shadow's corner narrowing to a point is a filled triangle; no digit is.
    wedge = strokes.wedges(labels, stats, candidates)
    digit_like = shaped & ~wedge
    score = areas[candidates] * strength**INK_POWER * np.where(digit_like, 1.0, NOT_STROKE_WEIGHT)
    if box is not None:
        bx0, by0, bx1, by1 = box
        inside = (x < bx1) & (x + w > bx0) & (y < by1) & (y + h > by0)
        score = np.where(inside, score, score * NOT_STROKE_WEIGHT)
    main = int(np.argmax(score))
    mx, my, mw, mh = x[main], y[main], w[main], h[main]
    reach = MAX_PIECE_GAP * max(mw, mh)
    near = (
        (x < mx + mw + reach) & (x + w > mx - reach) & (y < my + mh + reach) & (y + h > my - reach)
    )
    big = areas[candidates] >= MIN_PIECE_AREA * areas[candidates[main]]
    is_main = np.arange(len(candidates)) == main
    keep = near & big & (shaped | is_main)
    if wedge.any():
        # A broken-off piece of the digit may be triangular too, but only a pen wide; what
        # the lighting's kernel leaves of a shadow's corner is up to that kernel wide.
        pen = strokes.pen_width(labels, stats, int(candidates[main]))
        keep &= ~strokes.shadow_corners(wedge, widths, pen) | is_main
    dots = strokes.dots_inside(labels, stats, int(candidates[main]))
    return threshold, labels, stats, np.union1d(candidates[keep], dots)


def ink_mask(
    ink: np.ndarray, *, whole_frame: bool, fraction: float = INK_FRACTION, faint: bool = False
) -> tuple[float, np.ndarray]:
    """The ink threshold and the 0/255 mask above it.

    Otsu separates ink from what is left of the page, but on a clean page it would split the
    noise, so it never goes below half of MIN_INK_CONTRAST. Over the whole frame
    (``whole_frame``) ink is also at least ``fraction`` of the strongest strokes: ink takes
    most of the light where it lies, while a shaded area narrower than the lighting's kernel
    is left with what the shadow took, far less than the pen's strongest. With ``faint``,
    ``fraction`` of the strongest is always enough, even below Otsu's split: a row of digits
    holds firm and light strokes of one pen, and Otsu may split those instead of ink from
    paper.
    """
    threshold, mask = cv2.threshold(ink, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    if threshold < MIN_INK_CONTRAST / 2:
        threshold, mask = cv2.threshold(ink, MIN_INK_CONTRAST / 2, 255, cv2.THRESH_BINARY)
    strongest = _quantile(ink[mask > 0], STROKE_QUANTILE) if cv2.countNonZero(mask) else 0.0
    wanted = max(fraction * strongest, MIN_INK_CONTRAST / 2)
    if (whole_frame and wanted > threshold) or (faint and wanted < threshold):
        threshold, mask = cv2.threshold(ink, wanted, 255, cv2.THRESH_BINARY)
    return threshold, mask


def _quantile(values: np.ndarray, q: float) -> float:
    """A sample quantile by partial sort: np.percentile costs far more on arrays this small."""
    k = int(q * (values.size - 1))
    return float(np.partition(values.ravel(), k)[k])


def fit_mnist_frame(digit: np.ndarray) -> np.ndarray:
    """Scale the longer side to 20 px and paste so the centre of mass lands on (14, 14).

    Centre of mass rather than box centre because that is how MNIST was built: a 7 sits
    further left in its box than a 1, and the model learned those positions. The strongest
    stroke is scaled to 1.0, as it is in every MNIST digit, however thin the pen was.
    """
    height, width = digit.shape
    scale = MNIST_BOX / max(height, width)
    if scale != 1:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        digit = cv2.resize(digit, size, interpolation=interpolation)
        height, width = digit.shape
    peak = cv2.minMaxLoc(digit)[1]
    if peak == 0:
        raise NoDigitFound("The ink is too faint to make out a digit.")
    row, col = _centre_of_mass(digit)
    top = min(max(_shift_to_centre(row), 0), MNIST_SIZE - height)
    left = min(max(_shift_to_centre(col), 0), MNIST_SIZE - width)
    frame = np.zeros((MNIST_SIZE, MNIST_SIZE), np.float32)
    frame[top : top + height, left : left + width] = digit / np.float32(peak)
    return frame


def _centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    """(row, col), with pixel i's centre at i, as MNIST measured it."""
    moments = cv2.moments(image)
    return moments["m01"] / moments["m00"], moments["m10"] / moments["m00"]


def _shift_to_centre(position: float) -> int:
    """Whole-pixel shift that brings ``position`` nearest MNIST_CENTRE (halves round up)."""
    return int(np.floor(MNIST_CENTRE - position + 0.5))
