"""POST /read through the real app and the fixture model; and /predict's `several_digits`."""

from __future__ import annotations

import base64
import io

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.imaging import segment
from app.imaging.decode import decode_grayscale_scaled
from digit_photos import encode_png
from digit_photos.numbers import number_photo
from tests.app.test_api import metric_samples, post_image


def read(client: TestClient, data: bytes, **params: str):
    return client.post("/read", files={"file": ("number.jpg", data)}, params=params or None)


@pytest.fixture(scope="module")
def clear_digits(client: TestClient, mnist_sample) -> dict[int, np.ndarray]:
    """One sample test digit per class that the fixture model reads as a sure `digit`."""
    chosen: dict[int, np.ndarray] = {}
    for x, y in zip(mnist_sample.x_test, mnist_sample.y_test, strict=True):
        if int(y) in chosen:
            continue
        body = post_image(client, encode_png(x)).json()
        if body["verdict"] == "digit" and body["digit"] == int(y) and body["confidence"] > 0.99:
            chosen[int(y)] = x
    assert len(chosen) == 10
    return chosen


def written(clear_digits: dict[int, np.ndarray], text: str, seed: int = 0, spacing="separated"):
    digits = np.stack([clear_digits[int(c)] for c in text])
    return number_photo(digits, [int(c) for c in text], spacing, "plain", seed)


def overlaps(box: dict, truth: tuple[int, int, int, int]) -> bool:
    x0, y0, x1, y1 = truth
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    return x0 <= cx <= x1 and y0 <= cy <= y1


@pytest.mark.parametrize(("text", "seed"), [("2024", 1), ("70", 2), ("385", 3)])
def test_a_number_is_read_left_to_right_with_each_digits_box(
    client: TestClient, clear_digits, text: str, seed: int
):
    photo = written(clear_digits, text, seed)
    response = read(client, photo.data)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["number"] == text
    assert body["verdict"] in {"number", "uncertain"}
    assert len(body["digits"]) == len(text)
    for digit, truth, label in zip(body["digits"], photo.boxes, text, strict=True):
        assert digit["best_guess"] == int(label)
        assert overlaps(digit["box"], truth), (digit["box"], truth)
        assert sum(digit["probabilities"]) == pytest.approx(1, abs=1e-4)
        assert digit["confidence"] == max(digit["probabilities"])
        assert "preprocessed_png_base64" not in digit
    if body["verdict"] == "number":
        assert all(d["verdict"] == "digit" for d in body["digits"])
    assert body["model_version"] == "1"
    assert set(body["timing_ms"]) == {"read", "preprocess", "inference", "total"}


def test_include_preprocessed_returns_each_digit_as_the_model_saw_it(client, clear_digits):
    body = read(client, written(clear_digits, "47", 5).data, include="preprocessed").json()
    assert len(body["digits"]) == 2
    for digit in body["digits"]:
        png = Image.open(io.BytesIO(base64.b64decode(digit["preprocessed_png_base64"])))
        assert png.size == (28, 28)
        assert png.mode == "L"
        pixels = np.asarray(png)
        assert pixels.max() == 255
        assert pixels[0].max() == 0


def test_a_dash_between_digits_is_a_mark(client: TestClient, clear_digits):
    page = np.full((260, 760), 232, np.uint8)
    for x, label in ((40, 4), (470, 2)):
        big = cv2.resize(clear_digits[label], (200, 200), interpolation=cv2.INTER_CUBIC)
        page[30:230, x : x + 200] = np.minimum(page[30:230, x : x + 200], 255 - big)
    cv2.line(page, (300, 130), (400, 130), 30, 14, cv2.LINE_AA)
    body = read(client, encode_png(page)).json()
    assert body["number"] == "42"
    assert [m["kind"] for m in body["marks"]] == ["small"]
    mark = body["marks"][0]["box"]
    assert 280 <= mark["x"] <= 310
    assert 110 <= mark["y"] <= 130


def test_a_page_with_no_ink_is_a_422_like_predict(client: TestClient):
    blank = encode_png(np.full((200, 600), 230, np.uint8))
    response = read(client, blank)
    assert response.status_code == 422
    assert response.json()["detail"] == post_image(client, blank).json()["detail"]


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (bytes(range(256)) * 4, 400),  # binary, but no image format
        (b'<svg xmlns="http://www.w3.org/2000/svg"><text>12</text></svg>', 415),
        (encode_png(np.full((200, 600), 230, np.uint8))[:60], 400),  # truncated
    ],
)
def test_bad_uploads_get_the_same_errors_as_predict(client: TestClient, data: bytes, status: int):
    response = read(client, data)
    assert response.status_code == status
    assert response.json()["detail"] == post_image(client, data).json()["detail"]


def test_too_many_pixels_is_a_413(client: TestClient):
    image = Image.new("L", (12_000, 12_000), 255)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False, compress_level=9)
    response = read(client, buffer.getvalue())
    assert response.status_code == 413, response.text


def test_one_image_only(client: TestClient, clear_digits):
    data = written(clear_digits, "12").data
    response = client.post("/read", files=[("file", ("a.jpg", data)), ("file", ("b.jpg", data))])
    assert response.status_code == 400
    assert "one image" in response.json()["detail"]


def test_an_unknown_query_value_is_a_422(client: TestClient, clear_digits):
    response = read(client, written(clear_digits, "12").data, include="everything")
    assert response.status_code == 422


def test_reads_are_counted_in_metrics_with_their_digits(client: TestClient, clear_digits):
    before = metric_samples(client)
    body = read(client, written(clear_digits, "905", 7).data).json()
    after = metric_samples(client)
    series = ("mnist_numbers_total", (("verdict", body["verdict"]),))
    assert after[series] == before.get(series, 0) + 1
    count, total = ("mnist_number_digits_count", ()), ("mnist_number_digits_sum", ())
    assert after[count] == before.get(count, 0) + 1
    assert after[total] == before.get(total, 0) + len(body["digits"])


def test_predict_says_several_digits_and_points_to_read(client: TestClient, clear_digits):
    photo = written(clear_digits, "3862", 4)
    body = post_image(client, photo.data).json()
    assert body["verdict"] == "several_digits"
    assert body["digit"] is None
    assert "alternatives" not in body
    # The same verdict in a batch, where the other image stays a digit.
    single = encode_png(clear_digits[3])
    batch = client.post(
        "/predict/batch", files=[("files", ("n.jpg", photo.data)), ("files", ("3.png", single))]
    ).json()
    assert [r["verdict"] for r in batch["results"]] == ["several_digits", "digit"]
    series = ("mnist_predictions_total", (("digit", "none"), ("verdict", "several_digits")))
    assert metric_samples(client)[series] >= 2


def test_read_is_in_the_openapi_document(client: TestClient):
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/read"]["post"]
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema["$ref"].endswith("/NumberReading")
    reading = spec["components"]["schemas"]["NumberReading"]
    assert {"verdict", "number", "digits", "marks"} <= set(reading["properties"])
    assert {"413", "415", "422"} <= set(operation["responses"])


def test_digits_cut_apart_where_they_touch_are_never_a_sure_number(client, clear_digits):
    """The reading of touching digits rests on where they were cut: `uncertain`, not `number`."""
    cut = 0
    for seed, text in enumerate(("40", "23", "75", "68", "91", "52")):
        photo = written(clear_digits, text, seed, spacing="touching")
        gray = decode_grayscale_scaled(photo.data, 10**8)[0]
        if len(segment._split_line(segment.locate_number(gray).ink).groups) != 1:
            continue  # this pair was left just apart: no cut needed
        body = read(client, photo.data).json()
        if len(body["digits"]) == 2:
            cut += 1
            assert body["verdict"] == "uncertain", body
    assert cut >= 3


def test_a_word_is_not_called_several_digits(client: TestClient):
    """Letters side by side stand like digits do; /read's reading of them decides."""
    page = np.full((240, 900), 235, np.uint8)
    cv2.putText(page, "H A K", (30, 170), cv2.FONT_HERSHEY_SIMPLEX, 5, 30, 14, cv2.LINE_AA)
    assert segment.normalize_counted(page)[1] >= 2  # pieces that stand like digits
    body = post_image(client, encode_png(page)).json()
    assert body["verdict"] != "several_digits"
