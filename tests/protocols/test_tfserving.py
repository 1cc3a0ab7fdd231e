"""TF Serving's REST API, replaying the request and response shapes its documentation shows.

The shapes come from https://www.tensorflow.org/tfx/serving/api_rest: model status, model
metadata, ``:predict`` in row (``instances``) and columnar (``inputs``) form, named and unnamed
inputs, ``{"b64": ...}`` for binary values, and ``{"error": ...}`` on failure. kserve's v1
client, which speaks the same protocol, is run against it too.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import httpx
import numpy as np
import pytest
from kserve import InferenceRESTClient, RESTConfig


@pytest.fixture(scope="module")
def http(server_url: str):
    with httpx.Client(base_url=server_url, timeout=60) as client:
        yield client


def b64(data: bytes) -> dict[str, str]:
    return {"b64": base64.b64encode(data).decode()}


def instance(image: np.ndarray) -> list:
    return (image.astype(np.float32) / 255)[..., np.newaxis].tolist()


def test_model_status_is_the_documented_version_status_list(http: httpx.Client) -> None:
    (version,) = http.get("/v2/models/mnist").json()["versions"]
    for path in ("/v1/models/mnist", f"/v1/models/mnist-image/versions/{version}"):
        response = http.get(path)
        assert response.status_code == 200
        assert response.json() == {
            "model_version_status": [
                {
                    "version": version,
                    "state": "AVAILABLE",
                    "status": {"error_code": "OK", "error_message": ""},
                }
            ]
        }


def test_metadata_lists_the_serving_signature(http: httpx.Client) -> None:
    body = http.get("/v1/models/mnist/metadata").json()
    assert body["model_spec"]["name"] == "mnist"
    signature = body["metadata"]["signature_def"]["signature_def"]["serving_default"]
    image = signature["inputs"]["image"]
    assert image["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in image["tensor_shape"]["dim"]] == ["-1", "28", "28", "1"]
    assert signature["outputs"]["probabilities"]["dtype"] == "DT_FLOAT"
    assert signature["method_name"] == "tensorflow/serving/predict"


def test_row_format_with_unnamed_and_named_inputs(http: httpx.Client, digits) -> None:
    images, labels = digits
    unnamed = {"signature_name": "serving_default", "instances": [instance(d) for d in images[:4]]}
    named = {"instances": [{"image": instance(d)} for d in images[:4]]}

    answers = [http.post("/v1/models/mnist:predict", json=body) for body in (unnamed, named)]

    for response in answers:
        assert response.status_code == 200, response.text
        predictions = np.array(response.json()["predictions"])  # one output: values, no name
        assert predictions.shape == (4, 10)
        assert (predictions.argmax(axis=1) == labels[:4]).mean() >= 0.75
    assert answers[0].json() == answers[1].json()


def test_columnar_format_answers_outputs(http: httpx.Client, digits) -> None:
    images, _ = digits
    batch = [instance(d) for d in images[:3]]
    rows = http.post("/v1/models/mnist:predict", json={"instances": batch}).json()
    for body in ({"inputs": batch}, {"inputs": {"image": batch}}):
        response = http.post("/v1/models/mnist:predict", json=body)
        assert response.status_code == 200, response.text
        assert response.json() == {"outputs": rows["predictions"]}


def test_image_model_takes_b64_files_and_answers_as_predict_does(
    http: httpx.Client, uploads: list[bytes]
) -> None:
    files = uploads[2:6]
    expected = [http.post("/predict", files={"file": ("x", data)}).json() for data in files]

    rows = http.post(
        "/v1/models/mnist-image:predict", json={"instances": [{"image": b64(f)} for f in files]}
    )
    columns = http.post("/v1/models/mnist-image:predict", json={"inputs": [b64(f) for f in files]})

    assert rows.status_code == columns.status_code == 200
    predictions = rows.json()["predictions"]  # several outputs: one object per instance
    for got, want in zip(predictions, expected, strict=True):
        assert set(got) == {"digit", "probabilities", "verdict", "confidence"}
        assert got["verdict"] == want["verdict"]
        assert got["digit"] == (-1 if want["digit"] is None else want["digit"])
        np.testing.assert_allclose(got["probabilities"], want["probabilities"], atol=2e-6)
    outputs = columns.json()["outputs"]
    assert outputs["verdict"] == [p["verdict"] for p in predictions]
    assert outputs["probabilities"] == [p["probabilities"] for p in predictions]


def test_kserve_v1_client_predicts_with_b64_images(server_url: str, uploads: list[bytes]) -> None:
    async def go() -> Any:
        async with InferenceRESTClient(RESTConfig(protocol="v1", timeout=60)) as client:
            body = {"instances": [{"image": b64(data)} for data in uploads[:2]]}
            return await client.infer(server_url, body, model_name="mnist-image")

    answer = asyncio.run(go())
    assert [sorted(p) for p in answer["predictions"]] == [
        ["confidence", "digit", "probabilities", "verdict"]
    ] * 2


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/v1/models/mnist:predict", {"instances": [], "inputs": []}, 400, "exactly one of"),
        ("/v1/models/mnist:predict", {"examples": []}, 400, "exactly one of"),
        ("/v1/models/mnist:predict", {"instances": [[1, 2]]}, 400, "[28, 28, 1]"),
        ("/v1/models/mnist:predict", {"instances": [[[[300]] * 28] * 28]}, 400, "[0, 1]"),
        (
            "/v1/models/mnist:predict",
            {"signature_name": "predict_images", "instances": []},
            400,
            "'predict_images' not found",
        ),
        ("/v1/models/mnist-image:predict", {"instances": [{"b64": "@@"}]}, 400, "not valid base64"),
        ("/v1/models/mnist-image:predict", {"instances": ["raw"]}, 400, '{"b64"'),
        ("/v1/models/mnist-image:predict", {"instances": [b64(b"GIF89a")]}, 400, "image[0]: "),
        ("/v1/models/resnet:predict", {"instances": []}, 404, "Servable not found"),
        ("/v1/models/mnist/versions/999:predict", {"instances": []}, 404, "Specific(mnist, 999)"),
    ],
)
def test_errors_are_the_documented_error_object(
    http: httpx.Client, path: str, body: dict, status: int, message: str
) -> None:
    response = http.post(path, json=body)
    assert response.status_code == status, response.text
    assert list(response.json()) == ["error"]
    assert message in response.json()["error"]
