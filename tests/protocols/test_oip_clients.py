"""The Open Inference Protocol v2 spoken by its real clients to a real server process.

``tritonclient.http`` and kserve's ``InferenceRESTClient`` are used exactly as their docs
show, unchanged; the answers are also validated against the kserve package's own v2 pydantic
data models, so a response that only our own tests accept would fail here.
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import numpy as np
import orjson
import pytest
import tritonclient.http as triton
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from kserve.protocol.infer_type import RequestedOutput
from kserve.protocol.rest.v2_datamodels import (
    InferenceResponse,
    ModelMetadataResponse,
    ModelReadyResponse,
    ServerLiveResponse,
    ServerMetadataResponse,
    ServerReadyResponse,
)
from tritonclient.utils import InferenceServerException

from tests.protocols.conftest import MAX_BATCH_FILES, MAX_UPLOAD_BYTES

T = TypeVar("T")


def run(factory: Callable[[InferenceRESTClient], Awaitable[T]], protocol: str = "v2") -> T:
    """Run one call of a fresh kserve client (it is async-only) and close the client."""

    async def go() -> T:
        async with InferenceRESTClient(RESTConfig(protocol=protocol, timeout=60)) as client:
            return await factory(client)

    return asyncio.run(go())


@pytest.fixture(scope="module")
def triton_client(server_url: str) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(server_url.removeprefix("http://"), network_timeout=60)


def pixels(images: np.ndarray) -> np.ndarray:
    return (images.astype(np.float32) / 255)[..., np.newaxis]


def predict_over_http(server_url: str, files: list[bytes]) -> list[dict[str, Any]]:
    with httpx.Client(base_url=server_url, timeout=60) as http:
        return [http.post("/predict", files={"file": ("x", data)}).json() for data in files]


# --- health and metadata ----------------------------------------------------------------------


def test_health_satisfies_both_clients_and_the_protocol_schema(
    server_url: str, triton_client: triton.InferenceServerClient
) -> None:
    assert triton_client.is_server_live()
    assert triton_client.is_server_ready()
    assert triton_client.is_model_ready("mnist")
    assert triton_client.is_model_ready("mnist-image")
    assert not triton_client.is_model_ready("resnet50")

    assert run(lambda c: c.is_server_live(server_url)) is True
    assert run(lambda c: c.is_server_ready(server_url)) is True
    assert run(lambda c: c.is_model_ready(server_url, "mnist-image")) is True
    assert run(lambda c: c.is_model_ready(server_url, "resnet50")) is False

    with httpx.Client(base_url=server_url) as http:
        assert ServerLiveResponse.model_validate(http.get("/v2/health/live").json()).live
        assert ServerReadyResponse.model_validate(http.get("/v2/health/ready").json()).ready
        ready = ModelReadyResponse.model_validate(http.get("/v2/models/mnist/ready").json())
        assert (ready.name, ready.ready) == ("mnist", True)


def test_metadata_describes_both_models_as_the_protocol_lists_them(
    server_url: str, triton_client: triton.InferenceServerClient
) -> None:
    server = ServerMetadataResponse.model_validate(triton_client.get_server_metadata())
    assert server.name == "mnist-service"
    assert {"binary_tensor_data", "classification"} <= set(server.extensions)

    pixels_model = ModelMetadataResponse.model_validate(triton_client.get_model_metadata("mnist"))
    assert pixels_model.platform == "tensorflow_savedmodel"
    assert [(t.name, t.datatype, t.shape) for t in pixels_model.inputs] == [
        ("image", "FP32", [-1, 28, 28, 1])
    ]
    assert [(t.name, t.datatype, t.shape) for t in pixels_model.outputs] == [
        ("probabilities", "FP32", [-1, 10])
    ]
    image_model = ModelMetadataResponse.model_validate(
        triton_client.get_model_metadata("mnist-image")
    )
    assert [(t.name, t.datatype, t.shape) for t in image_model.inputs] == [("image", "BYTES", [-1])]
    assert {t.name: t.datatype for t in image_model.outputs} == {
        "digit": "INT32",
        "probabilities": "FP32",
        "verdict": "BYTES",
        "confidence": "FP32",
    }
    (version,) = pixels_model.versions
    assert triton_client.get_model_metadata("mnist", model_version=version)["name"] == "mnist"
    assert triton_client.is_model_ready("mnist", model_version=version)
    assert not triton_client.is_model_ready("mnist", model_version=version + "0")
    with pytest.raises(InferenceServerException, match="is not served") as raised:
        triton_client.get_model_metadata("mnist", model_version=version + "0")
    assert raised.value.status() == "404"


# --- the mnist model: FP32 pixels -------------------------------------------------------------


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_fp32_infer_on_real_digits_with_tritonclient(
    triton_client: triton.InferenceServerClient, digits, binary: bool
) -> None:
    images, labels = digits
    batch = pixels(images[:MAX_BATCH_FILES])
    tensor = triton.InferInput("image", list(batch.shape), "FP32")
    tensor.set_data_from_numpy(batch, binary_data=binary)
    wanted = [triton.InferRequestedOutput("probabilities", binary_data=binary)]

    result = triton_client.infer("mnist", [tensor], outputs=wanted, request_id="r-7")

    probabilities = result.as_numpy("probabilities")
    assert probabilities.shape == (len(batch), 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-4)
    assert (probabilities.argmax(axis=1) == labels[: len(batch)]).mean() >= 0.75
    response = result.get_response()
    assert response["id"] == "r-7"
    if not binary:
        InferenceResponse.model_validate(response)


def test_fp32_binary_and_json_answers_agree_and_match_the_kserve_client(
    server_url: str, triton_client: triton.InferenceServerClient, digits
) -> None:
    images, _ = digits
    batch = pixels(images[:4])
    answers = []
    for binary in (True, False):
        tensor = triton.InferInput("image", list(batch.shape), "FP32")
        tensor.set_data_from_numpy(batch, binary_data=binary)
        answers.append(triton_client.infer("mnist", [tensor]).as_numpy("probabilities"))

    def kserve_infer(client: InferenceRESTClient) -> Any:
        tensor = InferInput("image", list(batch.shape), "FP32")
        tensor.set_data_from_numpy(batch, binary_data=True)
        wanted = [RequestedOutput("probabilities", {"binary_data": True})]
        request = InferRequest(model_name="mnist", infer_inputs=[tensor], request_outputs=wanted)
        return client.infer(server_url, request, model_name="mnist")

    kserve_answer = run(kserve_infer)
    answers.append(kserve_answer.outputs[0].as_numpy())
    assert kserve_answer.model_name == "mnist"
    np.testing.assert_allclose(answers[0], answers[1], atol=1e-6)  # JSON carries 6 decimals
    np.testing.assert_array_equal(answers[0], answers[2])


def test_classification_extension_returns_the_top_k_digits(
    triton_client: triton.InferenceServerClient, digits
) -> None:
    images, _ = digits
    batch = pixels(images[:3])
    tensor = triton.InferInput("image", list(batch.shape), "FP32")
    tensor.set_data_from_numpy(batch)
    full = triton_client.infer("mnist", [tensor]).as_numpy("probabilities")

    top = triton_client.infer(
        "mnist", [tensor], outputs=[triton.InferRequestedOutput("probabilities", class_count=3)]
    ).as_numpy("probabilities")

    assert top.shape == (3, 3)
    for row, classes in zip(full, top, strict=True):
        parsed = [element.decode().split(":") for element in classes]
        indices = [int(index) for _, index in parsed]
        assert indices == list(np.argsort(-row, kind="stable")[:3])
        np.testing.assert_allclose([float(s) for s, _ in parsed], row[indices], atol=1e-6)


# --- the mnist-image model: encoded files -----------------------------------------------------


def test_bytes_infer_on_png_and_jpeg_uploads_answers_as_predict_does(
    server_url: str, triton_client: triton.InferenceServerClient, uploads: list[bytes]
) -> None:
    tensor = triton.InferInput("image", [len(uploads)], "BYTES")
    tensor.set_data_from_numpy(np.array(uploads, dtype=np.object_))  # binary_data=True: default

    result = triton_client.infer("mnist-image", [tensor])

    expected = predict_over_http(server_url, uploads)
    np.testing.assert_allclose(
        result.as_numpy("probabilities"), [e["probabilities"] for e in expected], atol=2e-6
    )
    assert [v.decode() for v in result.as_numpy("verdict")] == [e["verdict"] for e in expected]
    assert result.as_numpy("digit").tolist() == [
        -1 if e["digit"] is None else e["digit"] for e in expected
    ]
    np.testing.assert_allclose(
        result.as_numpy("confidence"), [e["confidence"] for e in expected], atol=2e-6
    )


def test_bytes_infer_with_the_kserve_client_and_requested_outputs(
    server_url: str, uploads: list[bytes], digits
) -> None:
    _, labels = digits

    def kserve_infer(client: InferenceRESTClient) -> Any:
        tensor = InferInput("image", [4], "BYTES")
        tensor.set_data_from_numpy(np.array(uploads[:4], dtype=np.object_), binary_data=True)
        wanted = [
            RequestedOutput("digit", {"binary_data": True}),
            RequestedOutput("verdict", {"binary_data": False}),
        ]
        request = InferRequest(
            model_name="mnist-image", infer_inputs=[tensor], request_outputs=wanted
        )
        return client.infer(server_url, request, model_name="mnist-image")

    answer = run(kserve_infer)

    assert [output.name for output in answer.outputs] == ["digit", "verdict"]
    digits_read = answer.outputs[0].as_numpy()
    assert (digits_read == labels[:4]).mean() >= 0.75
    assert set(answer.outputs[1].as_numpy()) <= {"digit", "uncertain", "not_a_digit"}


def test_a_json_only_bytes_request_carries_base64_files_and_validates(
    server_url: str, uploads: list[bytes]
) -> None:
    request = {
        "id": "json-1",
        "inputs": [
            {
                "name": "image",
                "shape": [2],
                "datatype": "BYTES",
                "data": [base64.b64encode(data).decode() for data in uploads[3:5]],
            }
        ],
        "outputs": [{"name": "verdict"}, {"name": "probabilities"}],
    }
    with httpx.Client(base_url=server_url, timeout=60) as http:
        response = http.post("/v2/models/mnist-image/infer", json=request)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = InferenceResponse.model_validate(response.json())
    assert body.id == "json-1"
    assert [o.name for o in body.outputs] == ["verdict", "probabilities"]
    expected = predict_over_http(server_url, uploads[3:5])
    assert body.outputs[0].data == [e["verdict"] for e in expected]
    assert body.outputs[1].shape == [2, 10]
    np.testing.assert_allclose(
        np.reshape(body.outputs[1].data, (2, 10)),
        [e["probabilities"] for e in expected],
        atol=2e-6,
    )


# --- errors -----------------------------------------------------------------------------------


def _triton_error(call: Callable[[], object]) -> tuple[str, str]:
    with pytest.raises(InferenceServerException) as raised:
        call()
    return str(raised.value.status()), raised.value.message()


@pytest.mark.parametrize(
    ("model", "name", "shape", "datatype", "status", "message"),
    [
        ("mnist", "image", [1, 784], "FP32", "400", r"shape \['N', 28, 28, 1\], got \[1, 784\]"),
        ("mnist", "image", [1, 28, 28, 1], "FP64", "400", "must be FP32, got FP64"),
        ("mnist", "pixels", [1, 28, 28, 1], "FP32", "400", "exactly one input, 'image'"),
        ("mnist", "image", [MAX_BATCH_FILES + 1, 28, 28, 1], "FP32", "413", "MAX_BATCH_FILES"),
        ("mnist-image", "image", [1, 1], "BYTES", "400", r"shape \['N'\]"),
        ("resnet50", "image", [1, 28, 28, 1], "FP32", "404", "Unknown model 'resnet50'"),
    ],
)
def test_wrong_requests_get_the_protocols_status_and_a_message(
    triton_client: triton.InferenceServerClient,
    model: str,
    name: str,
    shape: list[int],
    datatype: str,
    status: str,
    message: str,
) -> None:
    tensor = triton.InferInput(name, shape, datatype)
    if datatype == "BYTES":
        tensor.set_data_from_numpy(np.array([[b"x"]], dtype=np.object_))
    else:
        dtype = np.float64 if datatype == "FP64" else np.float32
        tensor.set_data_from_numpy(np.zeros(shape, dtype=dtype))

    got_status, got_message = _triton_error(lambda: triton_client.infer(model, [tensor]))

    assert got_status == status
    assert re.search(message, got_message), got_message


def test_a_bytes_element_that_is_not_an_image_names_its_index(
    triton_client: triton.InferenceServerClient, uploads: list[bytes]
) -> None:
    tensor = triton.InferInput("image", [3], "BYTES")
    tensor.set_data_from_numpy(np.array([uploads[0], b"not an image", uploads[1]], np.object_))
    status, message = _triton_error(lambda: triton_client.infer("mnist-image", [tensor]))
    assert status == "400"
    assert message.startswith("image[1]: ")


def test_pixels_outside_0_1_are_refused(triton_client: triton.InferenceServerClient) -> None:
    tensor = triton.InferInput("image", [1, 28, 28, 1], "FP32")
    tensor.set_data_from_numpy(np.full((1, 28, 28, 1), 255, np.float32))  # forgot the /255
    status, message = _triton_error(lambda: triton_client.infer("mnist", [tensor]))
    assert (status, "in [0, 1]" in message) == ("400", True)


def test_raw_protocol_errors_are_json_with_an_error_key(server_url: str) -> None:
    too_big = b"{" + b" " * MAX_UPLOAD_BYTES + b"}"
    count_mismatch = {
        "inputs": [{"name": "image", "shape": [1, 28, 28, 1], "datatype": "FP32", "data": [0.0]}]
    }
    not_base64 = {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": ["??"]}]}
    with httpx.Client(base_url=server_url, timeout=60) as http:
        cases = [
            (http.post("/v2/models/mnist/infer", json=count_mismatch), 400, "holds 784 elements"),
            (http.post("/v2/models/mnist-image/infer", json=not_base64), 400, "base64"),
            (http.post("/v2/models/mnist/infer", content=b"{oops"), 400, "not valid JSON"),
            (http.post("/v2/models/mnist/infer", content=too_big), 413, "limit"),
            (http.get("/v2/models/nope"), 404, "Unknown model"),
        ]
        for response, status, message in cases:
            assert response.status_code == status, response.text
            assert response.headers["content-type"] == "application/json"
            body = response.json()
            assert set(body) == {"error"}
            assert message in body["error"]


def test_the_kserve_client_reports_the_servers_message(server_url: str) -> None:
    def bad(client: InferenceRESTClient) -> Any:
        tensor = InferInput("image", [1, 2], "FP32")
        tensor.set_data_from_numpy(np.zeros((1, 2), np.float32), binary_data=True)
        return client.infer(server_url, InferRequest("mnist", [tensor]), model_name="mnist")

    with pytest.raises(httpx.HTTPStatusError, match=r"must have shape.*400 Bad Request"):
        run(bad)


def test_the_binary_response_header_length_is_exact(server_url: str, uploads: list[bytes]) -> None:
    tensor = triton.InferInput("image", [1], "BYTES")
    tensor.set_data_from_numpy(np.array(uploads[:1], dtype=np.object_))
    body, json_size = triton.InferenceServerClient.generate_request_body(
        [tensor], outputs=[triton.InferRequestedOutput("probabilities", binary_data=True)]
    )
    headers = {"Inference-Header-Content-Length": str(json_size)}
    with httpx.Client(base_url=server_url, timeout=60) as http:
        response = http.post("/v2/models/mnist-image/infer", content=body, headers=headers)
    length = int(response.headers["Inference-Header-Content-Length"])
    header = orjson.loads(response.content[:length])
    (output,) = header["outputs"]
    assert output["parameters"]["binary_data_size"] == 40 == len(response.content) - length
    probabilities = np.frombuffer(response.content[length:], dtype="<f4")
    assert probabilities.sum() == pytest.approx(1, abs=1e-4)
