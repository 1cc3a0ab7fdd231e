"""/v1: TensorFlow Serving's REST API (also KServe's v1 protocol) for the same two models.

A client written for ``tensorflow_model_server --rest_api_port`` (or KServe's v1 predictor)
points here unchanged: model status, signature metadata and ``:predict`` in row
(``instances``) or columnar (``inputs``) form. Image bytes travel as ``{"b64": "..."}``,
TF Serving's convention for binary values. Answers are shaped as TF Serving shapes them: a
model with one output gives its values directly, a model with several gives one named value
per output.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
from fastapi import APIRouter, Request, Response

from app.api.deps import ServiceDep
from app.api.served_models import (
    IMAGES,
    PIXELS,
    ServedModel,
    decode_base64_file,
    find_model,
    run_images,
    run_pixels,
)
from app.observability.middleware import add_log_fields
from app.protocol_schemas import (
    PREDICT_REQUEST_SCHEMA,
    ModelStatus,
    PredictResponse,
    ProtocolErrorBody,
    SignatureMetadata,
)
from app.service import DigitService
from app.tensors import ProtocolError, json_values
from contract import SIGNATURE

router = APIRouter(prefix="/v1", tags=["tensorflow serving"])

_TF_DTYPES = {"FP32": "DT_FLOAT", "INT32": "DT_INT32", "BYTES": "DT_STRING"}


def _error(description: str) -> dict[str, Any]:
    return {"model": ProtocolErrorBody, "description": description}


COMMON: dict[int | str, dict[str, Any]] = {
    404: _error("No such model, or not at that version."),
    503: _error("The model is not loaded yet, or the service is stopping."),
}


# The :predict routes come first: Starlette tries routes in order, and the status route's
# ``{model_name}`` would also match ``mnist:predict``, so an OPTIONS or GET on a predict URL
# would otherwise be answered as if the URL were a model's status (wrong Allow header).
PREDICT_DOCS: dict[str, Any] = {
    "responses": {
        200: {"model": PredictResponse, "description": "`predictions` (rows) or `outputs`."},
        400: _error("Not a valid request for this model: its shape, values or images."),
        413: _error(
            "Body over MAX_UPLOAD_BYTES, more than MAX_BATCH_FILES images, or too many pixels."
        ),
        500: _error("The model call failed."),
        **COMMON,
    },
    "openapi_extra": {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": PREDICT_REQUEST_SCHEMA}},
        }
    },
}


@router.post("/models/{model_name}:predict", summary="Predict", **PREDICT_DOCS)
async def predict(model_name: str, request: Request, service: ServiceDep) -> Response:
    """`mnist`: instances of [28,28,1] pixels in [0,1] to 10 probabilities each.
    `mnist-image`: instances of `{"b64": "<image file>"}` (or `{"image": {"b64": ...}}`) to
    `digit` (-1 for not a digit), `probabilities`, `verdict` and `confidence`."""
    return await _predict(_find(model_name, None, service), request, service)


@router.post(
    "/models/{model_name}/versions/{model_version}:predict",
    summary="Predict at a version",
    **PREDICT_DOCS,
)
async def predict_version(
    model_name: str, model_version: str, request: Request, service: ServiceDep
) -> Response:
    return await _predict(_find(model_name, model_version, service), request, service)


def _status(model: ServedModel, service: DigitService) -> ModelStatus:
    return ModelStatus.model_validate(
        {
            "model_version_status": [
                {
                    "version": service.model.version,
                    "state": "AVAILABLE",
                    "status": {"error_code": "OK", "error_message": ""},
                }
            ]
        }
    )


@router.get(
    "/models/{model_name}",
    summary="Model version status",
    response_model=ModelStatus,
    responses=COMMON,
)
async def model_status(model_name: str, service: ServiceDep) -> ModelStatus:
    return _status(_find(model_name, None, service), service)


@router.get(
    "/models/{model_name}/versions/{model_version}",
    summary="Model version status at a version",
    response_model=ModelStatus,
    responses=COMMON,
)
async def model_version_status(
    model_name: str, model_version: str, service: ServiceDep
) -> ModelStatus:
    return _status(_find(model_name, model_version, service), service)


def _signature_metadata(model: ServedModel, service: DigitService) -> SignatureMetadata:
    def tensors(specs: Any, prefix: str) -> dict[str, Any]:
        return {
            spec.name: {
                "dtype": _TF_DTYPES[spec.datatype],
                "tensor_shape": {
                    "dim": [{"size": str(size), "name": ""} for size in spec.shape],
                    "unknown_rank": False,
                },
                "name": f"{prefix}{spec.name}:0",
            }
            for spec in specs
        }

    signature = {
        "inputs": tensors(model.inputs, f"{SIGNATURE}_"),
        "outputs": tensors(model.outputs, ""),
        "method_name": "tensorflow/serving/predict",
        "defaults": {},
    }
    return SignatureMetadata.model_validate(
        {
            "model_spec": {
                "name": model.name,
                "signature_name": "",
                "version": service.model.version,
            },
            "metadata": {"signature_def": {"signature_def": {SIGNATURE: signature}}},
        }
    )


@router.get(
    "/models/{model_name}/metadata",
    summary="Model signature metadata",
    response_model=SignatureMetadata,
    responses=COMMON,
)
async def model_metadata(model_name: str, service: ServiceDep) -> SignatureMetadata:
    return _signature_metadata(_find(model_name, None, service), service)


@router.get(
    "/models/{model_name}/versions/{model_version}/metadata",
    summary="Model signature metadata at a version",
    response_model=SignatureMetadata,
    responses=COMMON,
)
async def model_version_metadata(
    model_name: str, model_version: str, service: ServiceDep
) -> SignatureMetadata:
    return _signature_metadata(_find(model_name, model_version, service), service)


def _find(name: str, version: str | None, service: DigitService) -> ServedModel:
    try:
        return find_model(name, version, service)
    except ProtocolError as exc:
        # TF Serving's own wording, which its clients' logs and runbooks already know.
        wanted = f"Latest({name})" if version is None else f"Specific({name}, {version})"
        raise ProtocolError(
            f"Servable not found for request: {wanted}. {exc.message}", status=404
        ) from None


async def _predict(model: ServedModel, request: Request, service: DigitService) -> Response:
    try:
        document = orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"The body is not valid JSON: {exc}.") from None
    if not isinstance(document, dict):
        raise ProtocolError("The body must be a JSON object with 'instances' or 'inputs'.")
    signature = document.get("signature_name", SIGNATURE)
    if signature != SIGNATURE:
        raise ProtocolError(f"Serving signature name: {signature!r} not found in signature def.")
    if ("instances" in document) == ("inputs" in document):
        raise ProtocolError("The body must hold exactly one of 'instances' or 'inputs'.")
    rows = "instances" in document
    values = _column(document["instances"] if rows else document["inputs"], rows)
    if model is PIXELS:
        computed = await run_pixels(_pixels(values), service)
        output: Any = computed["probabilities"]
        answer: dict[str, Any] = {"predictions" if rows else "outputs": json_values(output)}
    else:
        computed = await run_images(_files(values), service)
        columns = {spec.name: json_values(computed[spec.name]) for spec in IMAGES.outputs}
        if rows:
            count = len(columns["digit"])
            answer = {"predictions": [{k: v[i] for k, v in columns.items()} for i in range(count)]}
        else:
            answer = {"outputs": columns}
    add_log_fields(request.scope, model=model.name, model_version=service.model.version)
    return Response(orjson.dumps(answer), media_type="application/json")


def _column(value: Any, rows: bool) -> list[Any]:
    """The batch of the one input ``image``, unwrapped from its named form if named."""
    if rows:
        if not isinstance(value, list):
            raise ProtocolError("'instances' must be a list, one entry per example.")
        if value and all(isinstance(row, dict) and "image" in row for row in value):
            if any(set(row) != {"image"} for row in value):
                raise ProtocolError("Each instance may name one input: 'image'.")
            return [row["image"] for row in value]
        return value
    if isinstance(value, dict) and "b64" not in value:
        if set(value) != {"image"}:
            raise ProtocolError("'inputs' may name one input: 'image'.")
        value = value["image"]
    if not isinstance(value, list):
        raise ProtocolError("'inputs' must be the batch as a list (or {'image': list}).")
    return value


def _pixels(values: list[Any]) -> np.ndarray:
    try:
        batch = np.asarray(values, dtype=np.float32)
    except (ValueError, TypeError, OverflowError):
        raise ProtocolError("'image' must be evenly nested lists of numbers.") from None
    if batch.ndim != 4 or batch.shape[1:] != PIXELS.inputs[0].shape[1:]:
        raise ProtocolError(
            f"'image' must be a batch of [28, 28, 1] pixel arrays; got shape {list(batch.shape)}."
        )
    return batch


def _files(values: list[Any]) -> list[bytes]:
    files = []
    for index, value in enumerate(values):
        if (
            not isinstance(value, dict)
            or set(value) != {"b64"}
            or not isinstance(value["b64"], str)
        ):
            raise ProtocolError(f'image[{index}] must be {{"b64": "<base64 of an image file>"}}.')
        files.append(decode_base64_file(value["b64"], index, "'b64' is not valid base64."))
    return files
