"""The page's number mode: a whole number written on the wide canvas, read by ``POST /read``.

The number is written with real pointer events along hand-made strokes (lines and ellipse
arcs on a grid 28 rows high and 84 columns wide laid over the canvas), the digits well apart.
The answers' rendering (boxes, "?", marks) is checked against fixed answers too, so it does not
hang on what the small fixture model happens to read.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from digit_photos import encode_png
from tests.browser.test_page import (
    SEEN_PNG,
    draw_strokes,
    line,
    pen,
    shows_error,
    wait_for_answer,
)

ROWS, COLUMNS = 28, 84  # the grid the strokes below are drawn on: the canvas is 3:1
Stroke = list[tuple[float, float]]


def ellipse(
    centre: tuple[float, float], radii: tuple[float, float], lean: float = 0, steps: int = 40
) -> Stroke:
    """A closed pen path round an ellipse ((row, column) radii) from its top, anticlockwise,
    its top leaning ``lean`` degrees to the right (as handwriting does)."""
    angles = np.radians(np.linspace(90, 450, steps))
    shear = np.tan(np.radians(lean))
    points = []
    for a in angles:
        down, right = -radii[0] * np.sin(a), radii[1] * np.cos(a)
        points.append((centre[0] + down, centre[1] + right - down * shear))
    return points


# "1704", each digit in its own columns with ~8 columns (four pen widths) of paper between.
NUMBER = "1704"
DIGIT_STROKES: dict[str, list[Stroke]] = {
    "1": [line((4, 10), (24, 10), 20)],
    "7": [line((5, 22), (5, 36)) + line((5, 36), (24, 28), 16)],
    "0": [ellipse((14.5, 51), (9.5, 6), lean=15)],  # upright, it is only 98.7 % a 0
    "4": [line((4, 69), (17, 65), 12) + line((17, 65), (17, 79), 12), line((5, 76), (25, 76), 16)],
}
# Where each digit's ink is, in grid columns (the pen adds a column or so either side).
DIGIT_COLUMNS = {"1": (10, 10), "7": (22, 36), "0": (45, 57), "4": (65, 79)}


def canvas_size(page) -> list[int]:
    return page.evaluate("(c => [c.width, c.height])(document.getElementById('canvas'))")


def until(page, script: str, timeout_s: float = 10) -> None:
    """Wait until ``script`` is true in the page (polled: the page's CSP forbids the eval()
    that Playwright's wait_for_function needs)."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(script):
        assert time.monotonic() < deadline, f"still false after {timeout_s} s: {script}"
        time.sleep(0.05)


def switch_mode(page, name: str) -> None:
    """Choose "One digit" or "A number" the way a person does: click its label."""
    page.get_by_label(name, exact=True).check()
    mode = "number" if name == "A number" else "digit"
    page.wait_for_selector(f"#app[data-mode='{mode}']", state="attached")


def draw_number(page, strokes: list[Stroke]) -> str:
    """Clear the canvas, draw ``strokes`` ((row, col) paths on the ROWS x COLUMNS grid laid
    over the wide canvas) with the mouse, and return the page's state once it has answered."""
    page.keyboard.press("Escape")  # the page's shortcut for Clear
    assert page.get_attribute("#app", "data-state") == "idle"
    box = page.locator("#canvas").bounding_box()
    scale = box["height"] / ROWS
    assert box["width"] == pytest.approx(scale * COLUMNS, rel=0.01)  # 3:1 as shown, too

    pen(page, strokes, box, scale)
    return wait_for_answer(page)


def shown_boxes(page, selector: str = ".digit-box") -> list[dict]:
    """Each box on the canvas: its data attributes, label and place on the page."""
    return page.locator(selector).evaluate_all(
        """(boxes) => boxes.map((box) => {
            const r = box.getBoundingClientRect();
            const label = box.querySelector(".box-label");
            return { ...box.dataset, label: label ? label.textContent : null,
                     left: r.left, top: r.top, width: r.width, height: r.height };
        })"""
    )


def fulfil_read(page, answer: dict, status: int = 200) -> None:
    """Answer the page's ``POST /read`` with ``answer`` instead of the service."""
    page.route(
        re.compile(r"/read\?"),
        lambda route: route.fulfill(
            status=status, content_type="application/json", body=json.dumps(answer)
        ),
    )


def reading(digit: int | None, confidence: float, box: tuple[int, int, int, int], **extra):
    """One entry of /read's ``digits``."""
    x, y, width, height = box
    probabilities = [(1 - confidence) / 9] * 10
    best = digit if digit is not None else extra.get("best_guess", 0)
    probabilities[best] = confidence
    return {
        "box": {"x": x, "y": y, "width": width, "height": height},
        "verdict": "digit",
        "digit": digit,
        "best_guess": best,
        "confidence": confidence,
        "alternatives": [{"digit": best, "probability": confidence}],
        "probabilities": probabilities,
        "preprocessed_png_base64": SEEN_PNG,
        **extra,
    }


def mark(kind: str, box: tuple[int, int, int, int]) -> dict:
    x, y, width, height = box
    box_ = {"x": x, "y": y, "width": width, "height": height}
    return {"box": box_, "kind": kind, "preprocessed_png_base64": None}


UNSURE_SEVEN = reading(
    None,
    0.52,
    (300, 40, 110, 200),
    verdict="uncertain",
    best_guess=7,
    alternatives=[{"digit": 7, "probability": 0.52}, {"digit": 1, "probability": 0.41}],
)
ANSWERS = {
    "number": {
        "verdict": "number",
        "number": "24",
        "digits": [reading(2, 0.991, (60, 30, 120, 210)), reading(4, 0.964, (540, 50, 130, 190))],
        "marks": [mark("small", (400, 230, 12, 12))],
    },
    "uncertain": {
        "verdict": "uncertain",
        "number": None,
        "digits": [reading(2, 0.991, (60, 30, 120, 210)), UNSURE_SEVEN],
        "marks": [],
    },
    "no_number": {
        "verdict": "no_number",
        "number": None,
        "digits": [],
        "marks": [mark("line", (100, 130, 600, 16)), mark("not_a_digit", (20, 20, 60, 60))],
    },
}


# --- against the real service ------------------------------------------------------------------


@pytest.mark.browser
def test_a_written_number_is_read_and_each_digit_boxed(page, artifacts: Path) -> None:
    switch_mode(page, "A number")
    assert canvas_size(page) == [840, 280]

    state = draw_number(page, [s for digit in NUMBER for s in DIGIT_STROKES[digit]])

    page.mouse.move(0, 0)
    page.screenshot(path=artifacts / "page-number-read.png", full_page=True)
    assert state == "done", page.inner_text("#error")
    assert page.get_attribute("#app", "data-verdict") == "number", page.inner_text(
        "#number-reading"
    )
    assert page.get_attribute("#number", "data-number") == NUMBER
    assert page.inner_text("#number") == NUMBER
    assert page.is_visible("#number")
    assert page.is_hidden("#digit")  # the one-digit reading is not shown in number mode
    # One box per digit, left to right, each round its own digit's ink and labelled with it.
    boxes = shown_boxes(page)
    assert [box["digit"] for box in boxes] == list(NUMBER)
    assert [box["verdict"] for box in boxes] == ["digit"] * len(NUMBER)
    canvas = page.locator("#canvas").bounding_box()
    column = canvas["height"] / ROWS
    for box, digit in zip(boxes, NUMBER, strict=True):
        first, last = DIGIT_COLUMNS[digit]
        assert box["left"] <= canvas["x"] + (first + 0.5) * column, digit
        assert box["left"] + box["width"] >= canvas["x"] + (last + 0.5) * column, digit
        assert box["label"].startswith(f"{digit} · ")
        assert box["label"].endswith("%")
    # A card per digit with the model's own 28x28 view of it.
    cards = page.locator("#number-digits li")
    assert cards.count() == len(NUMBER)
    assert cards.locator("img").count() == len(NUMBER)
    assert page.locator(".mark-box").count() == 0


@pytest.mark.browser
def test_switching_back_to_one_digit_still_reads_a_digit(page, artifacts: Path) -> None:
    fulfil_read(page, {**ANSWERS["number"], "model_version": 1, "timing_ms": {"total": 5.0}})
    switch_mode(page, "A number")
    assert draw_number(page, DIGIT_STROKES["1"] + DIGIT_STROKES["0"]) == "done"
    assert page.locator(".digit-box").count() == 2

    switch_mode(page, "One digit")

    assert canvas_size(page) == [280, 280]
    assert page.get_attribute("#app", "data-state") == "idle"  # a fresh canvas
    assert page.locator(".digit-box, .mark-box").count() == 0
    assert page.is_hidden("#number-reading")
    assert page.is_visible("#probabilities")
    assert page.text_content("#input-title") == "Your digit"
    reading_ = draw_strokes(page, [line((4, 14), (24, 14), 20)])
    assert reading_ == "1"
    assert page.get_attribute("#app", "data-verdict") == "digit"
    page.screenshot(path=artifacts / "page-number-then-digit.png", full_page=True)

    # The switch works from the keyboard: it is one Tab stop, the arrow keys move along it.
    page.focus("#mode-digit")
    page.keyboard.press("ArrowRight")
    page.wait_for_selector("#app[data-mode='number']", state="attached")
    assert page.is_checked("#mode-number")
    assert canvas_size(page)[0] == 840
    page.keyboard.press("ArrowLeft")
    page.wait_for_selector("#app[data-mode='digit']", state="attached")
    assert canvas_size(page)[0] == 280


@pytest.mark.browser
def test_a_number_mode_error_is_shown_with_its_detail(
    page, service_url: str, tmp_path: Path
) -> None:
    blank = encode_png(np.zeros((28, 84), np.uint8))
    api = httpx.post(f"{service_url}/read", files={"file": ("blank.png", blank)}, timeout=30)
    assert api.status_code in {400, 415, 422}, api.text
    upload = tmp_path / "blank.png"
    upload.write_bytes(blank)
    switch_mode(page, "A number")

    page.set_input_files("#file", upload)

    shows_error(page, api)
    assert page.inner_text("#number") == "?"
    assert page.locator(".digit-box").count() == 0


# --- what the page makes of each kind of answer -------------------------------------------------


@pytest.mark.browser
@pytest.mark.parametrize("verdict", list(ANSWERS))
def test_each_number_verdict_is_shown_as_such(page, artifacts: Path, verdict: str) -> None:
    answer = {**ANSWERS[verdict], "model_version": 1, "timing_ms": {"total": 5.0}}
    fulfil_read(page, answer)
    switch_mode(page, "A number")

    assert draw_number(page, [line((4, 10), (24, 10))]) == "done"

    page.mouse.move(0, 0)
    page.screenshot(path=artifacts / f"page-number-{verdict}.png", full_page=True)
    assert page.get_attribute("#app", "data-verdict") == verdict
    digits, marks = answer["digits"], answer["marks"]
    boxes = shown_boxes(page)
    assert len(boxes) == len(digits)
    assert len(shown_boxes(page, ".mark-box")) == len(marks)
    assert page.locator("#number-digits li").count() == len(digits)
    # Boxes are in the uploaded image's pixels: scaled to the canvas as it is shown.
    canvas = page.locator("#canvas").bounding_box()
    scale = canvas["width"] / 840
    for box, d in zip(boxes, digits, strict=True):
        assert box["left"] == pytest.approx(canvas["x"] + d["box"]["x"] * scale, abs=1)
        assert box["top"] == pytest.approx(canvas["y"] + d["box"]["y"] * scale, abs=1)
        assert box["width"] == pytest.approx(d["box"]["width"] * scale, abs=1)
        assert box["height"] == pytest.approx(d["box"]["height"] * scale, abs=1)
        assert box["verdict"] == d["verdict"]
    for box, m in zip(shown_boxes(page, ".mark-box"), marks, strict=True):
        assert box["kind"] == m["kind"]
        assert box["left"] == pytest.approx(canvas["x"] + m["box"]["x"] * scale, abs=1)

    if verdict == "number":
        assert page.inner_text("#number") == "24"
        assert page.get_attribute("#number", "data-number") == "24"
        assert page.is_hidden("#number-verdict")
        assert [box["label"] for box in boxes] == ["2 · 99.1%", "4 · 96.4%"]
        assert (
            page.inner_text("#number-summary")
            == "2 digits, each at least 96.4% sure. 1 mark left out (grey)."
        )
    elif verdict == "uncertain":
        assert page.inner_text("#number") == "2?"
        assert page.get_attribute("#number", "data-number") is None
        assert page.get_attribute("#number", "data-guess") == "27"
        assert page.inner_text("#number-verdict") == "Not sure of the 2nd digit"
        assert "2nd: 7 or 1?" in page.inner_text("#number-summary")
        assert [box["digit"] for box in boxes] == ["2", ""]
        assert boxes[1]["label"] == "7? 52.0%"
        unsure = page.locator(".digit-box[data-verdict='uncertain']")
        assert unsure.evaluate("(box) => getComputedStyle(box).borderTopStyle") == "dashed"
        assert "not sure" in page.get_attribute("#number-digits li:nth-child(2)", "aria-label")
    else:
        assert page.is_hidden("#number")
        assert page.inner_text("#number-verdict") == "No number found"
        assert "2 marks" in page.inner_text("#number-summary")


@pytest.mark.browser
def test_boxes_sit_on_an_uploaded_photo_and_follow_the_page_size(page, tmp_path: Path) -> None:
    answer = {**ANSWERS["number"], "model_version": 1, "timing_ms": {"total": 5.0}}
    fulfil_read(page, answer)
    switch_mode(page, "A number")
    photo = tmp_path / "number.png"
    photo.write_bytes(encode_png(np.full((300, 1200), 255, np.uint8)))  # 4:1, wider than 3:1

    page.set_input_files("#file", photo)

    assert wait_for_answer(page) == "done"
    until(page, "document.getElementById('photo-image').naturalWidth > 0")
    image = page.locator("#photo-image").bounding_box()
    # object-fit: contain: the picture fills the width and is centred in the height.
    scale = image["width"] / 1200
    top = image["y"] + (image["height"] - 300 * scale) / 2
    first = shown_boxes(page)[0]
    assert first["left"] == pytest.approx(image["x"] + 60 * scale, abs=1)
    assert first["top"] == pytest.approx(top + 30 * scale, abs=1)

    # Narrower window: the canvas shrinks and the boxes with it.
    before = first["width"]
    page.set_viewport_size({"width": 520, "height": 760})
    until(
        page, f"document.querySelector('.digit-box').getBoundingClientRect().width < {before - 20}"
    )


@pytest.mark.browser
def test_the_mode_switch_is_labelled_and_the_number_announced(page) -> None:
    assert page.get_by_role("radio", name="One digit").is_checked()
    assert not page.get_by_role("radio", name="A number").is_checked()
    assert page.get_attribute("#number-reading", "aria-live") == "polite"
    switch_mode(page, "A number")
    assert "number" in page.get_attribute("#canvas", "aria-label")
    assert page.text_content("#input-title") == "Your number"
    assert page.is_hidden("#reading")
    assert page.is_visible("#number-reading")
    # A reload (or a shared link) keeps the mode.
    page.reload()
    page.wait_for_selector("#model-info[data-version]")
    assert page.get_attribute("#app", "data-mode") == "number"
    assert page.is_checked("#mode-number")
