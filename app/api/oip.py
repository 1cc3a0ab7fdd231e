"""/v2: the Open Inference Protocol (KServe v2, Triton, MLServer) over REST, beside /predict.

Same process, same model, same batcher. Health answers carry both what ``tritonclient``
reads (the status) and what kserve's ``InferenceRESTClient`` reads (``{"live": true}``). The
infer route reads the raw body and parses it with ``app.tensors`` rather than through a
FastAPI body model: the binary tensor extension puts raw bytes after the JSON header, and a
pydantic pass over 784 floats per digit would cost more than the model call.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from app.api.deps import NOT_READY_HEADERS, ServiceDep, service_of
from app.api.served_models import (
    PIXELS,
    ServedModel,
    decode_base64_file,
    find_model,
    run_images,
    run_pixels,
)
from app.observability.middleware import REQUEST_ID_KEY, add_log_fields
from app.protocol_schemas import (
    INFER_REQUEST_SCHEMA,
    InferResponseBody,
    ModelMetadata,
    ModelReady,
    ProtocolErrorBody,
    ServerLive,
    ServerMetadata,
    ServerReady,
    TensorMetadata,
)
from app.service import DigitService
from app.tensors import (
    BYTES,
    HEADER_LENGTH,
    InferRequest,
    InputTensor,
    OutputTensor,
    ProtocolError,
    check_input,
    encode_response,
    parse_request,
    top_classes,
)

router = APIRouter(prefix="/v2", tags=["open inference protocol"])

SERVER_NAME = "mnist-service"
EXTENSIONS = ["binary_tensor_data", "classification"]


def _error(description: str) -> dict[str, Any]:
    return {"model": ProtocolErrorBody, "description": description}


Responses = dict[int | str, dict[str, Any]]
NOT_READY: Responses = {503: _error("The model is not loaded yet, or the service is stopping.")}
UNKNOWN_MODEL: Responses = {404: _error("No such model, or not at that version.")}


# The infer routes come first: FastAPI tries routes in order, and they are the hot path.
INFER_DOCS: dict[str, Any] = {
    "responses": {
        200: {
            "model": InferResponseBody,
            "description": (
                "The outputs. With binary outputs the body is the JSON header "
                f"({HEADER_LENGTH} bytes long) followed by the outputs' bytes."
            ),
            "content": {"application/octet-stream": {"schema": {"type": "string"}}},
        },
        400: _error("Not a valid request for this model: shape, datatype, name, image."),
        413: _error(
            "Body over MAX_UPLOAD_BYTES, more than MAX_BATCH_FILES images, or too many pixels."
        ),
        **UNKNOWN_MODEL,
        500: _error("The model call failed."),
        **NOT_READY,
    },
    "openapi_extra": {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": INFER_REQUEST_SCHEMA},
                "application/octet-stream": {
                    "schema": {
                        "type": "string",
                        "format": "binary",
                        "description": f"The JSON header, then binary inputs; see {HEADER_LENGTH}.",
                    }
                },
            },
        }
    },
}


@router.post("/models/{model_name}/infer", summary="Inference", **INFER_DOCS)
async def infer(model_name: str, request: Request, service: ServiceDep) -> Response:
    """`mnist`: FP32 pixels [N,28,28,1] in [0,1] to `probabilities` [N,10].

    `mnist-image`: encoded image files (BYTES [N]: binary, or base64 strings in JSON) to
    `digit` (-1 for not a digit), `probabilities`, `verdict` and `confidence`, each image
    normalised exactly like an upload to /predict."""
    return await _infer(find_model(model_name, None, service), request, service)


@router.post(
    "/models/{model_name}/versions/{model_version}/infer",
    summary="Inference at a version",
    **INFER_DOCS,
)
async def infer_version(
    model_name: str, model_version: str, request: Request, service: ServiceDep
) -> Response:
    return await _infer(find_model(model_name, model_version, service), request, service)


@router.get("", summary="Server metadata", response_model=ServerMetadata)
async def server_metadata(request: Request) -> ServerMetadata:
    return ServerMetadata(name=SERVER_NAME, version=request.app.version, extensions=EXTENSIONS)


@router.get("/health/live", summary="Liveness: the process answers", response_model=ServerLive)
async def server_live() -> ServerLive:
    return ServerLive(live=True)


@router.get(
    "/health/ready",
    summary="Readiness: the model is loaded and warmed up",
    response_model=ServerReady,
    responses={503: {"model": ServerReady, "description": "Not ready: starting or stopping."}},
)
async def server_ready(request: Request) -> ServerReady | JSONResponse:
    if not service_of(request).ready:
        return JSONResponse({"ready": False}, status_code=503, headers=NOT_READY_HEADERS)
    return ServerReady(ready=True)


def _metadata(model: ServedModel, service: DigitService) -> ModelMetadata:
    return ModelMetadata(
        name=model.name,
        versions=[service.model.version],
        platform=model.platform,
        inputs=[TensorMetadata(**spec.as_metadata()) for spec in model.inputs],
        outputs=[TensorMetadata(**spec.as_metadata()) for spec in model.outputs],
    )


@router.get(
    "/models/{model_name}",
    summary="Model metadata: its inputs and outputs",
    response_model=ModelMetadata,
    responses={**UNKNOWN_MODEL, **NOT_READY},
)
async def model_metadata(model_name: str, service: ServiceDep) -> ModelMetadata:
    return _metadata(find_model(model_name, None, service), service)


@router.get(
    "/models/{model_name}/versions/{model_version}",
    summary="Model metadata at a version",
    response_model=ModelMetadata,
    responses={**UNKNOWN_MODEL, **NOT_READY},
)
async def model_version_metadata(
    model_name: str, model_version: str, service: ServiceDep
) -> ModelMetadata:
    return _metadata(find_model(model_name, model_version, service), service)


@router.get(
    "/models/{model_name}/ready",
    summary="Model readiness",
    response_model=ModelReady,
    responses={**UNKNOWN_MODEL, **NOT_READY},
)
async def model_ready(model_name: str, service: ServiceDep) -> ModelReady:
    return ModelReady(name=find_model(model_name, None, service).name, ready=True)


@router.get(
    "/models/{model_name}/versions/{model_version}/ready",
    summary="Model readiness at a version",
    response_model=ModelReady,
    responses={**UNKNOWN_MODEL, **NOT_READY},
)
async def model_version_ready(
    model_name: str, model_version: str, service: ServiceDep
) -> ModelReady:
    return ModelReady(name=find_model(model_name, model_version, service).name, ready=True)


async def _infer(model: ServedModel, request: Request, service: DigitService) -> Response:
    parsed = parse_request(await request.body(), _header_length(request))
    tensor = _the_input(parsed, model)
    if model is PIXELS:
        assert isinstance(tensor.data, np.ndarray)
        computed = await run_pixels(tensor.data, service)
    else:
        assert isinstance(tensor.data, list)
        files = tensor.data if tensor.binary else _base64_files(tensor.data)
        computed = await run_images(files, service)
    outputs = _select(parsed, model, computed)
    add_log_fields(
        request.scope,
        model=model.name,
        images=int(tensor.shape[0]) if tensor.shape else 0,
        model_version=service.model.version,
    )
    body, header_length = encode_response(
        model_name=model.name,
        model_version=service.model.version,
        # The protocol's schema (kserve's data models) requires an id in every response: the
        # request's own, else the X-Request-ID this response carries, so logs can find it.
        request_id=parsed.id if parsed.id is not None else request.scope.get(REQUEST_ID_KEY, ""),
        outputs=outputs,
    )
    if header_length is None:
        return Response(body, media_type="application/json")
    return Response(
        body,
        media_type="application/octet-stream",
        headers={HEADER_LENGTH: str(header_length)},
    )


_HEADER_LENGTH_KEY = HEADER_LENGTH.lower().encode()


def _header_length(request: Request) -> str | None:
    """The Inference-Header-Content-Length value: read off the raw headers, as Starlette's
    ``Headers`` builds a lookup structure per request that this one header does not need."""
    for name, value in request.scope["headers"]:
        if name == _HEADER_LENGTH_KEY:
            return value.decode("latin-1")
    return None


def _the_input(parsed: InferRequest, model: ServedModel) -> InputTensor:
    """The request's one input, checked against the model's one declared input."""
    (spec,) = model.inputs
    names = [tensor.name for tensor in parsed.inputs]
    if names != [spec.name]:
        raise ProtocolError(
            f"Model {model.name!r} takes exactly one input, {spec.name!r}; got {names}."
        )
    tensor = parsed.inputs[0]
    check_input(tensor, spec)
    return tensor


def _base64_files(elements: list[bytes]) -> list[bytes]:
    """JSON cannot carry an image file's bytes, so a JSON-only request sends them base64."""
    hint = (
        "in JSON, BYTES elements are the image files in base64 "
        "(or send them binary, with the binary tensor extension)."
    )
    return [decode_base64_file(element, i, hint) for i, element in enumerate(elements)]


def _select(
    parsed: InferRequest,
    model: ServedModel,
    computed: dict[str, np.ndarray | list[bytes]],
) -> list[tuple[OutputTensor, bool]]:
    """The outputs the request asked for (all when it named none), each with its encoding."""
    if parsed.outputs is None:
        return [
            (_tensor(spec.name, spec.datatype, computed[spec.name]), parsed.binary_outputs)
            for spec in model.outputs
        ]
    selected = []
    for wanted in parsed.outputs:
        spec = model.output(wanted.name)
        binary = parsed.binary_outputs if wanted.binary is None else wanted.binary
        data = computed[spec.name]
        if wanted.classification:
            if spec.name != "probabilities":
                raise ProtocolError(
                    f"Classification is offered on output 'probabilities', not {spec.name!r}."
                )
            assert isinstance(data, np.ndarray)
            k = min(wanted.classification, data.shape[-1])
            classes = top_classes(data, k)
            selected.append((OutputTensor(spec.name, BYTES, classes, (len(data), k)), binary))
            continue
        selected.append((_tensor(spec.name, spec.datatype, data), binary))
    return selected


def _tensor(name: str, datatype: str, data: np.ndarray | list[bytes]) -> OutputTensor:
    shape = tuple(data.shape) if isinstance(data, np.ndarray) else (len(data),)
    return OutputTensor(name, datatype, data, shape)
