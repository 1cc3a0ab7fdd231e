"""Uploaded bytes -> a 2-D uint8 greyscale picture, safely: the hostile-input half of imaging.

Untrusted bytes are sniffed (``sniff``) before any decoder sees them: empty files, documents
and unknown formats are refused from their first bytes, and a PNG's pixel count from its
header, so that such uploads are turned away without waiting for a decoding thread. Only the
six raster formats' Pillow plugins ever parse an upload; the pixel count is checked again from
every header before a pixel is decoded; EXIF orientation, transparency and 16-bit or float
modes are resolved here, so normalisation (``app.imaging.normalize``) gets plain luminance.

Every function is pure; failures are the typed errors of ``app.imaging.errors``.
"""

from __future__ import annotations

import io
import re
import struct
import warnings
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageOps

from app.imaging.errors import ImageError, ImageTooLarge, InvalidImage, UnsupportedMediaType

DEFAULT_MAX_PIXELS = 40_000_000
# JPEGs are decoded at 1/2, 1/4 or 1/8 scale straight from the DCT while the result stays at
# least this long, which is several times cheaper than decoding full size and shrinking. Half
# of normalisation's working size (app.imaging.normalize.WORK_SIZE): a digit is cut from a
# picture about that long, and a smaller decode would lose detail it uses.
DRAFT_MIN_SIDE = 256

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"IEND\xaeB`\x82"  # the IEND chunk with its CRC: the file is complete
_SMALL_PNG_PIXELS = 64 * 64
_RASTER_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (_PNG_SIGNATURE, "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "TIFF"),  # BigTIFF
    (b"MM\x00+", "TIFF"),
)
_DOCUMENT_SIGNATURES = (b"%PDF", b"%!PS")
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_SNIFF_BYTES = 512


@dataclass(frozen=True, slots=True)
class Sniffed:
    """What the first bytes of an upload say: the Pillow plugin that may decode it, and for a
    PNG its (width, height) from the header (None for other formats: their headers are read
    by Pillow when decoding)."""

    format: str
    size: tuple[int, int] | None

    @property
    def pixels(self) -> int | None:
        return None if self.size is None else self.size[0] * self.size[1]


def sniff(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Sniffed:
    """The upload's format and, for a PNG, its size; or the ImageError its first bytes justify.

    Empty files, text, documents, unknown formats and PNGs whose header claims more than
    ``max_pixels`` are refused here, in microseconds, so the service can refuse them before
    they queue for a decoding thread. The header is read once: decoding takes the result.
    """
    image_format = sniff_format(data)
    size = png_size(data) if image_format == "PNG" else None
    if size is not None:
        _check_pixels(*size, max_pixels)
    return Sniffed(image_format, size)


def decode_grayscale(
    data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, sniffed: Sniffed | None = None
) -> np.ndarray:
    """The upload as a 2-D uint8 luminance picture, upright per its EXIF."""
    return decode_grayscale_scaled(data, max_pixels, sniffed)[0]


def decode_grayscale_scaled(
    data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, sniffed: Sniffed | None = None
) -> tuple[np.ndarray, float]:
    """``decode_grayscale``'s picture, and how many of the upload's (upright) pixels each of
    its pixels spans: a JPEG may be decoded at 1/2-1/8 scale, and /read's boxes are given in
    the upload's own pixels. ``sniffed`` is ``sniff``'s answer when the caller has it."""
    sniffed = sniffed or sniff(data, max_pixels=max_pixels)
    gray = _decode_small_grey_png(data, max_pixels, sniffed)
    if gray is not None:
        return gray, 1.0
    image, scale = _load_image(data, max_pixels, sniffed.format)
    return to_grayscale(image), scale


def load_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode the first frame of a PNG, JPEG, WebP, BMP, GIF or TIFF, upright per its EXIF.

    The size is checked from the header before any pixel is decoded. Colour JPEGs come back
    greyscale and possibly at 1/2-1/8 scale (never below ``DRAFT_MIN_SIDE``): the digit needs
    neither colour nor full resolution. Only ``app.imaging.errors`` exceptions leave this function.
    """
    return _load_image(data, max_pixels, sniff(data, max_pixels=max_pixels).format)[0]


def _load_image(data: bytes, max_pixels: int, image_format: str) -> tuple[Image.Image, float]:
    """``load_image``'s image, and how many upload pixels each of its pixels spans."""
    try:
        # Pillow warns (and at twice the limit raises) about decompression bombs on open; both
        # must become ImageTooLarge, not a log line. catch_warnings swaps the process-wide
        # filter list; two threads racing here can at worst leave this same filter installed.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=(image_format,))
            _check_pixels(*image.size, max_pixels)
            full_width = image.size[0]
            if image_format == "JPEG":
                _draft_greyscale(image)
            image.load()
            scale = full_width / image.size[0]
            ImageOps.exif_transpose(image, in_place=True)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge() from exc
    except Exception as exc:  # Pillow signals corrupt data with many unrelated types
        raise InvalidImage(
            f"The upload looks like {image_format} but could not be decoded: it may be "
            "truncated or corrupt."
        ) from exc
    return image, scale


def to_grayscale(image: Image.Image) -> np.ndarray:
    """Return a 2-D uint8 array of luminance for any Pillow mode.

    Transparency is flattened onto a background that contrasts the opaque strokes, so a
    drawing exported from a transparent canvas stays a drawing whatever colour its ink is.
    Wide integer and float modes are scaled by their nominal range, not stretched per image,
    so a blank 16-bit scan stays blank. A decoded image whose metadata Pillow cannot convert
    (a malformed ``tRNS`` chunk, found by make fuzz) is an InvalidImage like any corrupt file.
    """
    try:
        return _luminance(image)
    except (ValueError, TypeError, OSError) as exc:
        raise InvalidImage(
            "The image could not be converted to greyscale: it may be corrupt."
        ) from exc


def _luminance(image: Image.Image) -> np.ndarray:
    mode = image.mode
    if mode == "L" and "transparency" not in image.info:
        return np.asarray(image)
    if mode in ("LA", "La", "PA", "RGBA", "RGBa") or "transparency" in image.info:
        rgba = np.asarray(image.convert("RGBA"))
        return _flatten_alpha(cv2.cvtColor(rgba, cv2.COLOR_RGBA2GRAY), rgba[..., 3])
    if mode.startswith("I") or mode == "F":
        return _scale_to_uint8(np.asarray(image), sixteen_bit=mode.startswith("I;16"))
    try:
        return np.asarray(image.convert("L"))
    except ValueError:  # modes without a direct conversion (LAB, HSV)
        return np.asarray(image.convert("RGB").convert("L"))


def _decode_small_grey_png(data: bytes, max_pixels: int, sniffed: Sniffed) -> np.ndarray | None:
    """The pixels of a small, complete, plain 8-bit greyscale PNG (MNIST's format), else None.

    Pillow has a fixed cost per PNG several times OpenCV's, and for a 28x28 upload that is
    most of the request. Anything less plain (colour, 16 bit, transparency, an EXIF
    orientation, a missing IEND) takes the Pillow path, which also owns the error messages.
    """
    size = sniffed.size
    if size is None or not data.endswith(_PNG_END):
        return None
    width, height = size
    depth_and_colour_type = data[24:26]
    if width * height > min(_SMALL_PNG_PIXELS, max_pixels) or depth_and_colour_type != b"\x08\x00":
        return None
    if b"tRNS" in data or b"eXIf" in data or not _png_chunks_fit(data):
        return None
    gray = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    return gray if gray is not None and gray.shape == (height, width) else None


def _png_chunks_fit(data: bytes) -> bool:
    """True when every chunk's declared length lies inside ``data``.

    OpenCV's PNG reader allocates a chunk's declared length before reading it: a 254-byte
    upload claiming a 4 GB IDAT made it allocate 4 GB (found by tests/hardening). Pillow reads
    such a file in bounded pieces, so anything that does not add up goes that way instead.
    """
    pos, end = 8, len(data)
    while pos + 12 <= end:
        pos += 12 + int.from_bytes(data[pos : pos + 4], "big")  # length, type, data, CRC
    return pos == end


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"The image is {width}x{height} pixels; at most {max_pixels:,} are accepted."
        )


def _looks_like_text(head: bytes) -> bool:
    """True for UTF-8 without control characters: SVG, HTML, XML, JSON, CSV, prose."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not just a character cut in two at the sniff limit
            return False
        text = head[: exc.start].decode("utf-8")
    return bool(text.strip()) and _CONTROL_CHARS.search(text) is None


def _draft_greyscale(image: Image.Image) -> None:
    """Ask libjpeg for luma only, at the smallest DCT scale that keeps DRAFT_MIN_SIDE."""
    width, height = image.size
    scale = DRAFT_MIN_SIDE / max(width, height)
    image.draft("L", (max(1, int(width * scale)), max(1, int(height * scale))))


def _flatten_alpha(luma: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Composite over white if the opaque strokes are dark, over black if they are light.

    When most of the picture is opaque it is a photo with transparent margins rather than
    strokes, and the margins take the picture's own mean level so they do not look like ink.
    """
    if cv2.minMaxLoc(alpha)[0] == 255:
        return luma
    opaque = cv2.threshold(alpha, 127, 255, cv2.THRESH_BINARY)[1]
    coverage = cv2.countNonZero(opaque) / opaque.size
    if coverage == 0:
        return np.full_like(luma, 255)  # nothing drawn: a blank canvas
    stroke_level = cv2.mean(luma, mask=opaque)[0]
    contrasting = 255.0 if stroke_level < 128 else 0.0
    background = stroke_level if coverage > 0.5 else contrasting
    weight = alpha.astype(np.float32) / np.float32(255)
    blended = background + (luma.astype(np.float32) - background) * weight
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def _scale_to_uint8(pixels: np.ndarray, *, sixteen_bit: bool) -> np.ndarray:
    """Map 16-bit, 32-bit and float samples to 0..255 by the range their values imply."""
    values = pixels.astype(np.float32)
    if sixteen_bit:
        top = 65535.0
    else:
        low, high = float(values.min()), float(values.max())
        if low >= 0 and high <= 1 and pixels.dtype.kind == "f":
            top = 1.0
        elif low >= 0 and high <= 255:
            top = 255.0
        elif low >= 0 and high <= 65535:
            top = 65535.0
        else:  # arbitrary range: stretch it
            values -= low
            top = max(high - low, 1e-12)
    return np.clip(np.rint(values * (255 / top)), 0, 255).astype(np.uint8)


def png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's header, or None if ``data`` does not start like a PNG."""
    if len(data) < 24 or not data.startswith(_PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def sniff_format(data: bytes) -> str:
    """Name the Pillow plugin for ``data``, so that only that decoder ever sees it.

    Raises InvalidImage (empty, unknown) or UnsupportedMediaType (a document) from the first
    bytes alone.

    Restricting Pillow to six formats keeps rarely used (and Ghostscript-backed) decoders
    away from untrusted uploads, and lets documents be refused as 415 rather than 400.
    """
    if not data:
        raise InvalidImage("The upload is empty.")
    head = data[:_SNIFF_BYTES]
    if head.startswith(_DOCUMENT_SIGNATURES) or head[4:8] == b"ftyp" or _looks_like_text(head):
        raise UnsupportedMediaType()
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    for signature, image_format in _RASTER_SIGNATURES:
        if head.startswith(signature):
            return image_format
    raise InvalidImage("The upload is not a PNG, JPEG, WebP, BMP, GIF or TIFF image.")
