"""The protocol routes where a real process is not needed: startup, verdicts, routing of errors."""

from __future__ import annotations

import base64

import numpy as np
from fastapi.testclient import TestClient
from kserve.protocol.rest.v2_datamodels import InferenceResponse

from app.main import create_app
from digit_photos import encode_png


def test_before_the_model_is_loaded_live_is_true_and_the_rest_say_not_ready(
    service_settings,
) -> None:
    client = TestClient(create_app(service_settings))  # no ``with``: the lifespan never runs
    assert client.get("/v2/health/live").json() == {"live": True}
    ready = client.get("/v2/health/ready")
    assert (ready.status_code, ready.json()) == (503, {"ready": False})
    assert ready.headers["Retry-After"] == "1"
    for response in (
        client.get("/v2/models/mnist"),
        client.post("/v2/models/mnist/infer", json={}),
        client.get("/v1/models/mnist"),
    ):
        assert response.status_code == 503
        assert list(response.json()) == ["error"]
    assert list(client.get("/model").json()) == ["detail"]  # the service's own API keeps its key


def test_not_a_digit_is_digit_minus_one_in_both_protocols(service_settings, mnist_sample) -> None:
    refuse_all = service_settings.model_copy(
        update={"NOT_A_DIGIT_BELOW": 1.0, "UNCERTAIN_BELOW": 1.0}
    )
    with TestClient(create_app(refuse_all)) as client:
        # Below 1.0 refuses all but a digit read at 1.0 to six decimals: take one that is not.
        png = next(
            png
            for png in map(encode_png, mnist_sample.x_test[:50])
            if client.post("/predict", files={"file": ("d.png", png)}).json()["confidence"] < 1
        )
        data = base64.b64encode(png).decode()
        request = {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [data]}]}
        answer = client.post("/v2/models/mnist-image/infer", json=request)
        oip = InferenceResponse.model_validate(answer.json())
        tf = client.post("/v1/models/mnist-image:predict", json={"instances": [{"b64": data}]})
        predict = client.post("/predict", files={"file": ("d.png", png)}).json()

    assert oip.id == answer.headers["X-Request-ID"]  # no id in the request: the request's own
    outputs = {output.name: output.data for output in oip.outputs}
    assert predict["verdict"] == "not_a_digit"
    assert predict["digit"] is None
    assert outputs["verdict"] == ["not_a_digit"]
    assert outputs["digit"] == [-1]
    assert tf.json()["predictions"][0]["digit"] == -1
    np.testing.assert_allclose(outputs["probabilities"], predict["probabilities"], atol=1e-6)
