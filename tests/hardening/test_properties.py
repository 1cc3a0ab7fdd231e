"""Properties of app/imaging over generated images: a model input or a typed error, always.

Whatever a client uploads (any Pillow mode a file can carry, any size up to a bound, any
content: blank, all ink, noise, one pixel, a line along the border, a real digit, and bytes
of a valid file mangled) the result is a (28, 28, 1) float32 array in [0, 1] or one of the
``app.imaging.errors`` ImageError types, which the API turns into 4xx. Anything else would be a 500.

Examples are derandomised and bounded so the suite runs in seconds and the same on every run;
the open-ended search is ``make fuzz`` (atheris over the same entry point).
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from app.imaging.decode import to_grayscale
from app.imaging.errors import ImageError, ImageTooLarge, InvalidImage, NoDigitFound
from app.imaging.normalize import normalize_digit
from app.imaging.prepare import preprocess_image, preprocess_naive

# Pillow warns about the corrupt metadata the mangling produces; that is not a failure.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL")

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "mnist_sample.npz"
with np.load(SAMPLE) as _sample:
    DIGITS = _sample["x_test"][:20]

MAX_SIDE = 512  # big enough for every shrink path (WORK_SIZE, FIND_SIZE), small enough to be fast

# Which formats carry each mode (to the extent the format can: BMP flattens RGBA to RGB).
FORMATS: dict[str, tuple[str, ...]] = {
    "1": ("PNG", "BMP", "TIFF", "GIF"),
    "L": ("PNG", "JPEG", "BMP", "TIFF", "WEBP", "GIF"),
    "L+transparency": ("PNG",),
    "LA": ("PNG", "TIFF", "WEBP"),
    "P": ("PNG", "BMP", "TIFF", "GIF"),
    "P+transparency": ("PNG", "GIF"),
    "RGB": ("PNG", "JPEG", "BMP", "TIFF", "WEBP"),
    "RGBA": ("PNG", "TIFF", "WEBP"),
    "I;16": ("PNG", "TIFF"),
    "CMYK": ("JPEG", "TIFF"),
}

EXAMPLES = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def assert_model_input(x: np.ndarray) -> None:
    assert x.shape == (28, 28, 1)
    assert x.dtype == np.float32
    assert np.isfinite(x).all()
    assert x.min() >= 0.0
    assert x.max() <= 1.0


# --- strategies -------------------------------------------------------------------------------

sides = st.one_of(st.integers(1, 8), st.integers(1, 64), st.integers(1, MAX_SIDE))
levels = st.integers(0, 255)


@st.composite
def pictures(draw: st.DrawFn) -> np.ndarray:
    """A 2-D uint8 picture: the content cases the issue names, and a real digit."""
    height, width = draw(sides), draw(sides)
    kind = draw(st.sampled_from(["blank", "ink", "noise", "pixel", "border", "digit", "drawn"]))
    background = draw(levels)
    picture = np.full((height, width), background, np.uint8)
    if kind == "ink":
        picture[:] = draw(st.sampled_from([0, 255]))
    elif kind == "noise":
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        picture = rng.integers(0, 256, (height, width), dtype=np.uint8)
    elif kind == "pixel":
        picture[draw(st.integers(0, height - 1)), draw(st.integers(0, width - 1))] = draw(levels)
    elif kind == "border":
        edge = draw(st.sampled_from(["top", "bottom", "left", "right"]))
        thickness = draw(st.integers(1, 3))
        ink = draw(levels)
        rows = {"top": np.s_[:thickness], "bottom": np.s_[-thickness:]}
        columns = {"left": np.s_[:, :thickness], "right": np.s_[:, -thickness:]}
        picture[rows.get(edge) or columns[edge]] = ink
    elif kind == "digit":
        digit = DIGITS[draw(st.integers(0, len(DIGITS) - 1))]
        if draw(st.booleans()):
            digit = 255 - digit  # dark on light, as on paper
        picture = cv2.resize(digit, (width, height), interpolation=cv2.INTER_AREA)
    elif kind == "drawn":
        picture = draw(hnp.arrays(np.uint8, (min(height, 16), min(width, 16)), elements=levels))
    return np.ascontiguousarray(picture)


@st.composite
def alphas(draw: st.DrawFn, picture: np.ndarray) -> np.ndarray:
    kind = draw(st.sampled_from(["opaque", "clear", "ink", "noise", "one opaque pixel"]))
    if kind == "opaque":
        return np.full_like(picture, 255)
    if kind == "clear":
        return np.zeros_like(picture)
    if kind == "ink":  # a canvas export: alpha is the stroke
        return 255 - picture
    if kind == "noise":
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        return rng.integers(0, 256, picture.shape, dtype=np.uint8)
    alpha = np.zeros_like(picture)
    alpha[
        draw(st.integers(0, picture.shape[0] - 1)), draw(st.integers(0, picture.shape[1] - 1))
    ] = 255
    return alpha


def as_mode(picture: np.ndarray, mode: str, alpha: np.ndarray, tint: tuple[float, float, float]):
    """``picture`` as a Pillow image of ``mode``, and the save options that keep its transparency."""
    grey = Image.fromarray(picture)
    rgb = Image.fromarray(
        np.clip(picture[..., np.newaxis] * np.array(tint), 0, 255).astype(np.uint8)
    )
    if mode == "1":
        return grey.convert("1"), {}
    if mode == "L":
        return grey, {}
    if mode == "L+transparency":
        return grey, {"transparency": int(picture[0, 0])}
    if mode == "LA":
        return Image.merge("LA", (grey, Image.fromarray(alpha))), {}
    if mode in ("P", "P+transparency"):
        paletted = rgb.quantize(16)
        if mode == "P":
            return paletted, {}
        return paletted, {"transparency": int(np.asarray(paletted)[0, 0])}
    if mode == "RGB":
        return rgb, {}
    if mode == "RGBA":
        return Image.merge("RGBA", (*rgb.split(), Image.fromarray(alpha))), {}
    if mode == "I;16":
        return Image.fromarray(picture.astype(np.uint16) * 257), {}
    assert mode == "CMYK"
    return rgb.convert("CMYK"), {}


@st.composite
def uploads(draw: st.DrawFn) -> tuple[bytes, str, str, tuple[int, int]]:
    """(file bytes, mode, format, (width, height)) of a generated picture."""
    picture = draw(pictures())
    mode = draw(st.sampled_from(sorted(FORMATS)))
    image_format = draw(st.sampled_from(FORMATS[mode]))
    tint = tuple(draw(st.floats(0.0, 1.0)) for _ in range(3))
    image, options = as_mode(picture, mode, draw(alphas(picture)), tint)
    if image_format == "JPEG":
        options["quality"] = draw(st.integers(5, 95))
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue(), mode, image_format, image.size


# --- properties -------------------------------------------------------------------------------


@EXAMPLES
@given(upload=uploads())
def test_any_image_gives_a_model_input_or_a_typed_error(upload) -> None:
    data, _mode, _format, _size = upload
    for preprocess in (preprocess_image, preprocess_naive):
        try:
            x = preprocess(data)
        except ImageError:
            continue
        assert_model_input(x)


@EXAMPLES
@given(upload=uploads(), max_pixels=st.integers(1, MAX_SIDE * MAX_SIDE))
def test_more_pixels_than_allowed_is_always_image_too_large(upload, max_pixels: int) -> None:
    data, _mode, _format, (width, height) = upload
    assume(width * height > max_pixels)
    with pytest.raises(ImageTooLarge):
        preprocess_image(data, max_pixels=max_pixels)


@EXAMPLES
@given(upload=uploads(), cuts=st.lists(st.tuples(st.integers(0, 2**20), levels), max_size=8))
def test_mangled_files_give_a_model_input_or_a_typed_error(
    upload,
    cuts,
) -> None:
    """Bytes overwritten, and the file cut short, wherever hypothesis likes."""
    data = bytearray(upload[0])
    for position, value in cuts:
        data[position % len(data)] = value
    for end in (len(data), len(data) // 2, 12):
        try:
            x = preprocess_image(bytes(data[:end]))
        except ImageError:
            continue
        assert_model_input(x)


@EXAMPLES
@given(
    data=st.binary(max_size=2048),
    head=st.sampled_from(
        [
            b"",
            b"\x89PNG\r\n\x1a\n",
            b"\xff\xd8\xff",
            b"GIF89a",
            b"BM",
            b"II*\x00",
            b"MM\x00*",
            b"II+\x00",
            b"RIFF\x00\x00\x00\x00WEBPVP8 ",
            b"<svg",
            b"%PDF",
            b"\xef\xbb\xbf",
        ]
    ),
)
def test_arbitrary_bytes_behind_any_signature_are_a_typed_error(data: bytes, head: bytes) -> None:
    try:
        x = preprocess_image(head + data)
    except ImageError:
        return
    assert_model_input(x)


@EXAMPLES
@given(picture=pictures())
def test_normalize_digit_finds_a_digit_or_says_there_is_none(picture: np.ndarray) -> None:
    try:
        x = normalize_digit(picture)
    except NoDigitFound:
        return
    assert x.shape == (28, 28)
    assert_model_input(x[..., np.newaxis])
    assert x.max() > 0  # a found digit has ink


# Every mode Pillow can hold, not only those the six decoders produce.
ALL_MODES = [
    *("1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"),
    *("I", "I;16", "I;16B", "I;16L", "F"),
    "La",
]


@pytest.mark.parametrize("mode", ALL_MODES)
@settings(max_examples=15, deadline=None, derandomize=True, database=None)
@given(picture=pictures())
def test_to_grayscale_gives_2d_uint8_of_the_same_size_for_every_mode(
    mode: str, picture: np.ndarray
) -> None:
    image = Image.fromarray(picture).convert("RGBA" if mode in ("PA", "RGBa", "La") else "L")
    if mode in ("I", "F"):
        image = image.convert(mode)
    elif mode.startswith("I;16"):
        image = Image.fromarray(picture.astype(np.uint16) * 257).convert(mode)
    else:
        image = (
            image.convert(mode)
            if mode not in ("LAB", "HSV")
            else image.convert("RGB").convert(mode)
        )
    if mode == "La":  # Pillow converts premultiplied La to nothing: a clean 400, not a crash
        with pytest.raises(InvalidImage):
            to_grayscale(image)
        return
    gray = to_grayscale(image)
    assert gray.dtype == np.uint8
    assert gray.shape == picture.shape
