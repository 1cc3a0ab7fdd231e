"""digit_photos.notebook: notebook-paper photos are deterministic, varied, and what they say."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from digit_photos import photograph
from digit_photos.notebook import (
    CHECK,
    NOTEBOOK_KINDS,
    SHADOW_OF_KIND,
    SHADOWS,
    TUNED,
    notebook_photo,
    render_notebook,
)


@pytest.fixture(scope="module")
def digits(mnist_sample) -> np.ndarray:
    return mnist_sample.x_test[:12]


@pytest.mark.parametrize("shadow", SHADOWS)
def test_same_arguments_same_bytes(digits: np.ndarray, shadow: str):
    first = notebook_photo(digits[0], shadow, seed=3)
    assert notebook_photo(digits[0], shadow, seed=3) == first
    assert notebook_photo(digits[0], shadow, seed=4) != first
    assert notebook_photo(digits[0], shadow, seed=3, style=CHECK) != first


def test_photos_are_jpegs_of_300_to_1200_px(digits: np.ndarray):
    for i, digit in enumerate(digits):
        data = notebook_photo(digit, SHADOWS[i % 3], seed=i)
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == "JPEG"
            assert image.mode == "RGB"
            assert TUNED.width_px[0] <= image.size[0] <= TUNED.width_px[1]


def test_size_can_be_fixed(digits: np.ndarray):
    rgb, quality = render_notebook(digits[0], "hard", seed=1, size=(640, 480))
    assert rgb.shape == (480, 640, 3)
    assert TUNED.jpeg_quality[0] <= quality <= TUNED.jpeg_quality[1]


def test_a_shadow_darkens_part_of_the_page(digits: np.ndarray):
    """Same seed, same page: only the light differs, and a shadow takes 15-65 % of it away."""
    plain = cv2.cvtColor(render_notebook(digits[1], "none", 5)[0], cv2.COLOR_RGB2GRAY)
    for shadow in ("soft", "hard"):
        shaded = cv2.cvtColor(render_notebook(digits[1], shadow, 5)[0], cv2.COLOR_RGB2GRAY)
        assert shaded.shape != plain.shape or not np.array_equal(shaded, plain)
        ratio = (shaded.astype(np.float32) + 1) / (plain.astype(np.float32) + 1)
        assert np.mean(ratio < 0.85) > 0.02, "some of the page should be in the shade"


def test_hard_shadow_edges_are_sharper_than_soft_ones(digits: np.ndarray):
    """The steepest step in the light (shaded over unshaded, same page): a pixel or two wide
    against tens."""

    def gray(shadow: str) -> np.ndarray:
        rgb = render_notebook(digits[2], shadow, 11, size=(800, 600))[0]
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32) + 1

    plain = gray("none")

    def steepest(shadow: str) -> float:
        light = cv2.GaussianBlur(gray(shadow) / plain, (0, 0), 1.5)
        return float(np.percentile(np.hypot(*np.gradient(light)), 99.9))

    assert steepest("hard") > 3 * steepest("soft")


def test_the_page_has_printed_lines(digits: np.ndarray):
    """Ruled or squared paper: rows (or columns) of the page are periodically darker."""
    found = 0
    for seed in range(6):
        gray = cv2.cvtColor(render_notebook(digits[3], "none", seed)[0], cv2.COLOR_RGB2GRAY)
        rows = gray.astype(np.float32).mean(axis=1)
        rows -= cv2.GaussianBlur(rows[:, None], (1, 0), 15).ravel()
        found += np.std(rows) > 1.0
    assert found >= 5


def test_pen_widths_vary_from_hairline_to_marker(digits: np.ndarray):
    """The fraction of the frame covered by ink, normalised by digit size, spans a wide range."""
    from digit_photos.notebook import _pen_strokes

    widths = []
    for seed in range(40):
        coverage = _pen_strokes(digits[0], np.random.default_rng(seed), 200.0, TUNED)
        widths.append((coverage > 0.5).sum())
    assert max(widths) > 4 * min(widths)


def test_kinds_map_to_shadows_and_photograph_dispatches(digits: np.ndarray):
    assert set(SHADOW_OF_KIND) == set(NOTEBOOK_KINDS)
    for kind in NOTEBOOK_KINDS:
        assert photograph(digits[0], kind, seed=2) == notebook_photo(
            digits[0], SHADOW_OF_KIND[kind], seed=2
        )


def test_unknown_shadow_is_refused(digits: np.ndarray):
    with pytest.raises(ValueError, match="unknown shadow"):
        notebook_photo(digits[0], "dappled")
