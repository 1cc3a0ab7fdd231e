"""app.tensors against the bytes tritonclient itself writes and reads: no server involved."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
import tritonclient.http as triton
from tritonclient.http import InferResult
from tritonclient.utils import deserialize_bytes_tensor, serialize_byte_tensor

from app.tensors import (
    BYTES,
    InputTensor,
    OutputTensor,
    ProtocolError,
    TensorSpec,
    check_input,
    deserialize_bytes,
    encode_response,
    parse_request,
    serialize_bytes,
    top_classes,
)

ELEMENTS = [b"\x89PNG\r\n\x1a\n...", b"", b"\x00" * 300, "café".encode()]


def triton_body(inputs: list[triton.InferInput], **outputs_kw) -> tuple[bytes, str | None]:
    body, json_size = triton.InferenceServerClient.generate_request_body(inputs, **outputs_kw)
    return body, None if json_size is None else str(json_size)


def test_bytes_elements_are_serialised_as_tritonclient_writes_and_reads_them() -> None:
    ours = serialize_bytes(ELEMENTS)
    theirs = serialize_byte_tensor(np.array(ELEMENTS, dtype=np.object_)).item()
    assert ours == theirs
    assert deserialize_bytes(theirs, len(ELEMENTS), "x") == ELEMENTS
    assert list(deserialize_bytes_tensor(ours)) == ELEMENTS


@pytest.mark.parametrize("binary", [True, False])
def test_a_tritonclient_fp32_request_parses_to_the_same_array(binary: bool) -> None:
    pixels = np.random.default_rng(0).random((3, 28, 28, 1), dtype=np.float32)
    tensor = triton.InferInput("image", list(pixels.shape), "FP32")
    tensor.set_data_from_numpy(pixels, binary_data=binary)
    body, header = triton_body([tensor])
    assert (header is not None) == binary

    parsed = parse_request(body, header)

    (image,) = parsed.inputs
    assert (image.name, image.datatype, image.shape, image.binary) == (
        "image",
        "FP32",
        (3, 28, 28, 1),
        binary,
    )
    assert isinstance(image.data, np.ndarray)
    np.testing.assert_array_equal(image.data, pixels)
    assert parsed.outputs is None
    assert parsed.binary_outputs  # tritonclient asks for binary outputs when it names none


def test_a_tritonclient_bytes_request_parses_to_the_same_files() -> None:
    tensor = triton.InferInput("image", [len(ELEMENTS)], BYTES)
    tensor.set_data_from_numpy(np.array(ELEMENTS, dtype=np.object_), binary_data=True)
    wanted = [
        triton.InferRequestedOutput("digit", binary_data=False),
        triton.InferRequestedOutput("probabilities", class_count=3),
    ]
    body, header = triton_body([tensor], outputs=wanted)

    parsed = parse_request(body, header)

    assert parsed.inputs[0].data == ELEMENTS
    assert parsed.outputs is not None
    digit, probabilities = parsed.outputs
    assert (digit.name, digit.binary, digit.classification) == ("digit", False, 0)
    assert (probabilities.name, probabilities.binary, probabilities.classification) == (
        "probabilities",
        True,
        3,
    )


def test_nested_and_flat_json_data_are_the_same_tensor() -> None:
    nested = [[[1, 2], [3, 4]], [[5, 6], [7, 8]]]
    for data in (nested, list(range(1, 9))):
        body = orjson.dumps(
            {"inputs": [{"name": "x", "shape": [2, 2, 2], "datatype": "INT32", "data": data}]}
        )
        (tensor,) = parse_request(body, None).inputs
        np.testing.assert_array_equal(tensor.data, np.arange(1, 9).reshape(2, 2, 2))


def _json(**document) -> bytes:
    return orjson.dumps(document)


FP32_ONE = {"name": "image", "shape": [1, 2], "datatype": "FP32"}


@pytest.mark.parametrize(
    ("body", "header", "message"),
    [
        (b"{", None, "not valid JSON"),
        (b"[]", None, "JSON object"),
        (_json(inputs=[]), None, "non-empty list"),
        (_json(id=7, inputs=[{**FP32_ONE, "data": [0, 0]}]), None, "'id' must be a string"),
        (_json(inputs=[{**FP32_ONE, "datatype": "FLOAT"}]), None, "unknown datatype"),
        (_json(inputs=[{**FP32_ONE, "shape": [1, -2], "data": [0]}]), None, "non-negative"),
        (_json(inputs=[{**FP32_ONE, "shape": [1.5], "data": [0]}]), None, "non-negative"),
        (_json(inputs=[{**FP32_ONE, "data": [0, 0, 0]}]), None, "holds 2 elements, 'data' has 3"),
        (_json(inputs=[{**FP32_ONE, "data": [[0], [0, 0]]}]), None, "evenly nested"),
        (_json(inputs=[{**FP32_ONE, "data": ["a", "b"]}]), None, "evenly nested"),
        (_json(inputs=[{**FP32_ONE, "data": 3}]), None, "must be a list"),
        (_json(inputs=[FP32_ONE]), None, "neither 'data' nor"),
        (_json(inputs=[{**FP32_ONE, "data": [0, 0]}], parameters=[]), None, "must be an object"),
        (_json(inputs=[{**FP32_ONE, "data": [0, 0]}], outputs={}), None, "'outputs' must be a list"),
        (_json(inputs=[{**FP32_ONE, "data": [0, 0]}], outputs=[{"name": "p", "parameters": {"classification": -1}}]), None, "classification"),
        (_json(inputs=[{**FP32_ONE, "data": [0, 0]}], outputs=[{"name": "p", "parameters": {"binary_data": "yes"}}]), None, "binary_data"),
        (_json(inputs=[{**FP32_ONE, "data": [0, 0]}]), "999", "between 0 and"),
        (_json(inputs=[{**FP32_ONE, "data": [0, 0]}]), "ten", "between 0 and"),
        (_json(inputs=[{**FP32_ONE, "parameters": {"binary_data_size": 8}}]) + b"\0" * 4, "LEN", "only 4 remain"),
        (_json(inputs=[{**FP32_ONE, "parameters": {"binary_data_size": 4}}]) + b"\0" * 4, "LEN", "needs 8 bytes"),
        (_json(inputs=[{**FP32_ONE, "parameters": {"binary_data_size": 8}}]) + b"\0" * 12, "LEN", "add up to 8"),
        (_json(inputs=[{**FP32_ONE, "data": [0, 0], "parameters": {"binary_data_size": 8}}]) + b"\0" * 8, "LEN", "both 'data'"),
        (_json(inputs=[{"name": "image", "shape": [2], "datatype": BYTES, "parameters": {"binary_data_size": 6}}]) + b"\x02\0\0\0ab", "LEN", "ends before element 1"),
        (_json(inputs=[{"name": "image", "shape": [1], "datatype": BYTES, "parameters": {"binary_data_size": 6}}]) + b"\x09\0\0\0ab", "LEN", "claims 9 bytes"),
        (_json(inputs=[{"name": "image", "shape": [1], "datatype": BYTES, "parameters": {"binary_data_size": 7}}]) + b"\x02\0\0\0abc", "LEN", "1 bytes are left"),
        (_json(inputs=[{"name": "image", "shape": [1], "datatype": BYTES, "data": [3]}]), None, "must hold strings"),
    ],
)  # fmt: skip
def test_malformed_requests_are_refused_naming_what_is_wrong(
    body: bytes, header: str | None, message: str
) -> None:
    if header == "LEN":
        header = str(body.index(b"}]}") + 3)
    with pytest.raises(ProtocolError, match=message) as raised:
        parse_request(body, header)
    assert raised.value.status == 400


def test_inputs_are_checked_against_the_declared_shape_and_datatype() -> None:
    spec = TensorSpec("image", "FP32", (-1, 28, 28, 1))
    good = InputTensor("image", "FP32", (5, 28, 28, 1), np.zeros((5, 28, 28, 1)), {}, True)
    check_input(good, spec)
    with pytest.raises(ProtocolError, match=r"shape \['N', 28, 28, 1\], got \[5, 784\]"):
        check_input(InputTensor("image", "FP32", (5, 784), np.zeros((5, 784)), {}, True), spec)
    with pytest.raises(ProtocolError, match="must be FP32, got FP64"):
        check_input(InputTensor("image", "FP64", (1, 28, 28, 1), np.zeros(1), {}, True), spec)


def test_binary_outputs_are_read_back_by_tritonclient() -> None:
    probabilities = np.random.default_rng(1).dirichlet(np.ones(10), size=4).astype(np.float32)
    digits = np.array([3, -1, 7, 0], dtype=np.int32)
    verdicts = [b"digit", b"not_a_digit", b"uncertain", b"digit"]
    body, header_length = encode_response(
        model_name="mnist-image",
        model_version="3",
        request_id="req-1",
        outputs=[
            (OutputTensor("probabilities", "FP32", probabilities, (4, 10)), True),
            (OutputTensor("digit", "INT32", digits, (4,)), False),
            (OutputTensor("verdict", BYTES, verdicts, (4,)), True),
        ],
    )
    assert header_length is not None

    result = InferResult.from_response_body(body, header_length=header_length)

    np.testing.assert_array_equal(result.as_numpy("probabilities"), probabilities)
    np.testing.assert_array_equal(result.as_numpy("digit"), digits)
    assert list(result.as_numpy("verdict")) == verdicts
    response = result.get_response()
    assert (response["model_name"], response["model_version"], response["id"]) == (
        "mnist-image",
        "3",
        "req-1",
    )


def test_an_all_json_response_has_no_binary_section() -> None:
    body, header_length = encode_response(
        model_name="mnist",
        model_version="1",
        request_id=None,
        outputs=[(OutputTensor("probabilities", "FP32", np.full((1, 2), 0.5, np.float32), (1, 2)), False)],
    )  # fmt: skip
    assert header_length is None
    assert orjson.loads(body) == {
        "model_name": "mnist",
        "model_version": "1",
        "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [1, 2], "data": [0.5, 0.5]}],
    }  # fmt: skip


def test_top_classes_are_triton_style_score_and_index_best_first() -> None:
    scores = np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]], dtype=np.float32)
    assert top_classes(scores, 2) == [b"0.700000:1", b"0.200000:2", b"0.500000:0", b"0.300000:2"]
    assert len(top_classes(scores, 99)) == 6  # k is capped at the number of classes
