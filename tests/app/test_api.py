"""The HTTP API against the real app and the real SavedModel trained by the session fixture."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import struct
import threading
import zlib
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from app.api.predict import decodes_inline
from app.inference import BatchingPredictor
from app.main import create_app
from app.settings import Settings
from tests.photograph import KINDS, encode_png, photograph

PHOTOS_PER_KIND = 10


# --- helpers ----------------------------------------------------------------------------------


def post_image(
    client: TestClient, data: bytes, params: dict[str, str] | None = None
) -> httpx.Response:
    return client.post("/predict", files={"file": ("digit", data)}, params=params)


def predicted_digits(
    client: TestClient, uploads: list[bytes], params: dict[str, str] | None = None
) -> np.ndarray:
    """POST each upload to /predict from 8 threads (as concurrent clients would)."""

    def digit(data: bytes) -> int:
        response = post_image(client, data, params)
        assert response.status_code == 200, response.text
        return response.json()["digit"]

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
    offline_digits = client.app.state.model.predict(model_input).argmax(axis=1)
    assert (digits == offline_digits).mean() >= 0.99


def test_prediction_response_shape(client: TestClient, mnist_sample) -> None:
    response = post_image(client, encode_png(mnist_sample.x_test[0]))
    assert response.status_code == 200
    body = response.json()
    assert body["digit"] == int(np.argmax(body["probabilities"]))
    assert body["digit"] == mnist_sample.y_test[0]
    assert len(body["probabilities"]) == 10
    assert sum(body["probabilities"]) == pytest.approx(1.0, abs=1e-4)
    assert body["confidence"] == max(body["probabilities"])
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
    singles = [post_image(client, encode_png(d)).json()["digit"] for d in digits]
    assert [r["digit"] for r in good] == singles


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
    assert response.json()["digit"] == mnist_sample.y_test[0]


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
    assert post_image(client, encode_png(digit)).json()["digit"] == mnist_sample.y_test[0]


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

    assert app.state.ready is False
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


def test_metrics_count_requests_digits_and_the_model(client: TestClient, mnist_sample) -> None:
    for i in range(3):
        post_image(client, encode_png(mnist_sample.x_test[i]))
    post_image(client, b"")
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(client.get("/metrics").text)
        for sample in family.samples
    }

    def value(name: str, **labels: str) -> float:
        return samples.get((name, tuple(sorted(labels.items()))), 0.0)

    ok = {"method": "POST", "route": "/predict", "status": "200"}
    assert value("http_requests_total", **ok) >= 3
    assert value("http_request_duration_seconds_count", **ok) >= 3
    assert value("http_request_duration_seconds_bucket", **ok, le="+Inf") >= 3
    assert value("http_requests_total", method="POST", route="/predict", status="400") >= 1
    served = sum(value("mnist_predictions_total", digit=str(d)) for d in range(10))
    assert served >= 3
    assert value("mnist_predictions_total", digit=str(mnist_sample.y_test[0])) >= 1
    assert value("mnist_model_info", version="1", arch="default") == 1
    assert value("mnist_model_ready") == 1
    assert value("mnist_inference_batch_size_count") >= 1


def test_openapi_documents_errors_and_examples(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    predict = spec["paths"]["/predict"]["post"]
    assert {"200", "400", "413", "415", "422", "503"} <= set(predict["responses"])
    error_schema = predict["responses"]["415"]["content"]["application/json"]["schema"]
    assert error_schema["$ref"].endswith("/ErrorResponse")
    assert spec["components"]["schemas"]["Prediction"]["examples"]
    assert client.get("/docs").status_code == 200


# --- batching, overload and failure under concurrency -----------------------------------------


def test_concurrent_requests_share_model_calls(service_settings: Settings, mnist_sample) -> None:
    digits = mnist_sample.x_test[:32]
    app = create_app(service_settings)

    async def scenario() -> tuple[list[httpx.Response], int]:
        async with running(app) as client:
            calls_before = app.state.predictor.calls
            responses = await asyncio.gather(
                *(client.post("/predict", files=multipart(encode_png(d))) for d in digits)
            )
            return responses, app.state.predictor.calls - calls_before

    responses, calls = asyncio.run(scenario())
    assert [r.status_code for r in responses] == [200] * 32
    expected = app.state.model.predict((digits[..., np.newaxis] / 255).astype(np.float32))
    for response, probabilities in zip(responses, expected, strict=True):
        assert response.json()["digit"] == int(probabilities.argmax())
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
            limiter = app.state.preprocess_limiter
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
        await app.state.predictor.stop()
        predictor = BatchingPredictor(infer, **options)
        await predictor.start()
        app.state.predictor = predictor
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
        return app.state.model.predict(batch)

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
        return app.state.model.predict(batch)

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
    digit = mnist_sample.x_test[0]
    assert decodes_inline(encode_png(digit))
    assert not decodes_inline(encode_png(np.pad(digit, 1)))  # 30x30
    assert not decodes_inline(encode(np.stack([digit] * 3, axis=-1), "JPEG"))
    assert not decodes_inline(png_bomb())
    assert not decodes_inline(encode_png(digit)[:20])
