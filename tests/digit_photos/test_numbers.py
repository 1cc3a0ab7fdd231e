"""digit_photos.numbers: photos of whole numbers are deterministic and their boxes are true."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from digit_photos.numbers import (
    PAPERS,
    SPACINGS,
    WIDTH_PX,
    NumberPhoto,
    number_digits,
    number_photo,
)


@pytest.fixture(scope="module")
def mnist(mnist_sample) -> tuple[np.ndarray, np.ndarray]:
    return mnist_sample.x_test, mnist_sample.y_test


def make(mnist: tuple[np.ndarray, np.ndarray], seed: int, length: int, spacing: str, paper: str):
    digits, labels = number_digits(np.random.default_rng(seed), *mnist, length)
    return number_photo(digits, labels, spacing, paper, seed), labels


@pytest.fixture(scope="module")
def photos(mnist: tuple[np.ndarray, np.ndarray]) -> dict[tuple[str, str], list[NumberPhoto]]:
    """Twelve photos of 2-7 digits per spacing and paper, the same numbers on every paper."""
    return {
        (spacing, paper): [make(mnist, seed, 2 + seed % 6, spacing, paper)[0] for seed in range(12)]
        for spacing in SPACINGS
        for paper in PAPERS
    }


def decode_gray(photo: NumberPhoto) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(photo.data, np.uint8), cv2.IMREAD_GRAYSCALE)


def test_same_arguments_same_bytes(mnist):
    first, _ = make(mnist, 5, 4, "touching", "notebook")
    again, _ = make(mnist, 5, 4, "touching", "notebook")
    assert again == first
    assert make(mnist, 6, 4, "touching", "notebook")[0].data != first.data
    assert make(mnist, 5, 4, "separated", "notebook")[0].data != first.data
    assert make(mnist, 5, 4, "touching", "plain")[0].data != first.data


def test_number_digits_draws_distinct_test_digits_with_their_labels(mnist):
    images, labels = mnist
    digits, drawn = number_digits(np.random.default_rng(0), images, labels, 10)
    assert digits.shape == (10, 28, 28)
    assert digits.dtype == np.uint8
    for digit, label in zip(digits, drawn, strict=True):
        matches = np.flatnonzero((images == digit).all(axis=(1, 2)))
        assert label in {int(labels[i]) for i in matches}
    assert len({d.tobytes() for d in digits}) == 10


def test_text_and_kinds_are_what_was_asked(photos, mnist):
    for (spacing, paper), some in photos.items():
        for photo in some:
            assert (photo.spacing, photo.paper) == (spacing, paper)
            assert len(photo.boxes) == len(photo.text)
    photo, labels = make(mnist, 3, 6, "separated", "plain")
    assert photo.text == "".join(map(str, labels))


def test_encoded_as_jpeg_or_png_of_the_right_size(photos):
    formats = set()
    for some in photos.values():
        for photo in some:
            with Image.open(io.BytesIO(photo.data)) as image:
                formats.add(image.format)
                assert image.format == photo.format.upper()
                assert image.mode == "RGB"
                width, height = image.size
            assert WIDTH_PX[0] <= width <= WIDTH_PX[1]
            assert 64 <= height <= WIDTH_PX[1]
    assert formats == {"JPEG", "PNG"}


def test_ten_digits_fit_in_1200_px(mnist):
    photo, _ = make(mnist, 1, 10, "separated", "plain")
    with Image.open(io.BytesIO(photo.data)) as image:
        assert image.size[0] <= WIDTH_PX[1]
    assert len(photo.boxes) == 10


def test_boxes_inside_the_image_left_to_right_on_one_line(photos):
    for some in photos.values():
        for photo in some:
            height, width = decode_gray(photo).shape
            boxes = np.array(photo.boxes)
            x0, y0, x1, y1 = boxes.T
            assert (x0 >= 0).all()
            assert (x0 < x1).all()
            assert (x1 <= width).all()
            assert (y0 >= 0).all()
            assert (y0 < y1).all()
            assert (y1 <= height).all()
            assert (np.diff(x0) > 0).all()
            assert (np.diff((x0 + x1) / 2) > 0).all()
            # one line: every box shares rows with its neighbour
            assert (np.minimum(y1[1:], y1[:-1]) > np.maximum(y0[1:], y0[:-1])).all()
            # digits 60-120 px tall (±15 %), or a little less when ten had to fit
            assert 25 <= np.median(y1 - y0) <= 150


@pytest.mark.parametrize("paper", ["plain", "notebook"])
def test_boxes_hold_the_ink(photos, paper):
    """Dark pixels lie inside the boxes, and every box holds dark pixels."""
    for photo in photos["separated", paper] + photos["overlapping", paper]:
        gray = decode_gray(photo).astype(np.float32)
        paper = cv2.medianBlur(decode_gray(photo), 31).astype(np.float32)
        ink = (paper - gray) > 0.65 * (paper - np.percentile(gray, 0.5))
        inside = np.zeros_like(ink)
        for x0, y0, x1, y1 in photo.boxes:
            assert ink[y0:y1, x0:x1].mean() > 0.02
            inside[max(y0 - 3, 0) : y1 + 3, max(x0 - 3, 0) : x1 + 3] = True
        assert ink[inside].sum() > 0.97 * ink.sum()


def gaps(photo: NumberPhoto) -> np.ndarray:
    """Gaps between consecutive ink boxes, in median box heights (negative: overlap)."""
    boxes = np.array(photo.boxes)
    return (boxes[1:, 0] - boxes[:-1, 2]) / np.median(boxes[:, 3] - boxes[:, 1])


@pytest.mark.parametrize("paper", PAPERS)
def test_separated_digits_are_a_tenth_of_a_height_apart(photos, paper):
    for photo in photos["separated", paper]:
        assert gaps(photo).min() >= 0.1


def test_touching_and_overlapping_boxes_overlap(photos):
    touching = np.concatenate([gaps(p) for p in photos["touching", "plain"]])
    assert touching.max() <= 0
    assert touching.min() >= -0.3
    overlapping = np.concatenate([gaps(p) for p in photos["overlapping", "plain"]])
    assert overlapping.max() < 0
    assert overlapping.min() >= -0.3
    assert np.median(overlapping) < -0.12


def joined(photo: NumberPhoto) -> list[bool]:
    """Per consecutive pair: does one blob of dark pixels reach from one digit into the other?"""
    gray = decode_gray(photo)
    boxes = np.array(photo.boxes)
    x0, y0 = boxes[:, :2].min(axis=0) - 8
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = boxes[:, 2:].max(axis=0) + 8
    _, ink = cv2.threshold(gray[y0:y1, x0:x1], 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    labels = cv2.connectedComponents(ink, connectivity=8)[1]
    result = []
    for a, b in zip(boxes[:-1] - [x0, y0, x0, y0], boxes[1:] - [x0, y0, x0, y0], strict=True):
        only_a = labels[a[1] : a[3], a[0] : min(a[2], b[0])]
        only_b = labels[b[1] : b[3], max(a[2], b[0]) : b[2]]
        result.append(bool((set(only_a.flat) - {0}) & (set(only_b.flat) - {0})))
    return result


def test_touching_digits_merge_into_one_blob_and_separated_do_not(photos):
    touching = [j for p in photos["touching", "plain"] for j in joined(p)]
    assert np.mean(touching) >= 0.75
    separated = [j for p in photos["separated", "plain"] for j in joined(p)]
    assert not any(separated)


def test_every_paper_renders_the_same_number_in_the_same_frame(photos):
    """Only the paper differs: the same text, frame size, and boxes within a few px."""
    for spacing in SPACINGS:
        for plain, *others in zip(*(photos[spacing, paper] for paper in PAPERS), strict=True):
            size = decode_gray(plain).shape
            for other in others:
                assert other.text == plain.text
                assert decode_gray(other).shape == size
                shift = np.abs(np.array(other.boxes) - np.array(plain.boxes))
                assert shift.max() <= 0.1 * max(size)


def test_notebook_paper_has_lines_and_a_shadow_darkens(photos):
    """Same seed: the notebook page is not plain paper, and the shadow takes light away."""
    for plain, notebook, shaded in zip(
        photos["separated", "plain"],
        photos["separated", "notebook"],
        photos["separated", "notebook_shadow"],
        strict=True,
    ):
        assert notebook.data != plain.data
        assert shaded.data != notebook.data
    # printed lines: rows of paper darker than the rows around them, far from the ink
    lined = 0
    for photo in photos["separated", "notebook"]:
        profile = decode_gray(photo).astype(np.float32).mean(axis=1)
        background = cv2.blur(profile[:, None], (1, 15))[:, 0]
        lined += bool((background - profile).max() > 4)
    assert lined >= 8


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"spacing": "wide"}, "spacing"),
        ({"paper": "papyrus"}, "paper"),
        ({"labels": [1, 2]}, "labels"),
        ({"labels": [1, 2, 13]}, "single digits"),
    ],
)
def test_bad_arguments_are_refused(mnist, kwargs, message):
    arguments = {
        "digits": mnist[0][:3],
        "labels": [1, 2, 3],
        "spacing": "separated",
        "paper": "plain",
        "seed": 0,
    }
    with pytest.raises(ValueError, match=message):
        number_photo(**{**arguments, **kwargs})
