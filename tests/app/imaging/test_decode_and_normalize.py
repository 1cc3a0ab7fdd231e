"""app/imaging: decoding, its errors, and MNIST-style normalisation of real digits."""

from __future__ import annotations

import base64
import io
import struct
import warnings
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image, ImageFile

from app.api.handlers import image_status
from app.imaging import normalize
from app.imaging.decode import load_image, to_grayscale
from app.imaging.encode import to_png_bytes
from app.imaging.errors import (
    ImageError,
    ImageTooLarge,
    InvalidImage,
    NoDigitFound,
    UnsupportedMediaType,
)
from app.imaging.normalize import normalize_digit
from app.imaging.prepare import preprocess_image, preprocess_naive
from digit_photos import KINDS, encode_png, photograph


@pytest.fixture(scope="module")
def digits(mnist_sample) -> np.ndarray:
    """The 500 real MNIST test digits of the committed sample (white on black, uint8)."""
    return mnist_sample.x_test


@pytest.fixture(scope="module")
def seven(digits: np.ndarray) -> np.ndarray:
    """One digit with no symmetry, so rotations and flips cannot go unnoticed."""
    return digits[0]


# --- helpers --------------------------------------------------------------------------------


def encode(image: Image.Image, image_format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A valid PNG signature and IHDR claiming ``width`` x ``height``, with no pixel data."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload)
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


def page_with(
    digit: np.ndarray, *, size: tuple[int, int], ink_px: int, at: tuple[int, int]
) -> np.ndarray:
    """uint8 white page with ``digit`` drawn dark, its 28 px frame ``ink_px * 1.4`` wide."""
    side = round(ink_px * 28 / 20)
    big = cv2.resize(digit, (side, side), interpolation=cv2.INTER_CUBIC)
    page = np.full(size[::-1], 255, np.uint8)
    top, left = at
    page[top : top + side, left : left + side] = 255 - big
    return page


def centre_of_mass(x: np.ndarray) -> tuple[float, float]:
    rows, cols = np.indices(x.shape)
    return float((rows * x).sum() / x.sum()), float((cols * x).sum() / x.sum())


def ink_box_side(x: np.ndarray, level: float = 0.1) -> int:
    rows, cols = np.nonzero(x > level)
    return int(max(rows.max() - rows.min(), cols.max() - cols.min()) + 1)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Best correlation of ``a`` with ``b`` over shifts of up to 1 px, which a CNN shrugs off."""
    a, b = np.squeeze(a), np.squeeze(b).astype(np.float64)
    return max(
        float(np.corrcoef(np.roll(a, (dy, dx), (0, 1)).ravel(), b.ravel())[0, 1])
        for dy in (-1, 0, 1)
        for dx in (-1, 0, 1)
    )


def assert_model_input(x: np.ndarray, shape: tuple[int, ...] = (28, 28, 1)) -> None:
    assert x.shape == shape
    assert x.dtype == np.float32
    assert x.min() >= 0.0
    assert x.max() <= 1.0
    assert x.max() > 0.9, "the strokes should reach full intensity, as MNIST's do"


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "status"),
    [(InvalidImage, 400), (UnsupportedMediaType, 415), (ImageTooLarge, 413), (NoDigitFound, 422)],
)
def test_errors_carry_a_reason_the_api_maps_to_a_status(error: type[ImageError], status: int):
    assert issubclass(error, ImageError)
    assert image_status(error()) == status
    assert error().detail
    assert error("custom").detail == "custom" == str(error("custom"))


def test_empty_upload_is_invalid():
    with pytest.raises(InvalidImage, match="empty"):
        load_image(b"")


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(b"this is a note, saved as digit.png\n", id="text named .png"),
        pytest.param(b'<svg xmlns="http://www.w3.org/2000/svg"><path d="M0 0"/></svg>', id="svg"),
        pytest.param(
            b'\xef\xbb\xbf<?xml version="1.0"?>\n<svg width="28" height="28"></svg>', id="xml"
        ),
        pytest.param(b"<!DOCTYPE html><html><body><img src=x></body></html>", id="html"),
        pytest.param(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", id="pdf"),
        pytest.param(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", id="heic"),
    ],
)
def test_documents_are_unsupported_media(document: bytes):
    with pytest.raises(UnsupportedMediaType):
        load_image(document)
    with pytest.raises(UnsupportedMediaType):
        preprocess_image(document)


def test_unknown_binary_is_invalid():
    garbage = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    with pytest.raises(InvalidImage):
        load_image(b"\x00\x01" + garbage)


@pytest.mark.parametrize("kind", ["png", "jpeg"])
def test_truncated_images_are_invalid(seven: np.ndarray, kind: str):
    data = photograph(seven, kind, seed=1)
    with pytest.raises(InvalidImage, match="truncated or corrupt"):
        preprocess_image(data[: len(data) // 2])


def test_truncated_small_png_is_invalid_too(seven: np.ndarray):
    """The 28x28 greyscale shortcut must not swallow a broken file."""
    data = encode_png(seven)
    with pytest.raises(InvalidImage):
        preprocess_image(data[:-30])


def test_corrupt_pixel_data_is_invalid(seven: np.ndarray):
    data = bytearray(photograph(seven, "png", seed=2))
    data[200:260] = bytes(60)  # zeroes in the middle of the compressed pixel data
    with pytest.raises(InvalidImage):
        preprocess_image(bytes(data))


@pytest.mark.parametrize(
    ("width", "height", "max_pixels"),
    [
        pytest.param(50_000, 50_000, 40_000_000, id="50000x50000, past Pillow's own limit"),
        pytest.param(8_000, 6_000, 40_000_000, id="48 MP, past ours"),
        pytest.param(100, 100, 9_999, id="custom limit"),
    ],
)
def test_too_many_pixels_is_refused_before_decoding(
    monkeypatch: pytest.MonkeyPatch, width: int, height: int, max_pixels: int
):
    decoded = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda image: decoded.append(image))
    with pytest.raises(ImageTooLarge):
        load_image(png_header_only(width, height), max_pixels=max_pixels)
    assert decoded == [], "pixels were decoded before the size check"


def test_pillow_bomb_warning_becomes_image_too_large_and_does_not_escape():
    """Between Pillow's warning (89 MP) and error (179 MP) limits, with our limit set higher."""
    filters = list(warnings.filters)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ImageTooLarge):
            load_image(png_header_only(10_000, 10_000), max_pixels=10**9)
    assert caught == []
    assert warnings.filters == filters


# --- decoding -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image_format", "mode"),
    [
        ("PNG", "1"),
        ("PNG", "L"),
        ("PNG", "LA"),
        ("PNG", "P"),
        ("PNG", "RGB"),
        ("PNG", "RGBA"),
        ("PNG", "I;16"),
        ("TIFF", "I"),
        ("TIFF", "F"),
        ("TIFF", "CMYK"),
        ("JPEG", "L"),
        ("JPEG", "RGB"),
        ("JPEG", "CMYK"),
        ("WEBP", "RGB"),
        ("BMP", "RGB"),
        ("GIF", "P"),
    ],
)
def test_every_format_and_mode_gives_the_digit(seven: np.ndarray, image_format: str, mode: str):
    page = page_with(seven, size=(160, 120), ink_px=80, at=(6, 30))  # dark ink, white paper
    image = {
        "1": lambda: Image.fromarray(page).convert("1", dither=Image.Dither.NONE),
        "LA": lambda: Image.fromarray(page).convert("LA"),
        "P": lambda: Image.fromarray(page).convert("RGB").convert("P"),
        "RGB": lambda: Image.fromarray(page).convert("RGB"),
        "RGBA": lambda: Image.fromarray(page).convert("RGBA"),
        "I;16": lambda: Image.fromarray(page.astype(np.uint16) * 257),
        "I": lambda: Image.fromarray(page.astype(np.int32) * 257),
        "F": lambda: Image.fromarray(page.astype(np.float32) / 255),
        "CMYK": lambda: Image.fromarray(page).convert("RGB").convert("CMYK"),
    }.get(mode, lambda: Image.fromarray(page))()
    data = encode(image, image_format)

    decoded = load_image(data)
    assert image_format == "JPEG" or decoded.mode == mode, "the mode should survive encoding"
    gray = to_grayscale(decoded)
    assert gray.dtype == np.uint8
    assert gray.shape == page.shape
    expected = np.asarray(image.convert("L")) if mode == "1" else page  # "1" is thresholded
    assert np.corrcoef(gray.ravel(), expected.ravel())[0, 1] > 0.95
    x = preprocess_image(data)
    assert_model_input(x)
    assert similarity(x, seven / 255) > 0.85


def test_jpeg_is_decoded_at_reduced_scale_in_grey(seven: np.ndarray):
    data = photograph(seven, "jpeg", seed=3, size=(2000, 1500))
    image = load_image(data)
    assert image.mode == "L"
    assert image.size == (500, 375)  # 1/4 scale straight from the DCT


def test_first_frame_of_an_animation_is_used(digits: np.ndarray):
    first, second = (Image.fromarray(255 - d).convert("P") for d in digits[:2])
    data = encode(first, "GIF", save_all=True, append_images=[second])
    assert similarity(preprocess_image(data), digits[0] / 255) > 0.95
    tiff = encode(Image.fromarray(digits[0]), "TIFF", save_all=True, append_images=[second])
    assert np.array_equal(preprocess_image(tiff)[..., 0], digits[0] / np.float32(255))


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_is_honoured(seven: np.ndarray, orientation: int):
    upright = page_with(seven, size=(160, 120), ink_px=80, at=(6, 30))
    turns = {3: 2, 6: 1, 8: 3}[orientation]  # counter-clockwise turns that make the stored pixels
    stored = Image.fromarray(np.ascontiguousarray(np.rot90(upright, turns)))
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(stored, "PNG", exif=exif.tobytes())
    assert np.array_equal(to_grayscale(load_image(data)), upright)


def test_exif_rotation_of_a_small_grey_png_is_not_skipped(seven: np.ndarray):
    exif = Image.Exif()
    exif[0x0112] = 3  # stored upside down
    data = encode(Image.fromarray(np.rot90(seven, 2).copy()), "PNG", exif=exif.tobytes())
    assert np.array_equal(preprocess_image(data)[..., 0], seven / np.float32(255))


def test_exif_rotated_photo_comes_out_upright(digits: np.ndarray):
    for i in range(10):
        x = preprocess_image(photograph(digits[i], "exif", seed=i))
        assert similarity(x, digits[i] / 255) > 0.8


# --- transparency ---------------------------------------------------------------------------


def test_dark_strokes_on_transparent_canvas_are_not_a_black_square(seven: np.ndarray):
    data = photograph(seven, "rgba", seed=4)
    image = load_image(data)
    assert image.mode == "RGBA"
    assert not np.asarray(image)[..., :3].any(), "a canvas export: every pixel's colour is black"
    gray = to_grayscale(image)
    assert np.median(gray) == 255, "the transparent background should turn white"
    assert gray.min() < 20, "the strokes should stay black"
    assert similarity(preprocess_image(data), seven / 255) > 0.9


def test_light_strokes_on_transparent_canvas(seven: np.ndarray):
    rgba = np.zeros((28, 28, 4), np.uint8)
    rgba[..., :3] = 255
    rgba[..., 3] = seven
    gray = to_grayscale(Image.fromarray(rgba))
    assert np.array_equal(gray, seven), "white ink over black is MNIST itself"


def test_transparent_margins_of_a_photo_do_not_become_ink(seven: np.ndarray):
    page = page_with(seven, size=(200, 160), ink_px=80, at=(20, 50))
    rgba = np.dstack([page, page, page, np.full_like(page, 255)])
    rgba[:, :20] = rgba[:, -20:] = 0  # transparent black margins
    x = preprocess_image(encode(Image.fromarray(rgba), "PNG"))
    assert similarity(x, seven / 255) > 0.85


def test_palette_with_a_transparent_index(seven: np.ndarray):
    image = Image.fromarray(255 - seven).convert("P")
    data = encode(image, "PNG", transparency=255)  # the white background's index
    assert load_image(data).mode == "P"
    assert similarity(preprocess_image(data), seven / 255) > 0.95


def test_fully_transparent_canvas_has_no_digit():
    data = encode(Image.new("RGBA", (300, 200)), "PNG")
    with pytest.raises(NoDigitFound):
        preprocess_image(data)


# --- normalisation --------------------------------------------------------------------------


def test_mnist_digits_take_the_fast_path_unchanged(digits: np.ndarray):
    unchanged = [np.array_equal(normalize_digit(d), d / np.float32(255)) for d in digits]
    assert np.mean(unchanged) >= 0.99


def test_normalised_mnist_digits_keep_mnist_geometry(digits: np.ndarray):
    for digit in digits:
        x = normalize_digit(digit)
        row, col = centre_of_mass(x)
        assert abs(row - 14) <= 0.5
        assert abs(col - 14) <= 0.5
        assert ink_box_side(x, 0) == 20


def test_fast_path_matches_the_general_path(digits: np.ndarray, monkeypatch: pytest.MonkeyPatch):
    """The shortcut only skips work: the full pipeline leaves MNIST digits almost as they are.

    Not quite always: it drops a stray dot as a speck, and a centre of mass sitting right
    between two pixels may round the other way.
    """
    monkeypatch.setattr(normalize, "already_mnist", lambda gray: None)
    agreement = np.array([np.corrcoef(normalize_digit(d).ravel(), d.ravel())[0, 1] for d in digits])
    assert np.median(agreement) > 0.995
    assert np.mean(agreement > 0.95) >= 0.95


def test_small_grey_png_shortcut_matches_pillow(digits: np.ndarray):
    for digit in digits[:50]:
        data = encode_png(digit)
        via_pillow = normalize_digit(to_grayscale(load_image(data)))
        assert np.array_equal(preprocess_image(data)[..., 0], via_pillow)


def test_dark_ink_on_light_is_inverted(digits: np.ndarray):
    for digit in digits[:50]:
        x = normalize_digit(255 - digit)
        assert np.corrcoef(x.ravel(), digit.ravel())[0, 1] > 0.95


def test_off_centre_small_digit_in_big_frame_is_centred_and_scaled(seven: np.ndarray):
    page = page_with(seven, size=(900, 700), ink_px=70, at=(40, 720))  # top right corner
    x = normalize_digit(page)
    row, col = centre_of_mass(x)
    assert abs(row - 14) <= 1
    assert abs(col - 14) <= 1
    assert 19 <= ink_box_side(x) <= 21
    assert similarity(x, seven / 255) > 0.9


def test_small_and_shifted_digits_are_rescaled_and_recentred(seven: np.ndarray):
    small = np.zeros((28, 28), np.uint8)
    small[:14, :14] = cv2.resize(seven, (14, 14), interpolation=cv2.INTER_AREA)
    x = normalize_digit(small)
    assert ink_box_side(x) in (19, 20, 21)
    assert similarity(x, seven / 255) > 0.85
    shifted = normalize_digit(np.roll(seven, (-4, 4), (0, 1)))  # ink does not wrap around
    row, col = centre_of_mass(shifted)
    assert abs(row - 14) <= 0.5
    assert abs(col - 14) <= 0.5
    assert similarity(shifted, seven / 255) > 0.95


def test_uneven_lighting_is_flattened(seven: np.ndarray):
    """The page's dark corner is darker than the ink on its bright side: no global cut works."""
    height, width = 480, 640
    light = np.linspace(250, 80, width, dtype=np.float32)[None, :].repeat(height, 0)
    coverage = np.zeros((height, width), np.float32)
    coverage[150:290, 30:170] = cv2.resize(seven, (140, 140)) / 255  # on the bright side
    page = np.clip(light * (1 - 0.6 * coverage), 0, 255).astype(np.uint8)
    assert page[:, -1].max() < page[150:290, 30:170].min()
    x = normalize_digit(page)
    assert similarity(x, seven / 255) > 0.85
    assert 19 <= ink_box_side(x) <= 21


def test_specks_around_the_digit_are_ignored(seven: np.ndarray):
    page = page_with(seven, size=(600, 450), ink_px=150, at=(100, 200))
    clean = normalize_digit(page)
    specked = page.copy()
    rng = np.random.default_rng(5)
    for y, x in zip(rng.integers(0, 450, 40), rng.integers(0, 600, 40), strict=True):
        specked[y : y + 3, x : x + 3] = 0
    assert np.corrcoef(normalize_digit(specked).ravel(), clean.ravel())[0, 1] > 0.97


def test_pieces_of_a_broken_stroke_stay_in_the_digit(seven: np.ndarray):
    broken = seven.copy()
    broken[15:17] = 0  # a gap across the 7's stem: two blobs, the lower one a third of the ink
    page = page_with(broken, size=(600, 450), ink_px=150, at=(100, 200))
    x = normalize_digit(page)
    assert 19 <= ink_box_side(x) <= 21
    assert similarity(x, broken / 255) > 0.9


@pytest.mark.parametrize(
    "gray",
    [
        pytest.param(np.full((300, 400), 255, np.uint8), id="white page"),
        pytest.param(np.zeros((300, 400), np.uint8), id="black frame"),
        pytest.param(np.full((28, 28), 128, np.uint8), id="grey 28x28"),
        pytest.param(
            np.clip(
                np.linspace(120, 240, 500)[None, :]
                + np.random.default_rng(6).normal(0, 6, (400, 500)),
                0,
                255,
            ).astype(np.uint8),
            id="noisy unevenly lit page",
        ),
    ],
)
def test_blank_images_have_no_digit(gray: np.ndarray):
    with pytest.raises(NoDigitFound):
        normalize_digit(gray)


def test_photographed_blank_page_has_no_digit():
    blank = np.zeros((28, 28), np.uint8)
    for kind in ("jpeg", "png", "cmyk"):
        with pytest.raises(NoDigitFound):
            preprocess_image(photograph(blank, kind, seed=7))


@pytest.mark.parametrize("shape", [(28, 28), (400, 500)])
def test_only_specks_of_noise_have_no_digit(shape: tuple[int, int]):
    rng = np.random.default_rng(8)
    gray = np.zeros(shape, np.uint8)
    gray[rng.integers(0, shape[0], 12), rng.integers(0, shape[1], 12)] = 255
    with pytest.raises(NoDigitFound):
        normalize_digit(gray)


@pytest.mark.parametrize("shape", [(1, 1), (2, 2), (1, 300), (300, 2), (5, 40), (3000, 7)])
def test_degenerate_shapes_give_a_digit_or_no_digit_found(shape: tuple[int, int]):
    gray = np.zeros(shape, np.uint8)
    gray[:, : shape[1] // 2] = 255
    try:
        x = normalize_digit(gray)
    except NoDigitFound:
        return
    assert_model_input(x, (28, 28))


@pytest.mark.parametrize(
    "gray",
    [np.zeros((28, 28), np.float32), np.zeros((28, 28, 3), np.uint8), np.zeros((0, 5), np.uint8)],
)
def test_normalize_digit_wants_2d_uint8(gray: np.ndarray):
    with pytest.raises(ValueError, match="2-D uint8"):
        normalize_digit(gray)


def test_photographed_mnist_digits_look_like_the_originals(digits: np.ndarray):
    """All 500 sample digits, re-photographed in turn in every kind, normalise back to MNIST.

    A CNN tolerates a 1 px shift and slightly bolder strokes, so compare shift-tolerantly; a
    missing inversion, centring or scaling step fails this by a wide margin.
    """
    scores, centres, sides = [], [], []
    for i, digit in enumerate(digits):
        x = preprocess_image(photograph(digit, KINDS[i % len(KINDS)], seed=i))
        assert_model_input(x)
        scores.append(similarity(x, digit / 255))
        centres.append(centre_of_mass(x[..., 0]))
        sides.append(ink_box_side(x[..., 0]))
    scores = np.array(scores)
    assert np.median(scores) > 0.95
    assert np.mean(scores > 0.8) >= 0.99
    assert np.abs(np.array(centres) - 14).max() <= 1.0
    assert np.mean(np.isin(sides, (19, 20, 21))) >= 0.98


# --- naive preprocessing and PNG output -----------------------------------------------------


def test_naive_preprocessing_only_scales(seven: np.ndarray):
    x = preprocess_naive(encode_png(seven))
    assert x.shape == (28, 28, 1)
    assert x.dtype == np.float32
    assert np.array_equal(x[..., 0], seven / np.float32(255))
    photo = preprocess_naive(photograph(seven, "jpeg", seed=9))
    assert photo.shape == (28, 28, 1)
    assert photo.mean() > 0.5, "a photo stays dark-on-light: nothing is inverted"


def test_png_of_what_the_model_saw_round_trips(seven: np.ndarray):
    x = normalize_digit(seven)
    for array in (x, x[..., None]):
        decoded = np.asarray(Image.open(io.BytesIO(to_png_bytes(array))))
        assert decoded.shape == (28, 28)
        assert decoded.dtype == np.uint8
        assert np.array_equal(decoded, seven)


# Found by `make fuzz`: a 1-bit PNG with a malformed tRNS chunk decodes, then Pillow's
# convert("RGBA") raises TypeError on the transparency entry.
MALFORMED_TRNS_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAABwAAAAcAQAAAABaduI5AAAAR0lEQVR4nIXMsQmAQABD0XcRtLW0dBQ3cRVHcxRHcADh"
    "LM6r/UUI/BD+KQeGemN/YBHI1zbhhktalLNPAhNRiZGYdbu2u8YBiVBORw0KGgoAAAANSUhEUgAAADAAAAAwBAMAAAClL"
    "OS0AAAAGFBMVEX//+bp6dLCwq+Pj4FFRT4ZGRYBAQEAAAC57unaAAAAAXRSTlNIRFIAAAAwAAAAMAQDAAAApSzktAAAAB"
    "hQTFRF///m6enSwsKvj4+BRUU+GRkWAQEBfQFrTf//PJA="
)


def test_malformed_transparency_is_a_clean_invalid_image() -> None:
    with pytest.raises(InvalidImage, match="could not be converted"):
        preprocess_image(MALFORMED_TRNS_PNG)
