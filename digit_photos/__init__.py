"""Re-photograph real MNIST digits, deterministically, as the service's users would send them.

``photograph(digit, kind, seed)`` draws a 28x28 MNIST digit (white on black) as dark ink on a
sheet of unevenly lit, noisy paper, scaled up and off-centre, sometimes slightly out of focus,
and encodes it the way ``kind`` says. The same arguments always give the same bytes.

``digit_photos.notebook`` writes the digit with other pens on ruled or squared notebook paper,
with or without a shadow across the page (``NOTEBOOK_KINDS``, which ``photograph`` also takes).
"""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image

from digit_photos.notebook import NOTEBOOK_KINDS, SHADOW_OF_KIND, notebook_photo

KINDS: tuple[str, ...] = ("jpeg", "png", "rgba", "exif", "palette", "gray16", "cmyk")
"""jpeg: colour phone photo. png: the same, lossless RGB. rgba: a transparent drawing canvas
export (black strokes, fully transparent background). exif: a JPEG whose pixels are stored
rotated, with the EXIF orientation tag that turns them upright. palette: 8-bit palette PNG.
gray16: 16-bit greyscale PNG. cmyk: CMYK JPEG, as print workflows write them."""

# exif orientation -> np.rot90 turns (counter-clockwise) that produce the stored pixels
_STORED_TURNS = {3: 2, 6: 1, 8: 3}
_EXIF_ORIENTATION = 0x0112


def photograph(
    digit: np.ndarray, kind: str = "jpeg", seed: int = 0, *, size: tuple[int, int] | None = None
) -> bytes:
    """Encoded bytes of ``digit`` (28x28 uint8, white on black) photographed as ``kind``.

    ``size`` fixes the (width, height) of the frame; by default the width is 400..1000 px
    (280..600 for a canvas) and the height 75..100 % of it.
    """
    if kind in NOTEBOOK_KINDS:
        return notebook_photo(digit, SHADOW_OF_KIND[kind], seed, size=size)
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS + NOTEBOOK_KINDS}")
    rng = np.random.default_rng(seed)
    if kind == "rgba":
        return _encode(Image.fromarray(_canvas(digit, rng, size)), "PNG")
    rgb = _paper_photo(digit, rng, size)
    if kind == "exif":
        orientation = int(rng.choice(list(_STORED_TURNS)))
        stored = np.ascontiguousarray(np.rot90(rgb, _STORED_TURNS[orientation]))
        exif = Image.Exif()
        exif[_EXIF_ORIENTATION] = orientation
        return _encode(Image.fromarray(stored), "JPEG", quality=88, exif=exif.tobytes())
    if kind == "gray16":
        return _encode_png(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257)
    image = Image.fromarray(rgb)
    if kind == "jpeg":
        return _encode(image, "JPEG", quality=int(rng.integers(70, 95)))
    if kind == "png":
        return _encode_png(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if kind == "palette":
        paletted = image.quantize(64, method=Image.Quantize.FASTOCTREE)
        return _encode(paletted, "PNG", compress_level=1)
    return _encode(image.convert("CMYK"), "JPEG", quality=90)


def encode_png(digit: np.ndarray) -> bytes:
    """A plain 8-bit greyscale PNG of ``digit``: the MNIST format itself."""
    return _encode(Image.fromarray(np.ascontiguousarray(digit, dtype=np.uint8)), "PNG")


def _paper_photo(
    digit: np.ndarray, rng: np.random.Generator, size: tuple[int, int] | None
) -> np.ndarray:
    """RGB uint8: warm-tinted paper lit by a gradient, dark ink, sensor noise."""
    # Half the time slightly out of focus: by up to half an MNIST pixel.
    blur = float(rng.uniform(0.2, 0.5)) if rng.random() < 0.5 else 0.0
    coverage = _place(digit, rng, size or _random_size(rng, 400, 1000), blur=blur)
    height, width = coverage.shape
    # Light falls off across the page in a random direction, by up to ~30 % of its brightness.
    angle = rng.uniform(0, 2 * np.pi)
    xs = np.linspace(0, np.cos(angle), width, dtype=np.float32)
    ys = np.linspace(0, np.sin(angle), height, dtype=np.float32)
    ramp = xs[None, :] + ys[:, None]  # spans at most sqrt(2)
    paper = rng.uniform(170, 235) - rng.uniform(15, 45) * (ramp - ramp.min())
    # Sensor noise, a little correlated between neighbours as after demosaicing.
    noise = rng.standard_normal((height // 2 + 1, width // 2 + 1), dtype=np.float32)
    paper += cv2.resize(noise, (width, height)) * rng.uniform(3, 9)
    ink = rng.uniform(15, 70)
    gray = paper + (ink - paper) * coverage
    tint = np.array([1.0, 0.97, 0.9]) * rng.uniform(0.95, 1.05, size=3)
    return cv2.merge([cv2.convertScaleAbs(gray, alpha=float(t)) for t in tint])


def _canvas(
    digit: np.ndarray, rng: np.random.Generator, size: tuple[int, int] | None
) -> np.ndarray:
    """RGBA uint8 of a browser canvas export: black strokes, alpha = ink, the rest transparent."""
    coverage = _place(digit, rng, size or _random_size(rng, 280, 600))
    rgba = np.zeros((*coverage.shape, 4), np.uint8)
    rgba[..., 3] = np.clip(np.rint(coverage * 255), 0, 255).astype(np.uint8)
    return rgba


def _random_size(rng: np.random.Generator, min_width: int, max_width: int) -> tuple[int, int]:
    width = int(rng.integers(min_width, max_width + 1))
    return width, int(width * rng.uniform(0.75, 1.0))


def _place(
    digit: np.ndarray, rng: np.random.Generator, size: tuple[int, int], *, blur: float = 0.0
) -> np.ndarray:
    """Ink coverage in [0, 1] over a ``size`` frame with the digit scaled up, off-centre.

    ``blur`` is a Gaussian sigma in MNIST pixels, applied to the scaled-up digit.
    """
    width, height = size
    # MNIST ink spans 20 of its 28 px: make the ink 80..300 px, keeping the 28 px frame inside.
    ink_side = rng.uniform(80, min(300, height * 20 / 28))
    side = round(ink_side * 28 / 20)
    big = cv2.resize(digit.astype(np.float32) / 255, (side, side), interpolation=cv2.INTER_CUBIC)
    if blur:  # MNIST's 4 px black margins keep the blur inside the square
        big = cv2.GaussianBlur(big, (0, 0), blur * side / 28)
    top = int(rng.integers(0, height - side + 1))
    left = int(rng.integers(0, width - side + 1))
    coverage = np.zeros((height, width), np.float32)
    coverage[top : top + side, left : left + side] = np.clip(big, 0, 1)
    return coverage


def _encode_png(pixels: np.ndarray) -> bytes:
    """PNG by OpenCV without row filters: several times faster than Pillow on noisy photos."""
    options = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE]
    return cv2.imencode(".png", pixels, options)[1].tobytes()


def _encode(image: Image.Image, image_format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()
