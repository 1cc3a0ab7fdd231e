"""Phone photos of MNIST digits written on notebook paper, with or without a shadow.

``notebook_photo(digit, shadow, seed)`` redraws a 28x28 MNIST digit (white on black) with a
pen whose width has nothing to do with MNIST's (a hairline ballpoint to a fat marker: the
digit's skeleton drawn with a round nib), in blue or black ink, on ruled or squared paper
whose lines run across the digit, lit unevenly, optionally with a shadow across the page
(``"hard"``: an edge a pixel or two wide, as from a lamp or the sun; ``"soft"``: a penumbra
tens of pixels wide, as from a hand), seen in slight perspective, and encoded as a JPEG of
300-1200 px. The same arguments always give the same bytes.

Every random choice is drawn from a ``NotebookStyle``. ``TUNED`` is the one the normaliser
was developed against; ``CHECK`` draws from different ranges, colours, paper (dot grids, no
margin line), shadow shapes (curved, two at once) and optics, so that a figure measured on
it says how far the method carries beyond the photos it was tuned on.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

SHADOWS: tuple[str, ...] = ("none", "soft", "hard")
NOTEBOOK_KINDS: tuple[str, ...] = ("notebook", "notebook_soft_shadow", "notebook_hard_shadow")
"""notebook: notebook paper, no shadow. notebook_soft_shadow / notebook_hard_shadow: the same
with a soft- or hard-edged shadow across the page at a random angle."""
SHADOW_OF_KIND = dict(zip(NOTEBOOK_KINDS, SHADOWS, strict=True))

# The page is drawn this much larger than the frame, so the tilted view never leaves it.
_PAGE_MARGIN = 1.4
Range = tuple[float, float]
Colour = tuple[Range, Range, Range]  # RGB reflectance ranges in [0, 1]


@dataclass(frozen=True)
class NotebookStyle:
    """The ranges every random choice of a notebook photo is drawn from."""

    # paper -> probability; "ruled", "squared", "dots" or "plain"
    papers: tuple[tuple[str, float], ...]
    # digit height / line spacing, per paper (the digit spans that many lines or squares)
    digit_per_spacing: tuple[tuple[str, Range], ...]
    line_colours: tuple[Colour, ...]
    line_width_per_spacing: Range
    margin_line: float  # probability of a red margin line on ruled paper
    ink_colours: tuple[Colour, ...]
    pen_width_per_height: Range  # drawn log-uniformly: hairline to marker
    digit_height: Range  # of the frame's shorter side
    width_px: tuple[int, int]
    aspects: tuple[float, ...]  # height / width
    perspective: float  # corner jitter, fraction of the frame
    rotation_deg: float
    shadow_strength: Range  # fraction of the light the shadow takes away
    hard_edge_sigma: Range  # px
    soft_edge_sigma: Range  # px, at a 1000 px frame
    shadow_shapes: tuple[tuple[str, float], ...]  # "edge", "wedge", "blob", "two"
    exposure: Range
    gradient: Range  # light fall-off across the frame
    noise: Range  # sensor noise, grey levels
    blur: Range  # defocus sigma, px at a 1000 px frame
    jpeg_quality: tuple[int, int]


TUNED = NotebookStyle(
    papers=(("ruled", 0.5), ("squared", 0.5)),
    digit_per_spacing=(("ruled", (0.7, 1.6)), ("squared", (1.3, 3.0))),
    line_colours=(
        ((0.50, 0.70), (0.65, 0.82), (0.80, 0.95)),  # light blue
        ((0.55, 0.75), (0.58, 0.78), (0.62, 0.82)),  # grey
    ),
    line_width_per_spacing=(0.015, 0.045),
    margin_line=0.3,
    ink_colours=(
        ((0.08, 0.25), (0.10, 0.30), (0.40, 0.70)),  # blue ballpoint
        ((0.05, 0.18), (0.05, 0.18), (0.06, 0.22)),  # black
    ),
    pen_width_per_height=(0.035, 0.25),
    digit_height=(0.15, 0.5),
    width_px=(300, 1200),
    aspects=(0.75, 1.0, 4 / 3),
    perspective=0.05,
    rotation_deg=4.0,
    shadow_strength=(0.2, 0.6),
    hard_edge_sigma=(0.3, 0.8),
    soft_edge_sigma=(8.0, 25.0),
    shadow_shapes=(("edge", 0.5), ("wedge", 0.5)),
    exposure=(0.75, 1.0),
    gradient=(0.0, 0.25),
    noise=(2.0, 6.0),
    blur=(0.0, 1.0),
    jpeg_quality=(70, 95),
)

CHECK = NotebookStyle(
    papers=(("ruled", 0.35), ("squared", 0.35), ("dots", 0.2), ("plain", 0.1)),
    digit_per_spacing=(("ruled", (0.5, 2.2)), ("squared", (1.0, 4.0)), ("dots", (1.0, 4.0))),
    line_colours=(
        ((0.35, 0.55), (0.55, 0.75), (0.75, 0.92)),  # stronger blue
        ((0.55, 0.75), (0.70, 0.85), (0.55, 0.75)),  # green
        ((0.45, 0.65), (0.45, 0.65), (0.45, 0.65)),  # dark grey
        ((0.70, 0.85), (0.60, 0.75), (0.80, 0.92)),  # lilac
    ),
    line_width_per_spacing=(0.02, 0.07),
    margin_line=0.0,
    ink_colours=(
        ((0.15, 0.35), (0.15, 0.35), (0.50, 0.80)),  # lighter blue gel
        ((0.10, 0.30), (0.05, 0.20), (0.05, 0.25)),  # dark red
        ((0.10, 0.25), (0.10, 0.25), (0.10, 0.25)),  # worn black
    ),
    pen_width_per_height=(0.03, 0.3),
    digit_height=(0.12, 0.6),
    width_px=(320, 1400),
    aspects=(0.75, 0.5625, 4 / 3, 16 / 9),
    perspective=0.08,
    rotation_deg=8.0,
    shadow_strength=(0.15, 0.65),
    hard_edge_sigma=(0.5, 1.2),
    soft_edge_sigma=(5.0, 40.0),
    shadow_shapes=(("edge", 0.3), ("wedge", 0.2), ("blob", 0.3), ("two", 0.2)),
    exposure=(0.55, 1.0),
    gradient=(0.1, 0.4),
    noise=(3.0, 9.0),
    blur=(0.3, 1.5),
    jpeg_quality=(55, 90),
)

STYLES: dict[str, NotebookStyle] = {"tuned": TUNED, "check": CHECK}


def notebook_photo(
    digit: np.ndarray,
    shadow: str = "none",
    seed: int = 0,
    *,
    style: NotebookStyle = TUNED,
    size: tuple[int, int] | None = None,
) -> bytes:
    """JPEG bytes of ``digit`` (28x28 uint8, white on black) written on notebook paper.

    ``shadow`` is ``"none"``, ``"soft"`` or ``"hard"``; ``size`` fixes the (width, height).
    """
    return _encode_jpeg(*render_notebook(digit, shadow, seed, style=style, size=size))


def render_notebook(
    digit: np.ndarray,
    shadow: str = "none",
    seed: int = 0,
    *,
    style: NotebookStyle = TUNED,
    size: tuple[int, int] | None = None,
) -> tuple[np.ndarray, int]:
    """(RGB uint8 photo, JPEG quality) before encoding: what ``notebook_photo`` encodes."""
    if shadow not in SHADOWS:
        raise ValueError(f"unknown shadow {shadow!r}; expected one of {SHADOWS}")
    rng = np.random.default_rng(seed)
    if size is None:
        width = int(rng.integers(style.width_px[0], style.width_px[1] + 1))
        size = (width, max(64, round(width * float(rng.choice(style.aspects)))))
    width, height = size
    scale = max(width, height) / 1000  # optics are specified at a 1000 px frame

    # The page is drawn flat, larger than the frame, then seen through a homography.
    homography = _view(rng, width, height, style)
    page_w, page_h = round(width * _PAGE_MARGIN), round(height * _PAGE_MARGIN)
    digit_h = _uniform(rng, style.digit_height) * min(width, height)
    margin = 0.75 * digit_h
    centre_out = (
        rng.uniform(margin, max(margin, width - margin)),
        rng.uniform(margin, max(margin, height - margin)),
    )
    centre = cv2.perspectiveTransform(np.array([[centre_out]], np.float64), homography)[0, 0]

    paper = _choose(rng, style.papers)
    reflectance = _paper(rng, paper, (page_h, page_w), digit_h, centre, style)
    ink = _pen_strokes(digit, rng, digit_h, style)
    _put_ink(reflectance, ink, centre, _colour(rng, style.ink_colours), rng)

    photo = camera(
        reflectance, homography, (width, height), shadow, centre_out, digit_h, scale, style, rng
    )
    quality = int(rng.integers(style.jpeg_quality[0], style.jpeg_quality[1] + 1))
    return np.clip(np.rint(photo), 0, 255).astype(np.uint8), quality


def camera(
    reflectance: np.ndarray,
    homography: np.ndarray,
    size: tuple[int, int],
    shadow: str,
    shadow_at: tuple[float, float],
    digit_h: float,
    scale: float,
    style: NotebookStyle,
    rng: np.random.Generator,
) -> np.ndarray:
    """float32 RGB 0..255 of the page as the phone sees it: the page through ``homography``
    (frame -> page), lit unevenly, a shadow passing near ``shadow_at`` unless ``shadow`` is
    "none", sensor noise, maybe out of focus. Shared with ``digit_photos.numbers``."""
    width, height = size
    photo = cv2.warpPerspective(
        reflectance,
        homography,
        (width, height),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REFLECT,
    )
    light = _lighting(rng, width, height, style)
    if shadow != "none":
        light *= 1 - _shadow(rng, shadow, width, height, shadow_at, digit_h, scale, style)
    photo *= light[..., None] * 255
    noise = rng.standard_normal((height // 2 + 1, width // 2 + 1), dtype=np.float32)
    photo += (cv2.resize(noise, (width, height)) * _uniform(rng, style.noise))[..., None]
    blur = _uniform(rng, style.blur) * scale
    if blur > 0.2:
        photo = cv2.GaussianBlur(photo, (0, 0), blur)
    return photo


# --- the page -------------------------------------------------------------------------------


def _paper(
    rng: np.random.Generator,
    paper: str,
    shape: tuple[int, int],
    digit_h: float,
    centre: np.ndarray,
    style: NotebookStyle,
) -> np.ndarray:
    """float32 RGB reflectance of a sheet: tinted, slightly textured, with its printed lines."""
    height, width = shape
    tint = np.array([rng.uniform(0.9, 0.98), rng.uniform(0.88, 0.97), rng.uniform(0.82, 0.95)])
    texture = rng.standard_normal((height // 4 + 1, width // 4 + 1), dtype=np.float32)
    grain = cv2.resize(texture, (width, height))
    grain = cv2.addWeighted(grain, 0.012, grain, 0, 1.0)  # 1 + 1.2 % texture
    cover = np.zeros((height, width), np.float32)
    colour = np.ones(3, np.float32)
    margin: np.ndarray | None = None
    if paper != "plain":
        per_spacing = dict(style.digit_per_spacing)[paper]
        spacing = digit_h / _uniform(rng, per_spacing)
        line_w = max(0.8, spacing * _uniform(rng, style.line_width_per_spacing))
        colour = _colour(rng, style.line_colours)
        # Half the time the digit sits on a line, as people write; otherwise anywhere.
        if rng.random() < 0.5:
            phase = centre[1] + digit_h / 2 + rng.uniform(-0.1, 0.1) * digit_h
        else:
            phase = rng.uniform(0, spacing)
        ys = np.arange(height, dtype=np.float32)
        xs = np.arange(width, dtype=np.float32)
        if paper == "dots":
            dot_w = max(1.2, 1.5 * line_w)
            rows = _stripes(ys, phase, spacing, dot_w)
            cols = _stripes(xs, rng.uniform(0, spacing), spacing, dot_w)
            cover = rows[:, None] * cols[None, :]
        else:
            cover[:] = _stripes(ys, phase, spacing, line_w)[:, None]
            if paper == "squared":
                vertical = _stripes(xs, rng.uniform(0, spacing), spacing, line_w)
                cover = np.maximum(cover, vertical[None, :])
        if paper == "ruled" and rng.random() < style.margin_line:
            margin = _stripes(xs, rng.uniform(0, width), 10 * width, 1.5 * line_w)
    red = (0.85, 0.45, 0.5)
    channels = []
    for c in range(3):
        # reflectance = tint x grain x (1 - line cover x (1 - line colour)) [x margin line]
        factor = cv2.addWeighted(cover, -(1 - float(colour[c])), cover, 0, 1.0)
        if margin is not None:
            factor *= (1 - margin * (1 - red[c]))[None, :]
        channels.append(cv2.multiply(factor, grain, scale=float(tint[c])))
    return cv2.merge(channels)


def _stripes(coord: np.ndarray, phase: float, spacing: float, line_w: float) -> np.ndarray:
    """Anti-aliased coverage of lines ``line_w`` wide every ``spacing`` px, one at ``phase``."""
    offset = np.abs(((coord - phase + spacing / 2) % spacing) - spacing / 2)
    return np.clip(line_w / 2 + 0.5 - offset, 0, 1).astype(np.float32)


def _pen_strokes(
    digit: np.ndarray, rng: np.random.Generator, digit_h: float, style: NotebookStyle
) -> np.ndarray:
    """float32 ink coverage of ``digit`` redrawn about ``digit_h`` tall with another pen.

    The digit is upsampled, and its strokes are made thicker (a dilation by a disk) or
    thinner (an erosion, never below the digit's one-pixel skeleton drawn with the new pen,
    so no stroke breaks) until they are the pen's width, drawn from the style. The writer's
    shapes are kept; MNIST's weight is not, which is what a different pen changes.
    """
    side = round(1.4 * digit_h)  # the 28 px frame around the 20 px digit
    px = side / 28  # output px per MNIST px
    big = cv2.resize(digit.astype(np.float32) / 255, (side, side), interpolation=cv2.INTER_CUBIC)
    shape = np.clip((big - 0.5) * 4 + 0.5, 0, 1)  # crisp edges at MNIST's half-ink contour
    lo, hi = style.pen_width_per_height
    pen = float(np.exp(rng.uniform(np.log(lo), np.log(hi)))) * digit_h
    native = _width(shape > 0.5)
    pad = round(pen + 4)
    shape = np.pad(shape, pad)
    radius = round(abs(pen - native) / 2)
    if radius >= 1:
        disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1,) * 2)
        if pen > native:
            shape = cv2.dilate(shape, disk)
        else:
            skeleton = _skeleton_drawn(digit, px, pen, shape.shape[0], pad)
            shape = np.maximum(cv2.erode(shape, disk), skeleton)
    if pen < 1:  # a hairline: thinner than a pixel, so fainter
        shape *= pen
    return shape


def _width(mask: np.ndarray) -> float:
    """Typical stroke width of a binary image: 4 x (mean distance to the outline - 1/2)."""
    distance = cv2.distanceTransform(np.pad(mask.astype(np.uint8), 1), cv2.DIST_L2, cv2.DIST_MASK_5)
    inside = distance[distance > 0]
    return max(4 * (float(inside.mean()) - 0.5), 1.0) if inside.size else 1.0


def _skeleton_drawn(digit: np.ndarray, px: float, pen: float, side: int, pad: int) -> np.ndarray:
    """The digit's skeleton (found at 4x) drawn segment by segment with an anti-aliased nib."""
    up = 4
    big = cv2.resize(digit, (28 * up, 28 * up), interpolation=cv2.INTER_CUBIC)
    ys, xs = np.nonzero(_thin(big > 127))
    canvas = np.zeros((side, side), np.uint8)
    shift = 4  # cv2 drawing with 4 fractional bits
    step = px / up * (1 << shift)
    offset = (pad + px / up / 2) * (1 << shift)
    points = {(int(y), int(x)) for y, x in zip(ys, xs, strict=True)}
    thickness = max(1, round(pen))
    for y, x in points:
        start = (round(x * step + offset), round(y * step + offset))
        neighbours = [(y, x + 1), (y + 1, x - 1), (y + 1, x), (y + 1, x + 1)]
        for ny, nx in [n for n in neighbours if n in points] or [(y, x)]:
            end = (round(nx * step + offset), round(ny * step + offset))
            cv2.line(canvas, start, end, 255, thickness, cv2.LINE_AA, shift)
    return canvas.astype(np.float32) / 255


def _thin(mask: np.ndarray) -> np.ndarray:
    """One-pixel skeleton of a binary image (Zhang-Suen thinning, vectorised)."""
    image = np.pad(mask.astype(np.uint8), 1)
    while True:
        changed = False
        for step in (0, 1):
            p = image
            n = [
                p[:-2, 1:-1],  # P2 north
                p[:-2, 2:],  # P3
                p[1:-1, 2:],  # P4 east
                p[2:, 2:],  # P5
                p[2:, 1:-1],  # P6 south
                p[2:, :-2],  # P7
                p[1:-1, :-2],  # P8 west
                p[:-2, :-2],  # P9
            ]
            count = sum(n[i].astype(np.int32) for i in range(8))
            transitions = sum(
                ((n[i] == 0) & (n[(i + 1) % 8] == 1)).astype(np.int32) for i in range(8)
            )
            if step == 0:
                a, b = n[0] * n[2] * n[4], n[2] * n[4] * n[6]
            else:
                a, b = n[0] * n[2] * n[6], n[0] * n[4] * n[6]
            remove = (
                (p[1:-1, 1:-1] == 1)
                & (count >= 2)
                & (count <= 6)
                & (transitions == 1)
                & (a == 0)
                & (b == 0)
            )
            if remove.any():
                image[1:-1, 1:-1][remove] = 0
                changed = True
        if not changed:
            return image[1:-1, 1:-1].astype(bool)


def _put_ink(
    reflectance: np.ndarray,
    coverage: np.ndarray,
    centre: np.ndarray,
    colour: np.ndarray,
    rng: np.random.Generator,
) -> None:
    """Multiply ``coverage`` of ``colour`` into the page around ``centre``, in place.

    Ballpoint ink is uneven: its density varies slowly along the strokes.
    """
    side = coverage.shape[0]
    density = rng.standard_normal((4, 4)).astype(np.float32)
    density = 1 - 0.2 * np.abs(cv2.resize(density, (side, side), interpolation=cv2.INTER_CUBIC))
    coverage = coverage * np.clip(density, 0.6, 1) * rng.uniform(0.85, 1.0)
    top, left = round(centre[1] - side / 2), round(centre[0] - side / 2)
    height, width = reflectance.shape[:2]
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + side, height), min(left + side, width)
    if y1 <= y0 or x1 <= x0:
        return
    patch = coverage[y0 - top : y1 - top, x0 - left : x1 - left, None]
    reflectance[y0:y1, x0:x1] *= 1 - patch * (1 - colour)


# --- the camera -----------------------------------------------------------------------------


def _view(rng: np.random.Generator, width: int, height: int, style: NotebookStyle) -> np.ndarray:
    """Homography from frame to page pixels: a slight rotation and perspective."""
    corners = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
    angle = np.deg2rad(rng.uniform(-style.rotation_deg, style.rotation_deg))
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    centred = corners - np.array([width / 2, height / 2], np.float32)
    jitter = rng.uniform(-style.perspective, style.perspective, (4, 2)) * [width, height]
    page_centre = np.array([width, height]) * _PAGE_MARGIN / 2
    on_page = (centred @ rotation.T + jitter + page_centre).astype(np.float32)
    return cv2.getPerspectiveTransform(corners, on_page)


def _lighting(
    rng: np.random.Generator, width: int, height: int, style: NotebookStyle
) -> np.ndarray:
    """float32 illumination in (0, 1]: exposure, a gradient, a little vignetting."""
    angle = rng.uniform(0, 2 * np.pi)
    xs = np.linspace(-0.5, 0.5, width, dtype=np.float32)
    ys = np.linspace(-0.5, 0.5, height, dtype=np.float32)
    ramp = np.cos(angle) * xs[None, :] + np.sin(angle) * ys[:, None]
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    vignette = 1 - rng.uniform(0, 0.15) * (xs[None, :] ** 2 + ys[:, None] ** 2) * 2
    light = _uniform(rng, style.exposure) * (1 - _uniform(rng, style.gradient) * ramp) * vignette
    return light.astype(np.float32)


def _shadow(
    rng: np.random.Generator,
    kind: str,
    width: int,
    height: int,
    centre: tuple[float, float],
    digit_h: float,
    scale: float,
    style: NotebookStyle,
) -> np.ndarray:
    """float32 fraction of light taken away: a shape near the digit, with a hard or soft edge.

    Its edge passes near the digit (through it or just past it), where a shadow hurts.
    """
    shape = _choose(rng, style.shadow_shapes)
    count = 2 if shape == "two" else 1
    total = np.zeros((height, width), np.float32)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    for _ in range(count):
        part = "edge" if shape == "two" else shape
        mask = _shadow_shape(rng, part, xs, ys, centre, digit_h)
        if kind == "hard":
            sigma = _uniform(rng, style.hard_edge_sigma)
        else:
            sigma = _uniform(rng, style.soft_edge_sigma) * scale
        mask = _blur(mask, sigma)
        total = 1 - (1 - total) * (1 - _uniform(rng, style.shadow_strength) * mask)
    return total


def _shadow_shape(
    rng: np.random.Generator,
    shape: str,
    xs: np.ndarray,
    ys: np.ndarray,
    centre: tuple[float, float],
    digit_h: float,
) -> np.ndarray:
    """0/1 float32 mask: a half-plane, a wedge (two half-planes), or an ellipse."""

    def near_digit() -> tuple[float, float]:
        return (
            centre[0] + rng.uniform(-0.8, 0.8) * digit_h,
            centre[1] + rng.uniform(-0.8, 0.8) * digit_h,
        )

    def half_plane() -> np.ndarray:
        x0, y0 = near_digit()
        angle = rng.uniform(0, 2 * np.pi)
        return (np.cos(angle) * (xs - x0) + np.sin(angle) * (ys - y0)) > 0

    if shape == "blob":
        x0, y0 = near_digit()
        a, b = rng.uniform(0.6, 2.5, 2) * digit_h
        angle = rng.uniform(0, np.pi)
        u = np.cos(angle) * (xs - x0) + np.sin(angle) * (ys - y0)
        v = -np.sin(angle) * (xs - x0) + np.cos(angle) * (ys - y0)
        # the ellipse's edge, not its centre, near the digit
        u -= np.sign(rng.uniform(-1, 1)) * a
        return ((u / a) ** 2 + (v / b) ** 2 < 1).astype(np.float32)
    mask = half_plane()
    if shape == "wedge":
        mask &= half_plane()
    return mask.astype(np.float32)


# --- helpers --------------------------------------------------------------------------------


def _blur(mask: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur; a wide one on a quarter-size copy, which looks the same and costs 1/16."""
    if sigma < 4:
        return cv2.GaussianBlur(mask, (0, 0), sigma)
    height, width = mask.shape
    small = cv2.resize(mask, (width // 4 + 1, height // 4 + 1), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma / 4)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def _uniform(rng: np.random.Generator, bounds: Range) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _choose(rng: np.random.Generator, weighted: tuple[tuple[str, float], ...]) -> str:
    names = [name for name, _ in weighted]
    weights = np.array([weight for _, weight in weighted], np.float64)
    return names[int(rng.choice(len(names), p=weights / weights.sum()))]


def _colour(rng: np.random.Generator, colours: tuple[Colour, ...]) -> np.ndarray:
    ranges = colours[int(rng.integers(len(colours)))]
    return np.array([rng.uniform(lo, hi) for lo, hi in ranges], np.float32)


def _encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()
