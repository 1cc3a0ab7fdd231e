"""The HTTP API against the real app and the real SavedModel trained by the session fixture."""

from __future__ import annotations

import asyncio
import base64
import collections
import io
import json
import logging
import struct
import threading
import zlib
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from app.imaging import prepare
from app.imaging.decode import sniff
from app.imaging.errors import ImageError
from app.imaging.prepare import decodes_inline
from app.main import create_app
from app.runtime.batcher import BatchingPredictor
from app.schemas import BatchItem, Prediction
from app.settings import Settings
from app.verdicts import DEFAULT_POINTS
from digit_photos import KINDS, encode_png, photograph

PHOTOS_PER_KIND = 10


# --- helpers ----------------------------------------------------------------------------------


def post_image(
    client: TestClient, data: bytes, params: dict[str, str] | None = None
) -> httpx.Response:
    return client.post("/predict", files={"file": ("digit", data)}, params=params)


def assert_consistent_reading(body: dict) -> None:
    """What every answer promises, whatever its verdict."""
    probabilities = body["probabilities"]
    assert body["best_guess"] == int(np.argmax(probabilities))
    assert body["confidence"] == max(probabilities)
    assert "digit" in body  # null for not_a_digit, but never left out
    if body["verdict"] == "not_a_digit":
        assert body["digit"] is None
    else:
        assert body["verdict"] in {"digit", "uncertain"}
        assert body["digit"] == body["best_guess"]
    assert ("alternatives" in body) == (body["verdict"] == "uncertain")


def predicted_digits(
    client: TestClient, uploads: list[bytes], params: dict[str, str] | None = None
) -> np.ndarray:
    """POST each upload to /predict from 8 threads (as concurrent clients would); the model's
    reading of each (``best_guess``, whatever the verdict: these measure the classifier)."""

    def digit(data: bytes) -> int:
        response = post_image(client, data, params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert_consistent_reading(body)
        return body["best_guess"]

    with ThreadPoolExecutor(8) as pool:
        return np.array(list(pool.map(digit, uploads)))


def assert_clean_error(response: httpx.Response, status: int, *phrases: str) -> None:
    """The error contract: the status, JSON {"detail": str}, no traceback or server path."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"detail"}
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert "Traceback" not in response.text
    assert "/tmp" not in response.text
    assert "/work" not in response.text
    for phrase in phrases:
        assert phrase.lower() in body["detail"].lower()


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app started (lifespan) on this event loop, with an async client for concurrency."""
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://test") as client,
    ):
        yield client


def multipart(data: bytes, field: str = "file") -> dict[str, tuple[str, bytes]]:
    return {field: ("digit.png", data)}


def png_bomb(width: int = 60_000, height: int = 60_000) -> bytes:
    """A few hundred bytes that claim 3.6 gigapixels: only the header may ever be read."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        body = kind + payload
        return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (width + 1) * 8, 9)  # a sliver of the promised pixels
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )


def encode(array: np.ndarray, image_format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, image_format, **options)
    return buffer.getvalue()


# --- predictions on real digits ---------------------------------------------------------------


def test_mnist_pngs_score_the_offline_accuracy(
    client: TestClient, mnist_sample, model_dir: Path
) -> None:
    uploads = [encode_png(digit) for digit in mnist_sample.x_test]
    digits = predicted_digits(client, uploads)
    accuracy = float((digits == mnist_sample.y_test).mean())
    offline = json.loads((model_dir / "metadata.json").read_text())["test_accuracy"]
    assert abs(accuracy - offline) <= 0.01, f"served {accuracy:.3f} vs offline {offline:.3f}"
    # Digit by digit: an MNIST digit reaches the model unchanged, so it gets the offline answer.
    model_input = (mnist_sample.x_test[..., np.newaxis] / 255).astype(np.float32)
    offline_digits = client.app.state.service.model.predict(model_input).argmax(axis=1)
    assert (digits == offline_digits).mean() >= 0.99


def test_prediction_response_shape(client: TestClient, mnist_sample) -> None:
    response = post_image(client, encode_png(mnist_sample.x_test[0]))
    assert response.status_code == 200
    body = response.json()
    assert_consistent_reading(body)
    assert body["best_guess"] == mnist_sample.y_test[0]
    assert len(body["probabilities"]) == 10
    assert sum(body["probabilities"]) == pytest.approx(1.0, abs=1e-4)
    assert body["model_version"] == "1"
    assert body["preprocess"] == "full"
    assert set(body["timing_ms"]) == {"read", "preprocess", "inference", "total"}
    assert "preprocessed_png_base64" not in body
    assert response.headers["x-request-id"]


def test_photographed_digits_need_the_preprocessing(client: TestClient, mnist_sample) -> None:
    """Phone photos, scans and canvas exports of the same digits: the normalisation must bring
    them to MNIST-level accuracy, and without it (?preprocess=none) they must fail."""
    x, y = mnist_sample.x_test, mnist_sample.y_test
    picks = np.arange(PHOTOS_PER_KIND * len(KINDS)) * (len(x) // (PHOTOS_PER_KIND * len(KINDS)))
    kinds = [KINDS[n % len(KINDS)] for n in range(len(picks))]
    photos = [photograph(x[i], kind, seed=int(i)) for i, kind in zip(picks, kinds, strict=True)]
    png_accuracy = float(
        (predicted_digits(client, [encode_png(x[i]) for i in picks]) == y[picks]).mean()
    )

    normalised = predicted_digits(client, photos) == y[picks]
    naive = predicted_digits(client, photos, {"preprocess": "none"}) == y[picks]

    assert normalised.mean() >= png_accuracy - 0.05, f"photos {normalised.mean():.3f}"
    assert normalised.mean() - naive.mean() >= 0.5, f"{normalised.mean():.2f} vs {naive.mean():.2f}"
    for kind in KINDS:  # no kind of upload may be left behind
        of_kind = np.array(kinds) == kind
        assert normalised[of_kind].mean() >= 0.8, f"{kind}: {normalised[of_kind].mean():.2f}"


def test_include_preprocessed_returns_the_model_input(client: TestClient, mnist_sample) -> None:
    digit = mnist_sample.x_test[1]
    response = post_image(client, encode_png(digit), {"include": "preprocessed"})
    assert response.status_code == 200
    png = base64.b64decode(response.json()["preprocessed_png_base64"])
    seen = np.asarray(Image.open(io.BytesIO(png)))
    assert seen.shape == (28, 28)
    # An MNIST digit is already normalised: the model sees it unchanged.
    assert np.abs(seen.astype(int) - digit.astype(int)).max() <= 1


def test_unknown_query_values_are_422(client: TestClient, mnist_sample) -> None:
    response = post_image(client, encode_png(mnist_sample.x_test[0]), {"preprocess": "magic"})
    assert_clean_error(response, 422, "preprocess")


# --- verdicts ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_probabilities(client: TestClient, mnist_sample) -> np.ndarray:
    """The served model's probabilities for every sample test digit, offline."""
    x = (mnist_sample.x_test[..., np.newaxis] / 255).astype(np.float32)
    return client.app.state.service.model.predict(x)


@pytest.fixture(scope="module")
def clear_digit(mnist_sample, sample_probabilities: np.ndarray) -> tuple[bytes, int]:
    """The PNG and label of the sample digit the model reads right most confidently."""
    right = sample_probabilities.argmax(axis=1) == mnist_sample.y_test
    index = int(np.argmax(np.where(right, sample_probabilities.max(axis=1), -1)))
    return encode_png(mnist_sample.x_test[index]), int(mnist_sample.y_test[index])


@pytest.fixture(scope="module")
def sure_but_not_certain(mnist_sample, sample_probabilities: np.ndarray) -> tuple[bytes, int]:
    """Like ``clear_digit``, but with a reported confidence below 1.0: UNCERTAIN_BELOW=1.0
    must make it uncertain (an answer of exactly 1.0 is certain under any threshold)."""
    right = sample_probabilities.argmax(axis=1) == mnist_sample.y_test
    confidence = np.round(sample_probabilities.max(axis=1).astype(np.float64), 6)
    index = int(np.argmax(np.where(right & (confidence < 1.0), confidence, -1)))
    assert right[index], "no digit read right short of certainty"
    assert confidence[index] >= 0.9, f"the clearest is only {confidence[index]}"
    return encode_png(mnist_sample.x_test[index]), int(mnist_sample.y_test[index])


def test_a_clear_digit_is_a_digit(client: TestClient, clear_digit: tuple[bytes, int]) -> None:
    png, label = clear_digit
    response = post_image(client, png)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["verdict"] == "digit"
    assert body["digit"] == body["best_guess"] == label
    assert "alternatives" not in body
    points = client.get("/model").json()["operating_points"]
    assert body["confidence"] >= points["uncertain_below"]


def _access_lines(records: list[logging.LogRecord], route: str) -> list[dict]:
    return [r.fields for r in records if r.name == "app.access" and r.fields.get("route") == route]


@pytest.mark.parametrize(
    ("verdict", "overrides"),
    [
        ("uncertain", {"UNCERTAIN_BELOW": 1.0}),
        ("not_a_digit", {"NOT_A_DIGIT_BELOW": 1.0, "UNCERTAIN_BELOW": 1.0}),
    ],
)
def test_settings_change_the_verdict_on_the_same_upload(
    client: TestClient,
    service_settings: Settings,
    sure_but_not_certain: tuple[bytes, int],
    caplog: pytest.LogCaptureFixture,
    verdict: str,
    overrides: dict[str, float],
) -> None:
    png, label = sure_but_not_certain
    as_fitted = post_image(client, png).json()
    assert as_fitted["verdict"] == "digit"
    settings = service_settings.model_copy(update=overrides)
    with (
        caplog.at_level(logging.INFO, logger="app.access"),
        TestClient(create_app(settings)) as strict,
    ):
        single = post_image(strict, png)
        batch = strict.post(
            "/predict/batch",
            files=[("files", ("d.png", png)), ("files", ("blank.jpg", _blank_page()))],
        )
        points = strict.get("/model").json()["operating_points"]
        samples = metric_samples(strict)

    assert single.status_code == 200, single.text
    body = single.json()
    assert_consistent_reading(body)
    assert body["verdict"] == verdict
    # The same model read the same image: only the judgement changed.
    assert body["best_guess"] == label
    assert body["probabilities"] == as_fitted["probabilities"]
    if verdict == "not_a_digit":
        assert body["digit"] is None
        assert '"digit":null' in single.text  # sent as null, not left out
    else:
        assert body["digit"] == label
        alternatives = body["alternatives"]
        probabilities = body["probabilities"]
        # The three most probable, most probable first (ties in the rounded values aside).
        assert alternatives[0]["digit"] == label
        assert len({a["digit"] for a in alternatives}) == 3
        assert [a["probability"] for a in alternatives] == sorted(probabilities)[::-1][:3]
        assert all(probabilities[a["digit"]] == a["probability"] for a in alternatives)

    item, blank = batch.json()["results"]
    reading = ("verdict", "digit", "best_guess", "confidence", "alternatives", "probabilities")
    assert {k: item.get(k) for k in reading} == {k: body.get(k) for k in reading}
    assert "digit" in item
    assert (blank["status_code"], blank["detail"]) == (
        422,
        "The image has no contrast that looks like ink.",
    )

    expected_points = {
        "not_a_digit_below": overrides.get("NOT_A_DIGIT_BELOW", as_fitted_points(client)[0]),
        "uncertain_below": overrides["UNCERTAIN_BELOW"],
        "source": "settings",
    }
    assert {k: points[k] for k in expected_points} == expected_points
    # Counted under the new verdict: once alone, once in the batch.
    assert samples[prediction_series(verdict, body["digit"])] == 2

    [single_line] = _access_lines(caplog.records, "/predict")
    assert (single_line["verdict"], single_line["digit"]) == (verdict, body["digit"])
    assert single_line["best_guess"] == label
    [batch_line] = _access_lines(caplog.records, "/predict/batch")
    counts = {"digit": 0, "uncertain": 0, "not_a_digit": 0, "several_digits": 0, verdict: 1}
    assert batch_line["verdicts"] == counts
    assert batch_line["digits"] == [body["digit"]]


def as_fitted_points(client: TestClient) -> tuple[float, float]:
    """The operating points the session's app (no overrides) judges by."""
    points = client.get("/model").json()["operating_points"]
    return points["not_a_digit_below"], points["uncertain_below"]


def _lifespan_failure(app: FastAPI) -> tuple[list[dict], BaseException]:
    """Run the app's ASGI lifespan startup as uvicorn would; what it sent and what it raised."""
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "lifespan.startup"}

    async def send(message: dict) -> None:
        sent.append(message)

    async def start() -> BaseException:
        try:
            await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
        except Exception as exc:  # what the server would see
            return exc
        raise AssertionError(f"startup did not fail: {sent}")

    raised = asyncio.run(start())
    return sent, raised


@pytest.mark.parametrize(
    ("overrides", "phrases"),
    [
        (
            {"NOT_A_DIGIT_BELOW": 0.9, "UNCERTAIN_BELOW": 0.5},
            [
                "NOT_A_DIGIT_BELOW=0.9 (from the settings)",
                "UNCERTAIN_BELOW=0.5 (from the settings)",
            ],
        ),
        (
            {"NOT_A_DIGIT_BELOW": 1.0},
            ["NOT_A_DIGIT_BELOW=1.0 (from the settings)", "uncertain_below="],
        ),
    ],
    ids=["out of order", "above the model's uncertain_below"],
)
def test_operating_points_that_do_not_fit_stop_startup_with_one_line(
    service_settings: Settings, overrides: dict[str, float], phrases: list[str]
) -> None:
    app = create_app(service_settings.model_copy(update=overrides))
    sent, raised = _lifespan_failure(app)
    [failed] = [m for m in sent if m["type"] == "lifespan.startup.failed"]
    line = failed["message"]
    assert line.startswith("Cannot start: Invalid operating points")
    assert "\n" not in line
    assert "Traceback" not in line
    for phrase in phrases:
        assert phrase in line
    assert type(raised).__name__ == "InvalidOperatingPoints"
    assert app.state.service.ready is False


def non_digit(kind: str) -> bytes:
    """Dark ink on a white 200x200 page: a capital letter, or concentric squares.

    Letters with no digit's shape in them: an A, an H or a Y is close enough to a 4 that the
    small test model, trained on 2,250 digits, cannot be expected to tell them apart (the
    default model's figures per kind are in the README).
    """
    page = np.full((200, 200), 255, np.uint8)
    if kind == "squares":
        for half in (80, 55, 30):
            cv2.rectangle(page, (100 - half, 100 - half), (100 + half, 100 + half), 0, 9)
    else:
        font = cv2.FONT_HERSHEY_SIMPLEX
        (width, height), _ = cv2.getTextSize(kind, font, 5, 14)
        origin = ((200 - width) // 2, (200 + height) // 2)
        cv2.putText(page, kind, origin, font, 5, 0, 14, cv2.LINE_AA)
    return encode_png(page)


@pytest.mark.parametrize("kind", ["E", "M", "W", "squares"])
def test_letters_and_shapes_are_not_digits(
    client: TestClient, fitted_operating_points: dict, kind: str
) -> None:
    response = post_image(client, non_digit(kind))
    assert response.status_code == 200, response.text
    body = response.json()
    assert_consistent_reading(body)
    assert body["verdict"] == "not_a_digit", (
        f"{kind!r} read as {body['best_guess']} at {body['confidence']} "
        f"(not_a_digit_below {fitted_operating_points['not_a_digit_below']})"
    )
    assert body["digit"] is None


# --- batch ------------------------------------------------------------------------------------


def test_batch_answers_in_order_with_per_file_errors(client: TestClient, mnist_sample) -> None:
    digits = mnist_sample.x_test[:12]
    files = [("files", (f"{i}.png", encode_png(d))) for i, d in enumerate(digits)]
    files.insert(5, ("files", ("notes.txt", b"not an image at all")))
    response = client.post("/predict/batch", files=files)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == 13
    assert body["failed"] == 1
    results = body["results"]
    assert [r["index"] for r in results] == list(range(13))
    assert results[5] == {
        "index": 5,
        "filename": "notes.txt",
        "status_code": 415,
        "detail": results[5]["detail"],
    }
    good = results[:5] + results[6:]
    assert [r["filename"] for r in good] == [f"{i}.png" for i in range(12)]
    # Each file gets the answer /predict gives it alone: the same verdict, digit, alternatives.
    reading = ("verdict", "digit", "best_guess", "confidence", "alternatives", "probabilities")
    singles = [post_image(client, encode_png(d)).json() for d in digits]
    for item, single in zip(good, singles, strict=True):
        assert_consistent_reading(item)
        assert {k: item.get(k) for k in reading} == {k: single.get(k) for k in reading}


def test_batch_of_too_many_files_is_413(client: TestClient, mnist_sample) -> None:
    png = encode_png(mnist_sample.x_test[0])
    response = client.post("/predict/batch", files=[("files", ("d.png", png))] * 65)
    assert_clean_error(response, 413, "more than 64 files", "at most 64")


def _framed(*parts: tuple[str, str | None, bytes], closed: bool = True) -> bytes:
    """A multipart body by hand: (field name, filename or None for a text field, content)."""
    body = b""
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"' + (
            f'; filename="{filename}"' if filename is not None else ""
        )
        body += f"--b\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + content + b"\r\n"
    return body + (b"--b--\r\n" if closed else b"")


def _post_framed(client: TestClient, path: str, body: bytes) -> httpx.Response:
    headers = {"content-type": "multipart/form-data; boundary=b"}
    return client.post(path, content=body, headers=headers)


def test_text_fields_beside_the_file_are_ignored(client: TestClient, mnist_sample) -> None:
    png = encode_png(mnist_sample.x_test[0])
    body = _framed(("note", None, b"hello"), ("file", "d.png", png), ("more", None, b"x"))
    response = _post_framed(client, "/predict", body)
    assert response.status_code == 200, response.text
    assert response.json()["best_guess"] == mnist_sample.y_test[0]


@pytest.mark.parametrize(
    ("case", "status", "phrase"),
    [
        ("two files to /predict", 400, "/predict/batch"),
        ("a second file under another name", 400, "one image"),
        ("the file field sent as text", 422, "must be a file"),
        ("a body cut off inside the file", 400, "ends inside a part"),
        ("a part without a name", 400, "name"),
        ("17 text fields", 400, "too many fields"),
        ("an empty boundary", 400, "boundary"),
    ],
)
def test_malformed_multipart_bodies_get_a_clear_error(
    client: TestClient, mnist_sample, case: str, status: int, phrase: str
) -> None:
    png = encode_png(mnist_sample.x_test[0])
    headers = {"content-type": "multipart/form-data; boundary=b"}
    if case == "two files to /predict":
        body = _framed(("file", "a.png", png), ("file", "b.png", png))
    elif case == "a second file under another name":
        body = _framed(("file", "a.png", png), ("thumbnail", "t.png", png))
    elif case == "the file field sent as text":
        body = _framed(("file", None, b"iVBORw0KGgo="))
    elif case == "a body cut off inside the file":
        body = _framed(("file", "d.png", png), closed=False)[:-40]
    elif case == "a part without a name":
        body = b'--b\r\nContent-Disposition: form-data; filename="d.png"\r\n\r\n' + png
        body += b"\r\n--b--\r\n"
    elif case == "17 text fields":
        body = _framed(*[(f"f{i}", None, b"1") for i in range(17)], ("file", "d.png", png))
    else:
        body = _framed(("file", "d.png", png))
        headers = {"content-type": "multipart/form-data; boundary="}
    assert_clean_error(client.post("/predict", content=body, headers=headers), status, phrase)


def test_batch_without_files_is_422(client: TestClient) -> None:
    assert_clean_error(client.post("/predict/batch", data={"x": "1"}), 422, "files")


# --- bad input --------------------------------------------------------------------------------


def _blank_page() -> bytes:
    page = np.full((600, 800, 3), 236, np.uint8)
    page += np.random.default_rng(0).integers(0, 6, page.shape, dtype=np.uint8)
    return encode(page, "JPEG", quality=90)


BAD_UPLOADS: dict[str, tuple[Callable[[np.ndarray], bytes], int, str]] = {
    "not an image": (lambda _d: bytes(range(256)) * 4, 400, "not a PNG"),
    "empty file": (lambda _d: b"", 400, "empty"),
    "truncated png": (lambda d: encode_png(d)[:100], 400, "truncated"),
    "truncated jpeg": (lambda d: photograph(d, "jpeg", 1)[:3000], 400, "truncated"),
    "corrupt png": (lambda d: encode_png(d)[:40] + b"\x00" * 200, 400, "corrupt"),
    "svg": (
        lambda _d: b'<svg xmlns="http://www.w3.org/2000/svg"><text>7</text></svg>',
        415,
        "raster",
    ),
    "pdf": (lambda _d: b"%PDF-1.7\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF", 415, "raster"),
    "decompression bomb": (lambda _d: png_bomb(), 413, "pixels"),
    "blank page": (lambda _d: _blank_page(), 422, "ink"),
}


@pytest.mark.parametrize("case", BAD_UPLOADS)
def test_bad_uploads_get_their_status_and_the_service_keeps_serving(
    client: TestClient, mnist_sample, case: str
) -> None:
    make, status, phrase = BAD_UPLOADS[case]
    digit = mnist_sample.x_test[0]
    assert_clean_error(post_image(client, make(digit)), status, phrase)
    assert post_image(client, encode_png(digit)).json()["best_guess"] == mnist_sample.y_test[0]


def test_missing_file_field_is_422(client: TestClient, mnist_sample) -> None:
    png = encode_png(mnist_sample.x_test[0])
    response = client.post("/predict", files={"image": ("d.png", png)})
    assert_clean_error(response, 422, "file")
    assert_clean_error(client.post("/predict", content=png), 422, "multipart")


def test_upload_over_the_limit_is_413(service_settings: Settings, mnist_sample) -> None:
    settings = service_settings.model_copy(update={"MAX_UPLOAD_BYTES": 4096})
    photo = photograph(mnist_sample.x_test[0], "jpeg", 0)
    assert len(photo) > 4096
    with TestClient(create_app(settings)) as client:
        assert_clean_error(post_image(client, photo), 413, "4,096")
        small = post_image(client, encode_png(mnist_sample.x_test[0]))
        assert small.status_code == 200
        metrics = client.get("/metrics").text
    # Refused before routing, yet counted under its route, not as an unknown path.
    assert 'http_requests_total{method="POST",route="/predict",status="413"} 1.0' in metrics


def test_an_endless_upload_is_cut_off_at_the_limit(service_settings: Settings) -> None:
    """No Content-Length, a body that never ends: 413 once MAX_UPLOAD_BYTES have arrived."""
    limit = 64 * 1024
    app = create_app(service_settings.model_copy(update={"MAX_UPLOAD_BYTES": limit}))
    received = 0
    messages: list[dict[str, object]] = []
    head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n\r\n'

    async def receive() -> dict[str, object]:
        nonlocal received
        chunk = head if received == 0 else b"\x00" * 4096
        received += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: dict[str, object]) -> None:
        messages.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/predict",
        "raw_path": b"/predict",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"multipart/form-data; boundary=b")],
        "client": ("127.0.0.1", 1234),
        "server": ("test", 80),
        "state": {},
    }

    async def started_app() -> None:  # ready, so that the body is what gets refused
        async with app.router.lifespan_context(app):
            await asyncio.wait_for(app(scope, receive, send), timeout=60)

    asyncio.run(started_app())
    assert messages[0]["status"] == 413
    assert limit < received <= limit + 2 * 4096
    assert "larger than the 65,536-byte limit" in json.loads(messages[1]["body"])["detail"]


# --- health and readiness ---------------------------------------------------------------------


def test_ready_only_between_startup_and_shutdown(service_settings: Settings, mnist_sample) -> None:
    app = create_app(service_settings)
    png = encode_png(mnist_sample.x_test[0])
    before = TestClient(app)  # not entered: the lifespan has not run, no model is loaded
    assert before.get("/health/live").json() == {"status": "alive"}
    assert_clean_error(before.get("/health/ready"), 503, "not loaded")
    # Every route that says "not ready" says when to retry, as the prediction routes do.
    for path in ("/health/ready", "/health", "/v2/health/ready"):
        assert before.get(path).headers["retry-after"] == "1", path
    assert before.get("/health").status_code == 503
    assert before.get("/health").json()["model_loaded"] is False
    not_yet = post_image(before, png)
    assert_clean_error(not_yet, 503, "retry")
    assert not_yet.headers["retry-after"] == "1"

    with TestClient(app) as started:
        assert started.get("/health/ready").json() == {"status": "ready"}
        assert started.get("/health").json() == {
            "status": "ok",
            "model_loaded": True,
            "model_version": "1",
        }
        assert post_image(started, png).status_code == 200

    assert app.state.service.ready is False
    assert TestClient(app).get("/health/ready").status_code == 503


def test_model_endpoint_shows_the_metadata(client: TestClient, model_dir: Path) -> None:
    metadata = json.loads((model_dir / "metadata.json").read_text())
    body = client.get("/model").json()
    assert body["version"] == "1"
    for key in ("arch", "parameters", "test_accuracy", "created", "tensorflow_version"):
        assert body[key] == metadata[key]
    assert len(body["per_class"]) == 10
    # Provenance by content hash, without the training machine's file paths.
    assert body["data"]["sha256"] == metadata["data"]["sha256"]
    assert "source" in metadata["data"]
    assert "source" not in body["data"]
    assert body["backend"] == "tflite"  # the default INFERENCE_BACKEND
    assert body["tflite"]["sha256"] == metadata["tflite"]["sha256"]
    # What training recorded about calibration and outlier exposure passes through as written.
    for key in ("calibration", "negatives", "validation"):
        assert body.get(key) == metadata.get(key)


def test_model_endpoint_shows_the_operating_points_in_force(
    client: TestClient, model_dir: Path
) -> None:
    fitted = json.loads((model_dir / "metadata.json").read_text()).get("operating_points")
    points = client.get("/model").json()["operating_points"]
    if fitted is None:  # a model from before training fitted them
        assert points == {
            "not_a_digit_below": DEFAULT_POINTS.not_a_digit_below,
            "uncertain_below": DEFAULT_POINTS.uncertain_below,
            "source": "default",
        }
    else:
        assert points == {
            "not_a_digit_below": fitted["not_a_digit_below"],
            "uncertain_below": fitted["uncertain_below"],
            "source": "metadata",
            "fitted": fitted,
        }


def metric_samples(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """/metrics as {(name, sorted labels): value}."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(client.get("/metrics").text)
        for sample in family.samples
    }


def prediction_series(verdict: str, digit: int | None) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The mnist_predictions_total series an answer is counted in."""
    labels = {"digit": "none" if digit is None else str(digit), "verdict": verdict}
    return "mnist_predictions_total", tuple(sorted(labels.items()))


def test_metrics_count_requests_verdicts_and_the_model(client: TestClient, mnist_sample) -> None:
    before = metric_samples(client)
    answers = [post_image(client, encode_png(mnist_sample.x_test[i])).json() for i in range(3)]
    post_image(client, b"")
    samples = metric_samples(client)

    def value(name: str, **labels: str) -> float:
        return samples.get((name, tuple(sorted(labels.items()))), 0.0)

    ok = {"method": "POST", "route": "/predict", "status": "200"}
    assert value("http_requests_total", **ok) >= 3
    assert value("http_request_duration_seconds_count", **ok) >= 3
    assert value("http_request_duration_seconds_bucket", **ok, le="+Inf") >= 3
    assert value("http_requests_total", method="POST", route="/predict", status="400") >= 1
    # Every series is exported from the start: each digit under `digit` and `uncertain`, and
    # "none" (no digit named) under `not_a_digit` and `several_digits` only.
    series = {key for key in samples if key[0] == "mnist_predictions_total"}
    expected = {prediction_series(v, d) for v in ("digit", "uncertain") for d in range(10)}
    nameless = {prediction_series(v, None) for v in ("not_a_digit", "several_digits")}
    assert series == expected | nameless
    # Each answer was counted once, under its own verdict and digit.
    counted = {key: samples[key] - before.get(key, 0.0) for key in series}
    wanted = collections.Counter(prediction_series(a["verdict"], a["digit"]) for a in answers)
    assert {key: n for key, n in counted.items() if n} == dict(wanted)
    assert value("mnist_model_info", version="1", arch="default") == 1
    assert value("mnist_model_ready") == 1
    assert value("mnist_inference_batch_size_count") >= 1


def test_openapi_documents_errors_and_examples(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    predict = spec["paths"]["/predict"]["post"]
    assert {"200", "400", "413", "415", "422", "503"} <= set(predict["responses"])
    error_schema = predict["responses"]["415"]["content"]["application/json"]["schema"]
    assert error_schema["$ref"].endswith("/ErrorResponse")
    schemas = spec["components"]["schemas"]
    assert {"verdict", "digit", "best_guess", "confidence"} <= set(
        schemas["Prediction"]["required"]
    )
    # The verdicts are explained where /docs shows them.
    for verdict in ("digit", "uncertain", "not_a_digit"):
        assert f"`{verdict}`:" in schemas["Verdict"]["description"]
    # One example per verdict, each a possible answer.
    ok = predict["responses"]["200"]["content"]["application/json"]
    assert ok["schema"]["$ref"].endswith("/Prediction")
    named = {name: example["value"] for name, example in ok["examples"].items()}
    assert set(named) == {"digit", "uncertain", "not_a_digit"}
    examples = [*schemas["Prediction"]["examples"], *named.values()]
    batch_example = schemas["BatchPrediction"]["examples"][0]
    examples += [r for r in batch_example["results"] if "verdict" in r]
    assert {example["verdict"] for example in examples} == set(named)
    for example in examples:
        assert_consistent_reading(example)
        (BatchItem if "index" in example else Prediction).model_validate(example)
    assert client.get("/docs").status_code == 200


# --- batching, overload and failure under concurrency -----------------------------------------


def test_concurrent_requests_share_model_calls(service_settings: Settings, mnist_sample) -> None:
    digits = mnist_sample.x_test[:32]
    app = create_app(service_settings)

    async def scenario() -> tuple[list[httpx.Response], int]:
        async with running(app) as client:
            calls_before = app.state.service.predictor.calls
            responses = await asyncio.gather(
                *(client.post("/predict", files=multipart(encode_png(d))) for d in digits)
            )
            return responses, app.state.service.predictor.calls - calls_before

    responses, calls = asyncio.run(scenario())
    assert [r.status_code for r in responses] == [200] * 32
    expected = app.state.service.model.predict((digits[..., np.newaxis] / 255).astype(np.float32))
    for response, probabilities in zip(responses, expected, strict=True):
        assert response.json()["best_guess"] == int(probabilities.argmax())
    assert calls < len(digits)


def test_uploads_refused_on_sight_do_not_wait_for_a_decoding_thread(
    service_settings: Settings, mnist_sample
) -> None:
    """With every decoding thread taken, an empty file, a text file and a PNG whose header
    claims 3.6 gigapixels are still answered, and a photo is not (it waits for a thread)."""
    app = create_app(service_settings)
    photo = photograph(mnist_sample.x_test[0], "jpeg", 0)

    async def scenario() -> tuple[list[httpx.Response], bool]:
        async with running(app) as client:
            limiter = app.state.service.preparer.limiter
            holders = [object() for _ in range(int(limiter.total_tokens))]
            for holder in holders:
                await limiter.acquire_on_behalf_of(holder)
            waiting = asyncio.create_task(client.post("/predict", files=multipart(photo)))
            refused = [
                await asyncio.wait_for(client.post("/predict", files=multipart(body)), 10)
                for body in (b"", b"just some text, not an image", png_bomb())
            ]
            await asyncio.sleep(0.2)
            photo_waited = not waiting.done()
            for holder in holders:
                limiter.release_on_behalf_of(holder)
            assert (await waiting).status_code == 200
            return refused, photo_waited

    (empty, text, bomb), photo_waited = asyncio.run(scenario())
    assert_clean_error(empty, 400, "empty")
    assert_clean_error(text, 415, "raster")
    assert_clean_error(bomb, 413, "60000x60000")
    assert photo_waited


def _swap_predictor(app: FastAPI, infer: Callable[[np.ndarray], np.ndarray], **options: int):
    """Replace the started app's batcher with one around ``infer`` (which wraps the real model)."""

    async def swap() -> BatchingPredictor:
        service = app.state.service
        await service.predictor.stop()
        predictor = BatchingPredictor(infer, **options)
        await predictor.start()
        service.predictor = predictor
        return predictor

    return swap()


def test_a_full_queue_answers_503_with_retry_after(
    service_settings: Settings, mnist_sample
) -> None:
    app = create_app(service_settings)
    entered, release = threading.Event(), threading.Event()

    def gated(batch: np.ndarray) -> np.ndarray:
        entered.set()
        release.wait(timeout=30)
        return app.state.service.model.predict(batch)

    png = encode_png(mnist_sample.x_test[0])

    async def scenario() -> list[httpx.Response]:
        async with running(app) as client:
            predictor = await _swap_predictor(app, gated, max_batch_size=1, queue_max=1)
            first = asyncio.create_task(client.post("/predict", files=multipart(png)))
            await asyncio.to_thread(entered.wait, 30)
            second = asyncio.create_task(client.post("/predict", files=multipart(png)))
            while predictor.queued_rows < 1:
                await asyncio.sleep(0.001)
            refused = await client.post("/predict", files=multipart(png))
            release.set()
            return [refused, await first, await second, await client.get("/metrics")]

    refused, first, second, metrics = asyncio.run(scenario())
    assert_clean_error(refused, 503, "busy")
    assert refused.headers["retry-after"] == "1"
    assert first.status_code == second.status_code == 200
    assert "mnist_inference_rejected_total 1.0" in metrics.text


def test_a_failing_model_call_fails_only_its_request(
    service_settings: Settings, mnist_sample
) -> None:
    """A white square sent with ?preprocess=none is all ones: the wrapper refuses that batch."""
    app = create_app(service_settings)

    def refuses_white(batch: np.ndarray) -> np.ndarray:
        if np.any(batch.min(axis=(1, 2, 3)) == 1.0):
            raise RuntimeError("simulated model failure")
        return app.state.service.model.predict(batch)

    white = encode_png(np.full((28, 28), 255, np.uint8))
    digits = mnist_sample.x_test[:6]

    async def scenario() -> tuple[list[httpx.Response], httpx.Response]:
        async with running(app) as client:
            await _swap_predictor(app, refuses_white, max_batch_size=32)
            posts = [client.post("/predict?preprocess=none", files=multipart(white))]
            posts += [client.post("/predict", files=multipart(encode_png(d))) for d in digits]
            together = await asyncio.gather(*posts)
            after = await client.post("/predict", files=multipart(encode_png(digits[0])))
            return together, after

    (failed, *good), after = asyncio.run(scenario())
    assert_clean_error(failed, 500, "inference failed")
    assert "simulated" not in failed.text  # internals stay in the log
    assert [r.status_code for r in good] == [200] * len(digits)
    assert after.status_code == 200


def test_only_mnist_sized_pngs_are_decoded_on_the_event_loop(mnist_sample) -> None:
    def inline(data: bytes) -> bool:
        try:
            return decodes_inline(sniff(data))
        except ImageError:
            return False  # refused from its first bytes: never decoded at all

    digit = mnist_sample.x_test[0]
    assert inline(encode_png(digit))
    assert not inline(encode_png(np.pad(digit, 1)))  # 30x30
    assert not inline(encode(np.stack([digit] * 3, axis=-1), "JPEG"))
    assert not inline(png_bomb())
    assert not inline(encode_png(digit)[:20])


def test_an_untyped_error_while_decoding_is_a_400_not_a_500(
    client: TestClient, mnist_sample, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decoding promises typed errors; a file that slips past that is still the client's
    unusable image, answered 400, and the service keeps serving."""

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a decoder bug")

    monkeypatch.setattr(prepare, "prepare_image", broken)
    response = post_image(client, encode_png(mnist_sample.x_test[0]))
    assert_clean_error(response, 400, "could not be decoded")
    assert "decoder bug" not in response.text
    monkeypatch.undo()
    assert post_image(client, encode_png(mnist_sample.x_test[0])).status_code == 200
