"""The two models the serving protocols name, and how each one runs on the service's batcher.

- ``mnist`` is the SavedModel's own contract: pixels in, probabilities out. A client that
  normalises images itself (or a gateway replaying MNIST tensors) gets exactly the signature.
- ``mnist-image`` is the service's whole job: encoded image files in, each normalised exactly
  like an upload to /predict, and the digit, probabilities, verdict and confidence out.

The Open Inference Protocol routes (``app.api.oip``) and TF Serving's REST routes
(``app.api.tfserving``) are two encodings of these same calls; both share the batcher with
/predict, so a protocol request and a /predict request can ride in one model call.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

import numpy as np

from app.api.handlers import image_status
from app.imaging.errors import ImageError
from app.imaging.prepare import Preprocess
from app.service import DigitService
from app.tensors import BYTES, ProtocolError, TensorSpec
from contract import INPUT_SHAPE, NUM_CLASSES

NOT_A_DIGIT = -1
"""``digit`` for a ``not_a_digit`` verdict: an INT32 tensor has no null."""


@dataclass(frozen=True, slots=True)
class ServedModel:
    name: str
    platform: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def output(self, name: str) -> TensorSpec:
        for spec in self.outputs:
            if spec.name == name:
                return spec
        names = ", ".join(repr(spec.name) for spec in self.outputs)
        raise ProtocolError(f"Model {self.name!r} has no output {name!r}; its outputs: {names}.")


PIXELS = ServedModel(
    name="mnist",
    platform="tensorflow_savedmodel",
    inputs=(TensorSpec("image", "FP32", (-1, *INPUT_SHAPE)),),
    outputs=(TensorSpec("probabilities", "FP32", (-1, NUM_CLASSES)),),
)
IMAGES = ServedModel(
    name="mnist-image",
    platform="mnist-service",
    inputs=(TensorSpec("image", BYTES, (-1,)),),
    outputs=(
        TensorSpec("digit", "INT32", (-1,)),
        TensorSpec("probabilities", "FP32", (-1, NUM_CLASSES)),
        TensorSpec("verdict", BYTES, (-1,)),
        TensorSpec("confidence", "FP32", (-1,)),
    ),
)
MODELS = {model.name: model for model in (PIXELS, IMAGES)}

Outputs = dict[str, np.ndarray | list[bytes]]


def find_model(name: str, version: str | None, service: DigitService) -> ServedModel:
    """The model ``name`` (at ``version``, when one is asked for), or a 404 ProtocolError."""
    model = MODELS.get(name)
    if model is None:
        known = ", ".join(repr(known) for known in MODELS)
        raise ProtocolError(f"Unknown model {name!r}; this server serves {known}.", status=404)
    if version is not None and version != service.model.version:
        raise ProtocolError(
            f"Model {name!r} version {version!r} is not served; version "
            f"{service.model.version!r} is.",
            status=404,
        )
    return model


def decode_base64_file(text: str | bytes, index: int, hint: str) -> bytes:
    """Image ``index`` of a request that carries files as base64 (JSON cannot hold bytes)."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError(f"image[{index}]: {hint}") from None


def _check_count(count: int, service: DigitService) -> None:
    most = service.settings.MAX_BATCH_FILES
    if count > most:
        raise ProtocolError(
            f"{count} images in one request; at most {most} (MAX_BATCH_FILES).", status=413
        )


async def run_pixels(pixels: np.ndarray, service: DigitService) -> Outputs:
    """(N,28,28,1) float32 in [0,1], exactly the signature's input, to its probabilities."""
    _check_count(len(pixels), service)
    batch = np.ascontiguousarray(pixels, dtype=np.float32)
    if batch.size and not (np.isfinite(batch).all() and batch.min() >= 0 and batch.max() <= 1):
        raise ProtocolError(
            "input 'image' must hold pixel values in [0, 1] (MNIST's /255 scale), all finite."
        )
    return {"probabilities": await service.predict(batch)}


async def run_images(files: list[bytes], service: DigitService) -> Outputs:
    """Encoded image files to /predict's answer for each, as tensors in file order.

    One unusable file fails the request (the protocols have no per-element errors), with the
    reason /predict would have given for it and its index.
    """
    _check_count(len(files), service)
    prepared = await service.preparer.prepare_many(files, Preprocess.full, count_digits=False)
    pixels: list[np.ndarray] = []
    for index, item in enumerate(prepared):
        if isinstance(item, ImageError):
            status = image_status(item, protocol=True)
            raise ProtocolError(f"image[{index}]: {item.detail}", status=status)
        pixels.append(item.image)
    probabilities = np.empty((0, NUM_CLASSES), dtype=np.float32)
    if len(pixels) == 1:  # most requests: np.stack costs more than the view
        probabilities = await service.predict(pixels[0][np.newaxis])
    elif pixels:
        probabilities = await service.predict(np.stack(pixels))
    judgements = [service.judge(row) for row in probabilities]
    service.metrics.count_predictions(judgements)
    return {
        "digit": np.array(
            [NOT_A_DIGIT if j.digit is None else j.digit for j in judgements], dtype=np.int32
        ),
        "probabilities": probabilities,
        "verdict": [j.verdict.value.encode() for j in judgements],
        "confidence": np.array([j.confidence for j in judgements], dtype=np.float32),
    }
