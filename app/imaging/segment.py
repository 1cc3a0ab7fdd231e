"""A photo of a handwritten number -> the digits in it, each framed as MNIST frames a digit.

Reading a number is two problems that need each other: where one digit ends depends on what
the digits are (a 5 whose bar came loose is one digit; a 1 against a 3 is two), and what a
digit is depends on where it was cut. So the segmenter does not decide alone. It proposes
(``propose``): it finds the ink exactly as /predict does (``app.imaging.normalize.locate_ink``:
lighting, polarity, printed lines), splits it into connected pieces, sets aside what is not
digit-sized (a dash, a comma, a stray dot, a box drawn around the number), merges what is
surely one digit (a small piece above or below a bigger one), and for every group that could
be more than one digit it proposes cuts where the ink is thinnest (column-profile minima) and
joins with a close neighbour. Every candidate is cut from the picture the way /predict cuts a
digit (``cut_strokes``), and all of them go to the model in one batch. Then the recogniser
chooses (``choose``): dynamic programming over the candidates picks, for each stretch of the
line, the segmentation whose digits the model is most sure of (sum of log calibrated
confidence: a wide blob or half a digit is flat, so a wrong cut costs), with a penalty for a
candidate wider than digits are.

One line of digits, read left to right; the boxes are in the (EXIF-oriented) upload's pixels.
Every function is pure (arrays in, arrays and dataclasses out).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass, field
from enum import StrEnum

import cv2
import numpy as np

from app.imaging import strokes
from app.imaging.errors import NoDigitFound
from app.imaging.normalize import (
    InkParts,
    LitRegion,
    Located,
    already_mnist,
    fit_mnist_frame,
    frame_located,
    ink_mask,
    ink_parts,
    light_region,
    locate_ink,
    strokes_in,
)

# A number may fill the frame's height, so only vertical lines longer than this fraction of
# it are printed lines (a 1 in a tight crop is not).
VERTICAL_LINE_RUN = 0.97
# One pen writes a number, but not every digit as firmly: ink is at least this fraction as
# strong as the strongest strokes (a single digit's normaliser asks for more, see
# app.imaging.normalize.INK_FRACTION).
LINE_INK_FRACTION = 0.3
# Pieces smaller than this many pixels (on the located copy) are dust.
MIN_PIECE_PX = 4
# A filled piece BLOB_HEIGHT of the digits' height (and no wider than BLOB_WIDTH of it), at
# least BLOB_STRENGTH as dark as they are, may be a digit whose loops closed.
BLOB_HEIGHT = (0.7, 1.4)
BLOB_WIDTH = 1.2
BLOB_STRENGTH = 0.8
# At most this many of the largest pieces are looked at.
MAX_PIECES = 48
# The digits' height is the median height of the pieces holding at least this fraction of the
# largest piece's ink: broken-off bits and dots do not vote.
REFERENCE_AREA = 0.15
# ...and measured again on the merged groups when those are this much taller.
REMEASURE = 1.15
# Among at least OFF_LINE_AMONG groups, one that shares less than OFF_LINE_OVERLAP of its
# height (or the digits') with the band the digits' median centre sets, one digit height
# tall, is off the line: a shadow's tip, a note in the margin, not a digit of the number.
OFF_LINE_AMONG = 3
OFF_LINE_OVERLAP = 0.4
# A group lower than this fraction of the digits' height is a mark (dash, dot, comma)...
SMALL_HEIGHT = 0.45
# ...and one this many heights wide but at most LINE_HEIGHT high is a rule drawn under or
# through the number, not a digit.
LINE_WIDTH = 2.0
LINE_HEIGHT = 0.35
# A frame drawn around the number encloses other pieces and is mostly empty inside.
FRAME_FILL = 0.15
# Two pieces are surely one digit when they overlap horizontally by this fraction of the
# narrower one and the smaller holds at most SURE_MERGE_AREA of the bigger one's ink.
SURE_MERGE_OVERLAP = 0.5
SURE_MERGE_AREA = 0.3
# So are two that are parts of one digit: one lower than STACKED_PART of the digits' height,
# both together no taller than STACKED_HEIGHT of it.
STACKED_PART = 0.75
# A piece lower than SMALL_HEIGHT over or under a digit's top or bottom third joins it if it
# overlaps it horizontally by this fraction of its own width.
SMALL_OVERLAP = 0.2
STACKED_HEIGHT = 1.3
# ...and so are two that stand one above the other, sharing at most ALIGNED_SHARE of the
# shorter one's rows, the narrower one at least ALIGNED_OVERLAP within the other's columns,
# no taller together than ALIGNED_HEIGHT digit heights: a 7 broken in two where a shadow's
# edge crosses it. The pieces' heights underestimate the digits' when several digits are
# broken so; digits side by side share their rows, so this never joins two.
ALIGNED_OVERLAP = 0.8
ALIGNED_SHARE = 0.3
ALIGNED_HEIGHT = 1.8
# A small piece at least BAR_FLAT times as wide as high, level with a digit's top third and
# reaching out to the right from its right half, no more than BAR_GAP heights from it, is the
# bar of a 5 that the pen lifted from (or a thin join the photo lost): it joins that digit.
BAR_FLAT = 1.5
BAR_GAP = 0.1
# ...if it holds no more than this share of the digit's ink (a 5's body is not much longer).
BAR_AREA = 0.6
# Two neighbouring groups may be one digit (the model decides) when they are this close...
MAYBE_MERGE_GAP = 0.12
# ...and together no wider than this many digit heights.
MAYBE_MERGE_WIDTH = 1.2
# A group wider than this many digit heights may be touching digits: cuts are proposed...
SPLIT_WIDTH = 0.75
# ...at column-profile minima at least this many heights from its ends and from each other,
CUT_MARGIN = 0.2
# ...at most CUTS_PER_HEIGHT for each digit height of the group's width,
CUTS_PER_HEIGHT = 2.5
# ...each a straight cut that may lean (SEAM_LEANS slopes, up to SEAM_REACH heights to either
# side at the top and bottom) to cross the least ink; leaning costs SEAM_DRIFT per unit of
# slope and row, so in a gap the cut stays upright.
SEAM_REACH = 0.2
SEAM_LEANS = 9
SEAM_DRIFT = 0.5
# Where strokes overlap, the column profile has no minimum at the join: in a group wider than
# FILL_WIDTH heights, stretches between cuts longer than two FILL_SPACING get more cuts,
# evenly spaced, and the recogniser chooses among them. (A narrower group is most likely one
# wide digit, and cut into more pieces it is read as more digits more often.)
FILL_SPACING = 0.12
FILL_WIDTH = 1.0
# ...and a candidate digit must be at least this narrow part of a height, at most this wide.
MIN_WIDTH = 0.15
MAX_WIDTH = 1.6
# Candidates lower than SHORT digit heights pay up to SHORT_PENALTY: a digit's loose end or
# half of it can look like a 1 or a 7 to the model, but digits of one number are about as
# tall as each other.
SHORT = 0.7
SHORT_PENALTY = 4.0
# What a cut leaves of a neighbour's strokes is dropped from a cut-out digit when each piece
# holds less than this share of its ink.
SLIVER = 0.15
# A candidate digit spans at most this many units (a wide digit among FILL_SPACING cuts: 8).
MAX_SPAN = 10
# Every cut through ink costs this much log-confidence, so half a digit that looks like a 1
# does not beat the whole digit unless the whole is clearly not one. Parting at a gap is free.
# A group no wider than ONE_DIGIT heights is most likely one digit (MNIST's are up to about
# that wide), so a cut through it costs CUT_COST; through a wider one, WIDE_CUT_COST.
CUT_COST = 0.6
WIDE_CUT_COST = 0.1
ONE_DIGIT = 1.0
# ...plus, in such a group, this for every stroke the cut crosses beyond the first.
STROKE_CUT_COST = 0.3
# Candidates wider than this many heights pay this much log-confidence per extra height.
WIDE = 1.1
WIDE_PENALTY = 3.0
# /predict was given several digits when another one stands beside its digit: at least this
# tall and this inky relative to it, overlapping it vertically by half and horizontally by at
# most BESIDE_OVERLAP of the narrower one, within BESIDE_REACH heights of it.
BESIDE_HEIGHT = 0.6
BESIDE_AREA = 0.2
BESIDE_REACH = 1.5
BESIDE_OVERLAP = 0.3
# ...and apart from it by at least BESIDE_GAP heights (closer, it is more likely a broken
# piece of the same digit), with ink at least BESIDE_STRENGTH as strong (a shadow's
# remains are fainter than any pen).
BESIDE_GAP = 0.2
BESIDE_CANDIDATES = 8
BESIDE_STRENGTH = 0.6
# The two together must be wider than one digit is: an open 4's bar beside its angle is not.
BESIDE_WIDTH = 1.05


class MarkKind(StrEnum):
    """Why a piece of ink was not read as a digit.

    - `small`: much smaller than the digits (a dash, a dot, a comma, a stray mark).
    - `line`: a rule under or through the number, or a box drawn around it.
    - `off_line`: digit-sized, but above or below the row of digits (the tip of a shadow, a
      note in the margin).
    - `not_a_digit`: digit-sized, but the model says it is not a digit (a letter, a symbol).
    """

    small = "small"
    line = "line"
    off_line = "off_line"
    not_a_digit = "not_a_digit"


@dataclass(frozen=True, slots=True)
class Box:
    """A rectangle in the upload's pixels."""

    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class Mark:
    kind: MarkKind
    box: Box


@dataclass(frozen=True, slots=True)
class Candidate:
    """One way to cut one digit: units ``start``..``end`` of the line, its box, its input."""

    start: int
    end: int
    box: Box
    image: np.ndarray  # (28, 28) float32
    width: float  # in digit heights
    height: float  # in digit heights


@dataclass(frozen=True, slots=True)
class Proposal:
    """What the model must score before the line can be read."""

    units: int
    candidates: tuple[Candidate, ...]
    cuts: tuple[float, ...]  # per boundary between units: what cutting the ink there costs
    marks: tuple[Mark, ...] = ()
    images: np.ndarray = field(default_factory=lambda: np.zeros((0, 28, 28, 1), np.float32))


@dataclass(slots=True)
class _Group:
    labels: list[int]  # component labels (1-based, as in the label image)
    x0: int
    y0: int
    x1: int
    y1: int
    area: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    def absorb(self, other: _Group) -> None:
        self.labels += other.labels
        self.x0, self.y0 = min(self.x0, other.x0), min(self.y0, other.y0)
        self.x1, self.y1 = max(self.x1, other.x1), max(self.y1, other.y1)
        self.area += other.area


@dataclass(frozen=True, slots=True)
class _Line:
    """The located ink split into digit groups (left to right) and marks, on the find copy."""

    labels: np.ndarray
    groups: tuple[_Group, ...]
    marks: tuple[tuple[MarkKind, tuple[int, int, int, int]], ...]
    height: float


def locate_number(gray: np.ndarray) -> Located:
    """The ink of a picture of a number (see VERTICAL_LINE_RUN)."""
    return locate_ink(gray, vertical_line_run=VERTICAL_LINE_RUN)


def propose(gray: np.ndarray, scale: float = 1.0) -> Proposal:
    """Every candidate digit the model must score to read the number in ``gray``.

    Boxes are in the upload's pixels, ``scale`` of them to each pixel of ``gray``. Raises
    NoDigitFound when there is no ink at all.
    """
    located = locate_number(gray)
    line = _split_line(located.ink)
    to_upload = (
        scale * gray.shape[1] / located.ink.shape[1],
        scale * gray.shape[0] / located.ink.shape[0],
    )
    units, links = _units(line)
    lit = _light_line(located, line)
    candidates: list[Candidate] = []
    for start in range(len(units)):
        for end in range(start + 1, min(start + MAX_SPAN, len(units)) + 1):
            mask = _candidate_mask(line, units, links, start, end)
            if mask is None:
                continue
            found = _cut(lit, mask, line.height, start, end, to_upload)
            if found is not None:
                candidates.append(found)
    marks = [Mark(kind, _to_upload(box, to_upload)) for kind, box in line.marks]
    images = np.stack([c.image for c in candidates])[..., np.newaxis] if candidates else None
    cuts = [0.0] + [_cut_cost(line, a, b) for a, b in itertools.pairwise(units)] + [0.0]
    return Proposal(
        units=len(units),
        candidates=tuple(candidates),
        cuts=tuple(cuts),
        marks=tuple(marks),
        images=images if images is not None else np.zeros((0, 28, 28, 1), np.float32),
    )


def choose(proposal: Proposal, confidences: np.ndarray) -> list[int]:
    """Indices of the candidates that read the line best, left to right.

    ``confidences`` holds the calibrated probability of each candidate's best digit. The
    score of a reading is the sum of its digits' log confidences, less WIDE_PENALTY per
    height a candidate is wider than WIDE: the model's own doubt decides where digits part.
    """
    best = [-math.inf] * (proposal.units + 1)
    back: list[int | None] = [None] * (proposal.units + 1)
    best[0] = 0.0
    ending: dict[int, list[int]] = {}
    for index, candidate in enumerate(proposal.candidates):
        ending.setdefault(candidate.end, []).append(index)
    for end in range(1, proposal.units + 1):
        for index in ending.get(end, []):
            candidate = proposal.candidates[index]
            if best[candidate.start] == -math.inf:
                continue
            score = best[candidate.start] + _score(candidate, float(confidences[index]))
            score -= proposal.cuts[candidate.start]
            if score > best[end]:
                best[end], back[end] = score, index
        if best[end] == -math.inf:  # nothing could be cut here: skip the unit
            best[end], back[end] = best[end - 1], None
    chosen: list[int] = []
    end = proposal.units
    while end > 0:
        step = back[end]
        if step is None:
            end -= 1
            continue
        chosen.append(step)
        end = proposal.candidates[step].start
    return chosen[::-1]


def cut_through_ink(proposal: Proposal, index: int) -> bool:
    """Was candidate ``index`` cut out of ink it shared with a neighbour (touching digits)?
    Such a reading rests on where the cut was made, not only on what the model saw."""
    candidate = proposal.candidates[index]
    return proposal.cuts[candidate.start] > 0 or proposal.cuts[candidate.end] > 0


def normalize_counted(gray: np.ndarray) -> tuple[np.ndarray, int]:
    """``normalize_digit``'s (28, 28) input, and how many digits the picture seems to hold.

    /predict reads one digit; when another one stands beside it, the answer should say so
    rather than read one of them (``digits_beside``).
    """
    mnist = already_mnist(gray)
    if mnist is not None:
        return mnist, 1
    located = locate_ink(gray)
    parts = ink_parts(located.ink)
    image, box = frame_located(located, parts)
    return image, 1 + digits_beside(located.ink, box, parts)


def digits_beside(
    ink: np.ndarray, box: tuple[int, int, int, int], parts: InkParts | None = None
) -> int:
    """How many more digits stand beside the largest stroke in ``box``, on its line.

    Each must be nearly as tall as it and hold a fair share of its ink, share its line, stand
    apart from it (not above or below it: a 5's bar, an 8's loose loop) but close to it, be
    as dark and be made of strokes, so a speck, a shadow or a printed line's remains do not
    count, nor does a digit broken in two.
    """
    parts = parts or ink_parts(ink)
    count, labels, stats = parts.count, parts.labels, parts.stats
    if count < 2:
        return 0
    x0, y0, x1, y1 = box
    x, y, w, h, area = stats.T
    inside = (x >= x0) & (y >= y0) & (x + w <= x1) & (y + h <= y1)
    if not inside.any():
        return 0
    ours = np.flatnonzero(inside)
    ours = ours[np.argsort(-area[ours])][:BESIDE_CANDIDATES]
    ours = ours[strokes.stroke_like(labels, stats, ours)]
    if ours.size == 0:
        return 0
    strength = strokes.mean_inside(ink, labels, stats, ours)
    main = int(ours[np.argmax(area[ours] * strength**2)])  # the digit's biggest, darkest stroke
    mx, my, mw, mh = stats[main, :4]
    overlap_y = np.minimum(y + h, my + mh) - np.maximum(y, my)
    overlap_x = np.minimum(x + w, mx + mw) - np.maximum(x, mx)
    gap = np.maximum(x - (mx + mw), mx - (x + w))
    beside = (
        (h >= BESIDE_HEIGHT * mh)
        & (area >= BESIDE_AREA * area[main])
        & (overlap_y >= 0.5 * np.minimum(h, mh))
        & (overlap_x <= BESIDE_OVERLAP * np.minimum(w, mw))
        & (gap >= BESIDE_GAP * mh)
        & (gap <= BESIDE_REACH * mh)
        & (np.maximum(x + w, mx + mw) - np.minimum(x, mx) >= BESIDE_WIDTH * np.maximum(h, mh))
    )
    beside[main] = False
    found = np.flatnonzero(beside)
    if found.size == 0:
        return 0
    strength = strokes.mean_inside(ink, labels, stats, np.r_[main, found])
    inky = strength[1:] >= BESIDE_STRENGTH * strength[0]
    return int((strokes.stroke_like(labels, stats, found) & inky).sum())


# --- splitting the line -------------------------------------------------------------------


def _split_line(ink: np.ndarray) -> _Line:
    """Connected pieces of ink, sorted into digit groups and marks."""
    _, mask = ink_mask(ink, whole_frame=True, fraction=LINE_INK_FRACTION, faint=True)
    count, labels, stats = strokes.components(mask)
    if count == 0:
        raise NoDigitFound("The image has no contrast that looks like ink.")
    areas = stats[:, cv2.CC_STAT_AREA]
    order = np.argsort(-areas)[:MAX_PIECES]
    order = order[areas[order] >= MIN_PIECE_PX]
    if order.size == 0:
        raise NoDigitFound("Only specks of ink were found, nothing digit-sized.")
    widths = strokes.widest(labels, stats, order)
    shaped = strokes.stroke_like(labels, stats, order, widths)
    pieces, widths = order[shaped], widths[shaped]
    if pieces.size == 0:
        raise NoDigitFound("The ink found is filled areas, not pen strokes.")
    pieces = _without_wedges(labels, stats, pieces, widths)
    big = pieces[areas[pieces] >= REFERENCE_AREA * areas[pieces].max()]
    height = float(np.median(stats[big, cv2.CC_STAT_HEIGHT]))
    pieces = np.r_[pieces, _inky_blobs(ink, labels, stats, order[~shaped], big, height)]

    marks: list[tuple[MarkKind, tuple[int, int, int, int]]] = []
    groups: list[_Group] = []
    for i in pieces:
        x, y, w, h, area = (int(v) for v in stats[i])
        box = (x, y, x + w, y + h)
        if (w >= LINE_WIDTH * height and h <= LINE_HEIGHT * height) or (
            h > 1.3 * height and area < FRAME_FILL * w * h and _encloses(stats, pieces, i)
        ):
            marks.append((MarkKind.line, box))
        else:
            groups.append(_Group([int(i) + 1], x, y, x + w, y + h, area))
    merged = _merge_sure([dataclasses.replace(g, labels=list(g.labels)) for g in groups], height)
    # Broken digits make the pieces' heights an underestimate; once the pieces of each digit
    # are together, the digits' own heights say how tall they are.
    # Measured on the groups at least digit-sized by the pieces' estimate, not by the tallest
    # group: one tall group that is no digit (a shadow's edge joined to a digit) would make
    # every digit beside it a small mark.
    big_groups = [g.height for g in merged if g.height >= SMALL_HEIGHT * height]
    if merged and np.median(big_groups) > REMEASURE * height:
        height = float(np.median(big_groups))
        merged = _merge_sure(
            [dataclasses.replace(g, labels=list(g.labels)) for g in groups], height
        )
    groups = merged
    digits: list[_Group] = []
    for group in groups:
        if group.height < SMALL_HEIGHT * height and group.width < MAX_WIDTH * height:
            marks.append((MarkKind.small, (group.x0, group.y0, group.x1, group.y1)))
        else:
            digits.append(group)
    off = _off_line(digits, height)
    marks += [(MarkKind.off_line, (g.x0, g.y0, g.x1, g.y1)) for g in off]
    digits = [g for g in digits if g not in off]
    digits.sort(key=lambda g: (g.x0 + g.x1) / 2)
    return _Line(labels, tuple(digits), tuple(marks), height)


def _inky_blobs(
    ink: np.ndarray,
    labels: np.ndarray,
    stats: np.ndarray,
    filled: np.ndarray,
    digits: np.ndarray,
    height: float,
) -> np.ndarray:
    """The ``filled`` pieces that may be digits all the same: a thick pen in a dim photo
    closes a small digit's loops (an 8, a 0), and the reader must still see a digit there.
    Such a blob is digit-sized (BLOB_HEIGHT, BLOB_WIDTH of ``height``) and as dark as the
    ``digits`` (BLOB_STRENGTH); what lighting leaves of a shadow is fainter. It may fill a
    triangle (a 4 whose loop closed), so the wedge test does not apply. The model says
    whether it is a digit; when it is not, the number is uncertain rather than a digit
    shorter."""
    if filled.size == 0:
        return filled
    w, h = stats[filled, cv2.CC_STAT_WIDTH], stats[filled, cv2.CC_STAT_HEIGHT]
    sized = filled[
        (h >= BLOB_HEIGHT[0] * height) & (h <= BLOB_HEIGHT[1] * height) & (w <= BLOB_WIDTH * height)
    ]
    if sized.size == 0:
        return sized
    strength = strokes.mean_inside(ink, labels, stats, sized)
    reference = float(np.median(strokes.mean_inside(ink, labels, stats, digits)))
    return sized[strength >= BLOB_STRENGTH * reference]


def _without_wedges(
    labels: np.ndarray, stats: np.ndarray, pieces: np.ndarray, widths: np.ndarray
) -> np.ndarray:
    """``pieces`` less the shadows' corners (``strokes.shadow_corners``), as
    app.imaging.normalize._digit_parts drops them. The pen is that of the largest piece that
    is not a wedge (``pieces`` come largest first)."""
    wedge = strokes.wedges(labels, stats, pieces)
    if not wedge.any() or wedge.all():
        return pieces
    pen = strokes.pen_width(labels, stats, int(pieces[~wedge][0]))
    return pieces[~strokes.shadow_corners(wedge, widths, pen)]


def _off_line(groups: list[_Group], height: float) -> list[_Group]:
    """The groups above or below the band, one digit height tall, that the groups' median
    centre sets (see OFF_LINE_AMONG); none among fewer groups."""
    if len(groups) < OFF_LINE_AMONG:
        return []
    middle = float(np.median([(g.y0 + g.y1) / 2 for g in groups]))
    top, bottom = middle - height / 2, middle + height / 2
    return [
        g
        for g in groups
        if min(g.y1, bottom) - max(g.y0, top) < OFF_LINE_OVERLAP * min(g.height, height)
    ]


def _encloses(stats: np.ndarray, pieces: np.ndarray, i: int) -> bool:
    """Does piece ``i``'s box hold the centres of at least two other pieces?"""
    x, y, w, h = stats[i, :4]
    others = pieces[pieces != i]
    cx = stats[others, 0] + stats[others, 2] / 2
    cy = stats[others, 1] + stats[others, 3] / 2
    inside = (cx > x) & (cx < x + w) & (cy > y) & (cy < y + h)
    return int(inside.sum()) >= 2


def _above_or_below(piece: _Group, host: _Group) -> bool:
    """Does ``piece`` sit over or under ``host``'s top or bottom third (a 5's bar, a 7's foot)
    rather than beside its middle (a dash)?"""
    third = host.height / 3
    return piece.y1 <= host.y0 + third or piece.y0 >= host.y1 - third


def _loose_bar(piece: _Group, host: _Group, height: float) -> bool:
    """Is ``piece`` a 5's bar that came loose: small, flat, level with ``host``'s top third,
    and reaching out to the right from its right half, within BAR_GAP heights of it?"""
    return (
        piece.height < SMALL_HEIGHT * height
        and piece.area <= BAR_AREA * host.area
        and piece.width >= BAR_FLAT * piece.height
        and piece.y1 <= host.y0 + host.height / 3
        and piece.x0 >= (host.x0 + host.x1) / 2
        and piece.x0 - host.x1 <= BAR_GAP * height
        and piece.x1 > host.x1
    )


def _merge_sure(groups: list[_Group], height: float) -> list[_Group]:
    """Merge each piece into a bigger one it overlaps horizontally when it is much smaller (a
    5's loose bar) or when the two are parts of one digit stacked (a 3 broken in two), and a
    flat piece reaching out from a digit's top right into it (``_loose_bar``)."""
    groups = sorted(groups, key=lambda g: -g.area)
    merged: list[_Group] = []
    for group in groups:
        for host in merged:
            overlap = min(group.x1, host.x1) - max(group.x0, host.x0)
            tall = max(group.y1, host.y1) - min(group.y0, host.y0)
            stacked = (
                min(group.height, host.height) < STACKED_PART * height
                and tall <= STACKED_HEIGHT * height
            ) or (
                overlap >= ALIGNED_OVERLAP * min(group.width, host.width)
                and min(group.y1, host.y1) - max(group.y0, host.y0)
                <= ALIGNED_SHARE * min(group.height, host.height)
                and tall <= ALIGNED_HEIGHT * height
            )
            small = (
                group.height < SMALL_HEIGHT * height and group.area <= SURE_MERGE_AREA * host.area
            )
            if (
                (
                    overlap >= SURE_MERGE_OVERLAP * min(group.width, host.width)
                    and (group.area <= SURE_MERGE_AREA * host.area or stacked)
                )
                or (
                    small
                    and overlap >= SMALL_OVERLAP * group.width
                    and _above_or_below(group, host)
                )
                or _loose_bar(group, host, height)
            ):
                host.absorb(group)
                break
        else:
            merged.append(group)
    return merged


@dataclass(frozen=True, slots=True)
class _Unit:
    """A group's share between two seams: per row of the group, columns [left, right)."""

    group: int
    left: np.ndarray
    right: np.ndarray
    whole: bool  # the unit is its whole group

    @property
    def x0(self) -> int:
        return int(self.left.min())

    @property
    def x1(self) -> int:
        return int(self.right.max())


def _units(line: _Line) -> tuple[list[_Unit], list[bool]]:
    """The line's smallest pieces, left to right, and which neighbouring groups may be one.

    A group that could hold touching digits is split along its candidate seams; ``links[k]``
    says whether units k and k+1 may be parts of one digit.
    """
    units: list[_Unit] = []
    height = line.height
    for index, group in enumerate(line.groups):
        rows = group.height
        seams = _seams(line, group) if group.width > SPLIT_WIDTH * height else []
        edges = [np.full(rows, group.x0), *seams, np.full(rows, group.x1)]
        whole = len(edges) == 2
        units += [_Unit(index, a, b, whole) for a, b in itertools.pairwise(edges)]
    links = []
    for left, right in itertools.pairwise(units):
        if left.group == right.group:
            links.append(True)
            continue
        a, b = line.groups[left.group], line.groups[right.group]
        gap = b.x0 - a.x1
        links.append(
            left.whole
            and right.whole
            and gap < MAYBE_MERGE_GAP * height
            and max(a.x1, b.x1) - min(a.x0, b.x0) <= MAYBE_MERGE_WIDTH * height
        )
    return units, links


def _seams(line: _Line, group: _Group) -> list[np.ndarray]:
    """Top-to-bottom paths through a wide group where touching digits would part.

    Each passes through a column where the ink is thinnest (a column-profile minimum) and
    leans to cross as little ink as it can, so that a 1 leaning into a 4 is parted along
    the lean. Returned as absolute columns per row, left to right.
    """
    inside = np.isin(line.labels[group.y0 : group.y1, group.x0 : group.x1], group.labels)
    profile = inside.sum(axis=0).astype(np.float32)
    profile = np.convolve(profile, np.array([1, 2, 1], np.float32) / 4, mode="same")
    margin = max(1, round(CUT_MARGIN * line.height))
    inner = np.arange(margin, group.width - margin)
    if inner.size == 0:
        return []
    left, right = profile[inner - 1], profile[np.minimum(inner + 1, group.width - 1)]
    minima = inner[(profile[inner] <= left) & (profile[inner] <= right)]
    chosen: list[int] = []
    for column in minima[np.argsort(profile[minima], kind="stable")]:
        if all(abs(int(column) - c) >= margin for c in chosen):
            chosen.append(int(column))
        if len(chosen) >= CUTS_PER_HEIGHT * group.width / line.height:
            break
    spacing = FILL_SPACING * line.height
    edges = [0, *sorted(chosen), group.width] if group.width > FILL_WIDTH * line.height else []
    for a, b in itertools.pairwise(edges):
        extra = int((b - a) / spacing) - 1
        for k in range(1, extra + 1):
            column = a + round(k * (b - a) / (extra + 1))
            if margin <= column <= group.width - margin:
                chosen.append(column)
    reach = max(1, round(SEAM_REACH * line.height))
    seams = [_seam(inside, c, reach) + group.x0 for c in sorted(chosen)]
    for earlier, later in itertools.pairwise(seams):  # seams must not cross
        np.maximum(later, earlier + 1, out=later)
    return seams


def _seam(inside: np.ndarray, column: int, reach: int) -> np.ndarray:
    """The straight line through ``column`` (at mid-height), upright or leaning by up to
    ``reach`` columns at the top and bottom, that crosses the least ink; a lean costs a
    little, so in a gap the cut stays upright."""
    rows, cols = inside.shape
    offsets = np.arange(rows) - (rows - 1) / 2
    leans = np.linspace(-1.0, 1.0, SEAM_LEANS) * (2 * reach / max(rows, 1))
    paths = np.clip(np.rint(column + leans[:, np.newaxis] * offsets), 1, cols - 1).astype(np.int64)
    crossed = inside[np.arange(rows), paths].sum(axis=1) + SEAM_DRIFT * np.abs(leans) * rows
    return paths[int(np.argmin(crossed))]


def _candidate_mask(
    line: _Line, units: list[_Unit], links: list[bool], start: int, end: int
) -> np.ndarray | None:
    """The 0/255 ink of units start..end as one digit, or None if they cannot be one."""
    if not all(links[start : end - 1]):
        return None
    first, last = units[start], units[end - 1]
    groups = sorted({u.group for u in units[start:end]})
    width = (last.x1 - first.x0) / line.height
    if end - start > 1 and width > MAX_WIDTH:
        return None
    if len(groups) > 2:
        return None
    mask = np.zeros(line.labels.shape, np.uint8)
    if len(groups) == 1:
        group = line.groups[groups[0]]
        window = line.labels[group.y0 : group.y1, group.x0 : group.x1]
        columns = np.arange(group.x0, group.x1)[np.newaxis, :]
        between = (columns >= first.left[:, np.newaxis]) & (columns < last.right[:, np.newaxis])
        inside = np.isin(window, group.labels) & between
        if not (first.whole and last.whole):
            inside = _without_slivers(inside)
        mask[group.y0 : group.y1, group.x0 : group.x1] = inside.astype(np.uint8) * 255
        return mask
    for g in groups:
        group = line.groups[g]
        window = line.labels[group.y0 : group.y1, group.x0 : group.x1]
        piece = np.isin(window, group.labels).astype(np.uint8) * 255
        mask[group.y0 : group.y1, group.x0 : group.x1] |= piece
    return mask


def _without_slivers(inside: np.ndarray) -> np.ndarray:
    """A cut-out digit without the bits of its neighbour's strokes that the cut left on its
    side: pieces holding less than SLIVER of the cut-out's ink. A straight cut cannot part
    strokes that cross, and a neighbour's stroke end makes a 7 read as a 9."""
    count, labels, stats = strokes.components(inside.astype(np.uint8))
    if count < 2:
        return inside
    areas = stats[:, cv2.CC_STAT_AREA]
    keep = np.flatnonzero(areas >= SLIVER * areas.sum()) + 1
    return np.isin(labels, keep)


def _light_line(located: Located, line: _Line) -> LitRegion | None:
    """The row of digits lit at cutting detail in one go: the same lighting and line removal
    as /predict gives one digit, at the digits' own scale, without relighting every cut."""
    if not line.groups:
        return None
    x0 = min(g.x0 for g in line.groups)
    y0 = min(g.y0 for g in line.groups)
    x1 = max(g.x1 for g in line.groups)
    y1 = max(g.y1 for g in line.groups)
    chosen = np.isin(line.labels[y0:y1, x0:x1], [n for g in line.groups for n in g.labels])
    stroke_px = strokes.stroke_width(chosen.astype(np.uint8) * 255)
    return light_region(located, (x0, y0, x1, y1), stroke_px, digit_size=line.height)


def _cut(
    lit: LitRegion | None,
    mask: np.ndarray,
    height: float,
    start: int,
    end: int,
    to_upload: tuple[float, float],
) -> Candidate | None:
    x, y, w, h = cv2.boundingRect(mask)
    if lit is None or w == 0 or (w < MIN_WIDTH * height and h < MIN_WIDTH * height):
        return None
    rows, cols = mask.shape
    box = (max(x - 2, 0), max(y - 2, 0), min(x + w + 2, cols), min(y + h + 2, rows))
    try:
        image = fit_mnist_frame(strokes_in(lit, box, only=mask))
    except NoDigitFound:
        return None
    box_up = _to_upload((x, y, x + w, y + h), to_upload)
    return Candidate(start, end, box_up, image, w / max(height, 1.0), h / max(height, 1.0))


def _cut_cost(line: _Line, left: _Unit, right: _Unit) -> float:
    """What parting ``left`` from ``right`` costs: nothing at a gap; through ink, little in a
    group wider than a digit, more in one that is not, and more for every extra stroke the
    cut crosses there (a cut through a 0 or a 2's loop crosses two)."""
    if left.group != right.group:
        return 0.0
    group = line.groups[left.group]
    base = CUT_COST if group.width <= ONE_DIGIT * line.height else WIDE_CUT_COST
    rows = np.arange(group.y0, group.y1)
    along = np.isin(
        line.labels[rows, np.clip(right.left, 0, line.labels.shape[1] - 1)], group.labels
    )
    crossings = int(along[0]) + int(np.count_nonzero(along[1:] & ~along[:-1]))
    return base + STROKE_CUT_COST * max(crossings - 1, 0)


def _score(candidate: Candidate, confidence: float) -> float:
    wide = max(0.0, candidate.width - WIDE) * WIDE_PENALTY
    short = max(0.0, SHORT - candidate.height) / SHORT * SHORT_PENALTY
    return math.log(max(confidence, 1e-6)) - wide - short


def _to_upload(box: tuple[int, int, int, int], scale: tuple[float, float]) -> Box:
    x0, y0, x1, y1 = box
    left, top = math.floor(x0 * scale[0]), math.floor(y0 * scale[1])
    return Box(left, top, math.ceil(x1 * scale[0]) - left, math.ceil(y1 * scale[1]) - top)
