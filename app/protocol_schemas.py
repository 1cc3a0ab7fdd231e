"""The JSON of the serving protocols' routes (/v2: Open Inference Protocol, /v1: TF Serving).

Field names and shapes are the protocols' own, so that their clients parse the answers
unchanged; the tests validate the answers against the kserve package's own data models.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class ProtocolErrorBody(BaseModel):
    """How both protocols report a failure: one sentence under ``error``."""

    error: str = Field(examples=["input 'image' must have shape ['N', 28, 28, 1], got [1, 784]."])


class ServerMetadata(BaseModel):
    name: str = Field(examples=["mnist-service"])
    version: str = Field(examples=["0.2.0"])
    extensions: list[str] = Field(examples=[["binary_tensor_data", "classification"]])


class ServerLive(BaseModel):
    live: bool


class ServerReady(BaseModel):
    ready: bool


class TensorMetadata(BaseModel):
    name: str
    datatype: str = Field(examples=["FP32"])
    shape: list[int] = Field(examples=[[-1, 28, 28, 1]])


class ModelMetadata(BaseModel):
    name: str = Field(examples=["mnist"])
    versions: list[str] = Field(examples=[["1"]])
    platform: str = Field(examples=["tensorflow_savedmodel"])
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class ModelReady(BaseModel):
    name: str
    ready: bool


class OutputTensorBody(BaseModel):
    name: str = Field(examples=["probabilities"])
    datatype: str = Field(examples=["FP32"])
    shape: list[int] = Field(examples=[[1, 10]])
    parameters: dict[str, Any] | None = Field(
        None, description="`binary_data_size` when the data follows the JSON header in binary."
    )
    data: list[Any] | None = Field(None, description="The elements, row-major, when not binary.")


class InferResponseBody(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[OutputTensorBody]


INFER_REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "id": {"type": "string"},
        "parameters": {
            "type": "object",
            "description": "`binary_data_output: true` returns every output in binary.",
        },
        "inputs": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["name", "shape", "datatype"],
                "properties": {
                    "name": {"type": "string", "example": "image"},
                    "shape": {
                        "type": "array",
                        "maxItems": 8,
                        "items": {"type": "integer", "minimum": 0},
                        "example": [1, 28, 28, 1],
                    },
                    "datatype": {"type": "string", "example": "FP32"},
                    "parameters": {
                        "type": "object",
                        "description": "`binary_data_size`: the input's bytes follow the header.",
                    },
                    "data": {"type": "array", "items": {}},
                },
            },
        },
        "outputs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "example": "probabilities"},
                    "parameters": {
                        "type": "object",
                        "description": "`binary_data: true`; `classification: k` for the top k.",
                    },
                },
            },
        },
    },
}
"""The infer request body as /docs shows it; ``app.tensors`` parses it (the binary form too)."""


class VersionStatus(BaseModel):
    version: str
    state: Literal["AVAILABLE"]
    status: dict[str, str] = Field(examples=[{"error_code": "OK", "error_message": ""}])


class ModelStatus(BaseModel):
    model_version_status: list[VersionStatus]


class ModelSpec(BaseModel):
    name: str
    signature_name: str
    version: str


class SignatureMetadata(BaseModel):
    model_spec: ModelSpec
    metadata: dict[str, Any] = Field(description="`signature_def` as TF Serving lists it.")


class PredictResponse(BaseModel):
    """``predictions`` for a row-format (``instances``) request, ``outputs`` for columnar."""

    predictions: list[Any] | None = None
    outputs: Any = None


PREDICT_REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "signature_name": {"type": "string", "example": "serving_default"},
        "instances": {
            "type": "array",
            "description": "Row format: one entry per example.",
            "items": {},
        },
        "inputs": {"description": "Columnar format: the batch as one value (or one per input)."},
    },
}
