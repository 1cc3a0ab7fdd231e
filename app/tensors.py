"""Open Inference Protocol v2 tensors on the wire: request parsing and response encoding.

Pure functions over bytes, no web framework: the routes in ``app.api.oip`` hand a body in and
send a body out. Both encodings of the protocol's REST binding are handled:

- JSON only: ``data`` holds the tensor's elements, nested or flat, in row-major order;
- the binary tensor data extension: the ``Inference-Header-Content-Length`` header says how
  many leading bytes are the JSON header, and each input with ``parameters.binary_data_size``
  takes that many bytes of what follows, in input order. BYTES elements are each a 4-byte
  little-endian length followed by the bytes. Outputs go back binary when the request asks
  (``parameters.binary_data`` on an output, or ``binary_data_output`` on the request).

Every malformed request raises ProtocolError with a sentence that names the offending field:
the protocol answers it as ``{"error": ...}`` with status 400.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
"""The protocol's fixed-size datatypes, little-endian on the wire; BYTES is the other one."""
BYTES = "BYTES"
HEADER_LENGTH = "Inference-Header-Content-Length"
_LENGTH = struct.Struct("<I")


class ProtocolError(Exception):
    """A request the protocol cannot accept; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """A model's declared input or output: name, datatype and shape (-1 for any size)."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def as_metadata(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass(frozen=True, slots=True)
class InputTensor:
    """One request input: an ndarray for fixed-size datatypes, a list of bytes for BYTES."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: np.ndarray | list[bytes]
    parameters: Mapping[str, Any]
    binary: bool
    """True when the data came in the binary section; BYTES from JSON are UTF-8 strings."""


@dataclass(frozen=True, slots=True)
class RequestedOutput:
    name: str
    binary: bool | None
    """None: as the request's ``binary_data_output`` says."""
    classification: int
    """0 for the tensor itself; k > 0 for the top-k classes (the classification extension)."""


@dataclass(frozen=True, slots=True)
class InferRequest:
    id: str | None
    inputs: tuple[InputTensor, ...]
    outputs: tuple[RequestedOutput, ...] | None
    """None when the request names no outputs: then every output is returned."""
    binary_outputs: bool
    """The request-level ``binary_data_output``: the default for outputs not asking themselves."""


@dataclass(frozen=True, slots=True)
class OutputTensor:
    name: str
    datatype: str
    data: np.ndarray | list[bytes]
    shape: tuple[int, ...]


# --- parsing ----------------------------------------------------------------------------------


def parse_request(body: bytes, header_length: str | None) -> InferRequest:
    """The request in ``body``; ``header_length`` is the Inference-Header-Content-Length value."""
    json_end = _json_length(header_length, len(body))
    try:
        document = orjson.loads(body[:json_end])
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"The request header is not valid JSON: {exc}.") from None
    if not isinstance(document, dict):
        raise ProtocolError("The request must be a JSON object with an 'inputs' list.")
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise ProtocolError("'id' must be a string.")
    parameters = _parameters(document, "the request")
    binary = memoryview(body)[json_end:]
    inputs, used = _inputs(document.get("inputs"), binary)
    if used != len(binary):
        raise ProtocolError(
            f"The binary section holds {len(binary)} bytes but the inputs' binary_data_size "
            f"add up to {used}."
        )
    binary_default = parameters.get("binary_data_output", False)
    if not isinstance(binary_default, bool):
        raise ProtocolError("Parameter 'binary_data_output' must be a boolean.")
    return InferRequest(
        id=request_id,
        inputs=inputs,
        outputs=_requested_outputs(document.get("outputs")),
        binary_outputs=binary_default,
    )


def _json_length(header_length: str | None, body_length: int) -> int:
    if header_length is None:
        return body_length
    try:
        length = int(header_length)
    except ValueError:
        length = -1
    if not 0 <= length <= body_length:
        raise ProtocolError(
            f"{HEADER_LENGTH} must be an integer between 0 and the body's {body_length} bytes; "
            f"got {header_length!r}."
        )
    return length


def _parameters(holder: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    parameters = holder.get("parameters", {})
    if not isinstance(parameters, dict):
        raise ProtocolError(f"'parameters' of {where} must be an object.")
    return parameters


def _inputs(entries: Any, binary: memoryview) -> tuple[tuple[InputTensor, ...], int]:
    if not isinstance(entries, list) or not entries:
        raise ProtocolError("'inputs' must be a non-empty list of tensors.")
    inputs = []
    offset = 0
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ProtocolError(f"inputs[{index}] must be an object.")
        name, datatype, shape = _header(entry, f"inputs[{index}]")
        where = f"input {name!r}"
        parameters = _parameters(entry, where)
        size = parameters.get("binary_data_size")
        if size is not None:
            if "data" in entry:
                raise ProtocolError(f"{where} has both 'data' and binary_data_size.")
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise ProtocolError(f"binary_data_size of {where} must be a non-negative integer.")
            if offset + size > len(binary):
                raise ProtocolError(
                    f"{where} declares {size} binary bytes but only {len(binary) - offset} remain."
                )
            data = _from_binary(binary[offset : offset + size], datatype, shape, where)
            offset += size
        elif "data" in entry:
            data = _from_json(entry["data"], datatype, shape, where)
        else:
            raise ProtocolError(f"{where} has neither 'data' nor parameters.binary_data_size.")
        inputs.append(InputTensor(name, datatype, shape, data, parameters, size is not None))
    return tuple(inputs), offset


def _header(entry: Mapping[str, Any], where: str) -> tuple[str, str, tuple[int, ...]]:
    name, datatype, shape = entry.get("name"), entry.get("datatype"), entry.get("shape")
    if not isinstance(name, str):
        raise ProtocolError(f"{where} needs a string 'name'.")
    if datatype != BYTES and datatype not in DTYPES:
        raise ProtocolError(
            f"input {name!r}: unknown datatype {datatype!r}; one of {', '.join([*DTYPES, BYTES])}."
        )
    if (
        not isinstance(shape, list)
        or len(shape) > 8
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise ProtocolError(f"input {name!r}: 'shape' must be a list of non-negative integers.")
    return name, datatype, tuple(shape)


def element_count(shape: Sequence[int]) -> int:
    count = 1
    for dim in shape:
        count *= dim
    return count


def _from_binary(
    raw: memoryview, datatype: str, shape: tuple[int, ...], where: str
) -> np.ndarray | list[bytes]:
    count = element_count(shape)
    if datatype == BYTES:
        return deserialize_bytes(raw, count, where)
    dtype = DTYPES[datatype]
    if len(raw) != count * dtype.itemsize:
        raise ProtocolError(
            f"{where}: shape {list(shape)} of {datatype} needs {count * dtype.itemsize} bytes, "
            f"binary_data_size is {len(raw)}."
        )
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def _from_json(
    data: Any, datatype: str, shape: tuple[int, ...], where: str
) -> np.ndarray | list[bytes]:
    if not isinstance(data, list):
        raise ProtocolError(f"{where}: 'data' must be a list.")
    count = element_count(shape)
    if datatype == BYTES:
        flat = _flatten_strings(data, where)
        if len(flat) != count:
            raise ProtocolError(
                f"{where}: shape {list(shape)} holds {count} elements, 'data' has {len(flat)}."
            )
        return flat
    try:
        array = np.asarray(data, dtype=DTYPES[datatype])
    except (ValueError, TypeError, OverflowError):
        raise ProtocolError(
            f"{where}: 'data' must be a flat or evenly nested list of {datatype} numbers."
        ) from None
    if array.size != count:
        raise ProtocolError(
            f"{where}: shape {list(shape)} holds {count} elements, 'data' has {array.size}."
        )
    return array.reshape(shape)


def _flatten_strings(data: list[Any], where: str) -> list[bytes]:
    flat: list[bytes] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            if not isinstance(item, str):
                raise ProtocolError(f"{where}: BYTES 'data' must hold strings.")
            flat.append(item.encode())
        else:
            stack.pop()
    return flat


def deserialize_bytes(raw: memoryview | bytes, count: int, where: str) -> list[bytes]:
    """``count`` BYTES elements, each a 4-byte little-endian length and that many bytes."""
    elements = []
    offset = 0
    view = memoryview(raw)
    for index in range(count):
        if offset + 4 > len(view):
            raise ProtocolError(f"{where}: the binary data ends before element {index}.")
        (length,) = _LENGTH.unpack_from(view, offset)
        offset += 4
        if offset + length > len(view):
            raise ProtocolError(
                f"{where}: element {index} claims {length} bytes, {len(view) - offset} remain."
            )
        elements.append(bytes(view[offset : offset + length]))
        offset += length
    if offset != len(view):
        raise ProtocolError(
            f"{where}: {len(view) - offset} bytes are left after the {count} elements "
            f"the shape holds."
        )
    return elements


def serialize_bytes(elements: Sequence[bytes]) -> bytes:
    return b"".join(_LENGTH.pack(len(element)) + element for element in elements)


def _requested_outputs(entries: Any) -> tuple[RequestedOutput, ...] | None:
    if entries is None:
        return None
    if not isinstance(entries, list):
        raise ProtocolError("'outputs' must be a list.")
    outputs = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ProtocolError(f"outputs[{index}] must be an object with a string 'name'.")
        name = entry["name"]
        parameters = _parameters(entry, f"output {name!r}")
        binary = parameters.get("binary_data")
        classification = parameters.get("classification", 0)
        if binary is not None and not isinstance(binary, bool):
            raise ProtocolError(f"binary_data of output {name!r} must be a boolean.")
        if (
            not isinstance(classification, int)
            or isinstance(classification, bool)
            or classification < 0
        ):
            raise ProtocolError(f"classification of output {name!r} must be an integer >= 0.")
        outputs.append(RequestedOutput(name, binary, classification))
    return tuple(outputs)


def check_input(tensor: InputTensor, spec: TensorSpec) -> None:
    """ProtocolError unless ``tensor`` has ``spec``'s datatype and a shape that fits it."""
    if tensor.datatype != spec.datatype:
        raise ProtocolError(f"input {spec.name!r} must be {spec.datatype}, got {tensor.datatype}.")
    fits = len(tensor.shape) == len(spec.shape) and all(
        want in (-1, got) for want, got in zip(spec.shape, tensor.shape, strict=True)
    )
    if not fits:
        wanted = ["N" if d == -1 else d for d in spec.shape]
        raise ProtocolError(
            f"input {spec.name!r} must have shape {wanted}, got {list(tensor.shape)}."
        )


# --- the classification extension -------------------------------------------------------------


def top_classes(scores: np.ndarray, k: int) -> list[bytes]:
    """Each row's ``k`` best classes as ``b"<score>:<index>"``, best first, rows in order.

    The form Triton answers with for a model without labels; the digit is its own index.
    """
    k = min(k, scores.shape[-1])
    order = np.argsort(-scores, axis=-1, kind="stable")[..., :k]
    return [
        f"{float(row[i]):.6f}:{int(i)}".encode()
        for row, best in zip(
            scores.reshape(-1, scores.shape[-1]), order.reshape(-1, k), strict=True
        )
        for i in best
    ]


# --- encoding ---------------------------------------------------------------------------------


def encode_response(
    *,
    model_name: str,
    model_version: str,
    request_id: str | None,
    outputs: Sequence[tuple[OutputTensor, bool]],
) -> tuple[bytes, int | None]:
    """The response body and, when any output travels binary, its JSON header's length."""
    described: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for tensor, binary in outputs:
        entry: dict[str, Any] = {
            "name": tensor.name,
            "datatype": tensor.datatype,
            "shape": list(tensor.shape),
        }
        if binary:
            blob = _to_binary(tensor)
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = _to_json(tensor)
        described.append(entry)
    document: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request_id is not None:
        document["id"] = request_id
    document["outputs"] = described
    header = orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return header, None
    return b"".join([header, *blobs]), len(header)


def _to_binary(tensor: OutputTensor) -> bytes:
    if tensor.datatype == BYTES:
        assert isinstance(tensor.data, list)
        return serialize_bytes(tensor.data)
    assert isinstance(tensor.data, np.ndarray)
    return np.ascontiguousarray(tensor.data, dtype=DTYPES[tensor.datatype]).tobytes()


def _to_json(tensor: OutputTensor) -> list[Any]:
    data = tensor.data.reshape(-1) if isinstance(tensor.data, np.ndarray) else tensor.data
    return json_values(data)


def json_values(data: np.ndarray | list[bytes]) -> list[Any]:
    """An array as JSON lists (nesting kept), or BYTES elements as strings.

    Floats get six decimals: float32 printed as float64 reads 0.9980000257, and six decimals
    is all float32 holds. Every JSON answer of the service (/predict, /v2, /v1) goes through here.
    """
    if isinstance(data, list):
        return [element.decode("utf-8", "replace") for element in data]
    if data.dtype.kind == "f":
        return np.round(data.astype(np.float64), 6).tolist()
    return data.tolist()
