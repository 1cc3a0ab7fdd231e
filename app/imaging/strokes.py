"""What ink is: strokes a pen drew, as opposed to printed lines, shaded regions and edges.

A pen stroke is narrow compared with its length and with the digit it belongs to, and no
straight stretch of a digit is longer than the digit. Printed notebook lines are straight
and run across the whole picture; what is left of a shadow or a dark border after the
lighting is removed is a wide filled area. These functions turn that evidence into masks and
choices, and measure stroke width so that a hairline or a marker can be brought to the
weight of MNIST's pens.
"""

from __future__ import annotations

import cv2
import numpy as np

from app.imaging.lighting import odd

# A line may drift across its own direction by this much per pixel along it (about 6 degrees),
# so a page photographed slightly askew, or in slight perspective, still has straight lines.
LINE_SLOPE = 0.1
# A component whose widest stroke is more than this fraction of its longer side is a filled
# region, not strokes: a disk is 1, MNIST's boldest digits stay well below this.
MAX_STROKE_FRACTION = 0.5
# A pen dot is roughly round (a disk fills 0.79 of its box and its sides are equal) and its
# diameter is between these multiples of the pen's stroke width (dots_inside).
DOT_FILL = 0.5
DOT_ELONGATION = 2.0
DOT_PEN = (0.7, 3.0)
# A component that fills this much of the smallest triangle around it is a wedge: what is
# left of a shadow's corner narrowing to a point. A pen's strokes bend, cross and keep their
# width, so a digit fills less (MNIST's boldest, dilated to a marker's weight: about 0.8)...
WEDGE_FILL = 0.8
# ...if it is at least this many pixels each way: smaller, a digit's loops close up.
WEDGE_MIN_PX = 12
# A wedge wider than this many of the digit's pen widths is a shadow's corner; a digit's
# broken-off piece may be triangular too, but it is only about a pen wide.
WEDGE_PEN = 2.0


def remove_lines(ink: np.ndarray, length: tuple[int, int], *, pool: int = 1) -> np.ndarray:
    """``ink`` less whatever lies on a straight horizontal or vertical line.

    ``length`` (horizontal, vertical) is the shortest run that counts as a line: longer than
    any stroke of the digit, so only printed rules and grids qualify. Lines are found by an
    opening along their direction of a copy spread across it (a dilation), which tolerates
    LINE_SLOPE of tilt; what is subtracted at each pixel is at most the line's own level, so a
    stroke that crosses a line keeps the ink it has above the line.

    With ``pool`` > 1 the lines are looked for on a max-pooled copy, ``pool`` times smaller
    each way: a line keeps its level there, and the search costs a fraction.
    """
    height, width = ink.shape
    lines = np.zeros_like(ink)
    small = ink
    if pool > 1 and min(height, width) >= 32 * pool:  # small frames are cheap anyway
        pooled = cv2.dilate(ink, np.ones((pool, pool), np.uint8), anchor=(0, 0))
        small = cv2.resize(pooled, (width // pool, height // pool), interpolation=cv2.INTER_NEAREST)
        length = (length[0] // pool, length[1] // pool)
    for axis, run in enumerate(length):
        if run < 3:
            continue
        across = odd(run * LINE_SLOPE)
        if axis == 0:  # horizontal lines: spread vertically, open horizontally
            spread, along = np.ones((across, 1), np.uint8), np.ones((1, run), np.uint8)
        else:
            spread, along = np.ones((1, across), np.uint8), np.ones((run, 1), np.uint8)
        widened = cv2.dilate(small, spread)
        found = cv2.morphologyEx(widened, cv2.MORPH_OPEN, along)
        if small is not ink:
            found = cv2.resize(found, (width, height), interpolation=cv2.INTER_NEAREST)
        lines = cv2.max(lines, cv2.min(found, ink))
    return cv2.subtract(ink, lines)


def components(mask: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """(count, labels, stats) of 8-connected components, background excluded from stats."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    return count - 1, labels, stats[1:]


def stroke_like(
    labels: np.ndarray,
    stats: np.ndarray,
    candidates: np.ndarray,
    widths: np.ndarray | None = None,
) -> np.ndarray:
    """Boolean per candidate: is the component made of strokes rather than a filled area?

    Its widest stroke (``widths``, else ``widest``) must be a small fraction of its longer side.
    """
    if widths is None:
        widths = widest(labels, stats, candidates)
    sides = np.maximum(stats[candidates, 2], stats[candidates, 3])
    return (widths <= MAX_STROKE_FRACTION * sides) | (sides < 8)


def widest(labels: np.ndarray, stats: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Per candidate, its widest stroke: twice the largest distance from inside to outline."""
    found = np.zeros(len(candidates))
    for n, i in enumerate(candidates):
        x, y, w, h = stats[i, :4]
        inside = (labels[y : y + h, x : x + w] == i + 1).astype(np.uint8)
        padded = cv2.copyMakeBorder(inside, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
        distance = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_5)
        found[n] = 2 * float(cv2.minMaxLoc(distance)[1])
    return found


def wedges(labels: np.ndarray, stats: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Boolean per candidate: does the component nearly fill the smallest triangle around it?

    That is the shape of what lighting leaves of a shadow's corner narrowing to a point. A
    pen's strokes bend, cross and keep their width, so a whole digit fills far less.
    """
    found = np.zeros(len(candidates), bool)
    for n, i in enumerate(candidates):
        x, y, w, h, area = stats[i]
        if min(w, h) < WEDGE_MIN_PX:
            continue
        inside = (labels[y : y + h, x : x + w] == i + 1).astype(np.uint8)
        hull = cv2.convexHull(cv2.findNonZero(inside)).astype(np.float32)
        found[n] = area >= WEDGE_FILL * cv2.minEnclosingTriangle(hull)[0]
    return found


def shadow_corners(wedge: np.ndarray, widths: np.ndarray, pen: float) -> np.ndarray:
    """Boolean per candidate: a ``wedge`` whose widest stroke (``widths``) is more than
    WEDGE_PEN of the digit's ``pen`` widths, so what the lighting's kernel left of a shadow's
    corner rather than a triangular piece of the digit."""
    return wedge & (widths > WEDGE_PEN * pen)


def dots_inside(labels: np.ndarray, stats: np.ndarray, main: int) -> np.ndarray:
    """Indices of the pen dots that lie inside component ``main``'s box.

    A dot a pen leaves on purpose (a smiley's eyes, the dot of an i, a decimal point inside
    a drawing) is small next to the strokes around it, so the size rule for broken-off pieces
    drops it; but it is round and about as wide as the pen, which dust, sensor noise and what
    is left of a printed line are not: they are smaller, or long and thin.
    """
    mx, my, mw, mh = stats[main, :4]
    x, y, w, h, area = stats.T
    inside = (x >= mx) & (y >= my) & (x + w <= mx + mw) & (y + h <= my + mh) & (area >= 4)
    inside[main] = False
    found = np.flatnonzero(inside)
    if found.size == 0:
        return found
    pen = pen_width(labels, stats, main)
    side = np.maximum(w[found], h[found])
    round_enough = (area[found] >= DOT_FILL * w[found] * h[found]) & (
        np.minimum(w[found], h[found]) >= side / DOT_ELONGATION
    )
    pen_sized = (side >= DOT_PEN[0] * pen) & (side <= DOT_PEN[1] * pen)
    return found[round_enough & pen_sized]


def pen_width(labels: np.ndarray, stats: np.ndarray, main: int) -> float:
    """``stroke_width`` of component ``main`` alone."""
    x, y, w, h = stats[main, :4]
    return stroke_width((labels[y : y + h, x : x + w] == main + 1).astype(np.uint8) * 255)


def mean_inside(
    values: np.ndarray, labels: np.ndarray, stats: np.ndarray, candidates: np.ndarray
) -> np.ndarray:
    """Mean of ``values`` over each candidate component."""
    means = np.zeros(len(candidates))
    for n, i in enumerate(candidates):
        x, y, w, h = stats[i, :4]
        inside = (labels[y : y + h, x : x + w] == i + 1).astype(np.uint8)
        means[n] = cv2.mean(values[y : y + h, x : x + w], mask=inside)[0]
    return means


def stroke_width(mask: np.ndarray) -> float:
    """Typical stroke width in pixels of the ink in ``mask`` (0/255), 0 if there is none.

    Across a stroke w pixels wide the distances to the outline run 1, 2, ..., w/2 and back, so
    their mean over the ink is about w/4 + 1/2 whatever the stroke's length or shape.
    """
    distance = cv2.distanceTransform(
        cv2.copyMakeBorder(mask, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0),
        cv2.DIST_L2,
        cv2.DIST_MASK_5,
    )
    inside = distance[distance > 0]
    if inside.size == 0:
        return 0.0
    return max(4 * (float(inside.mean()) - 0.5), 1.0)


def reweight(ink: np.ndarray, width: float, target: float) -> np.ndarray:
    """``ink`` with its strokes thickened or thinned from ``width`` to about ``target`` px.

    A grey-level dilation (erosion) by a disk widens (narrows) every stroke by about the
    disk's diameter and keeps the anti-aliased edges' profile; junctions and bends do not
    narrow as fast as straight stretches, so a thinning is measured again and repeated once
    if it fell short. Thinning never takes away more than two thirds of the width, so the
    thin parts of an unevenly drawn digit are not cut.
    """
    change = target - width
    if change > 0:
        radius = round(change / 2)
        return cv2.dilate(ink, _disk(radius)) if radius >= 1 else ink
    limit = max(1, round(width / 3))
    radius = min(round(-change / 2), limit)
    if radius < 1:
        return ink
    thinned = cv2.erode(ink, _disk(radius))
    reached = stroke_width(cv2.threshold(thinned, 127, 255, cv2.THRESH_BINARY)[1])
    if reached > 1.25 * target and radius < limit:
        more = min(limit, radius + round((reached - target) / 2))
        thinned = cv2.erode(ink, _disk(more))
    return thinned


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
