"""The served model as TensorFlow Lite, run on the standalone LiteRT runtime.

Calling a restored SavedModel signature from Python pays a fixed overhead before any arithmetic
(eager dispatch, structure flattening, tensor conversion) that the same graph converted to
TFLite and run by an interpreter (XNNPACK kernels) almost entirely avoids, with probabilities
equal to float rounding (README, "Output: the contract with the service", has the figures). The
interpreter is Google's ``ai-edge-litert`` package, not TensorFlow's own
``tf.lite.Interpreter`` (deprecated in TF 2.21), so nothing here needs TensorFlow except
converting a signature.

Two ways to trust a ``model.tflite``:

- beside the restored SavedModel (``INFERENCE_BACKEND=tflite``): ``check_agreement`` compares
  the two on a check batch; a model directory without a TFLite copy (or with one that
  disagrees) has its signature converted here instead (``convert_signature``, which does
  import TensorFlow).
- alone (``INFERENCE_BACKEND=litert``, ``app.runtime.standalone``): training recorded the file's
  sha256 and a check batch with the SavedModel's answers at export time, and those are what
  the file is checked against.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

# Probabilities from the two runtimes differ only by float rounding, far below this bound;
# anything near it means the conversion changed the model, and the signature is served instead.
MAX_DIFFERENCE = 1e-4


class TFLiteUnusable(Exception):  # noqa: N818 - the service's vocabulary
    """A TFLite model could not be read or converted, or answers differently from the signature."""


class LiteRunner:
    """(N,28,28,1) float32 -> (N,10) probabilities through one TFLite interpreter.

    An interpreter is not thread-safe: call it from one thread only (the batcher's worker).
    Changing the batch size re-plans the tensors, which is cheap, so the input is resized to
    each batch rather than padded to a fixed size.
    """

    def __init__(self, model_content: bytes, threads: int) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_content=model_content, num_threads=threads)
        inputs = self._interpreter.get_input_details()
        outputs = self._interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise TFLiteUnusable(
                f"expected one input and one output, got {len(inputs)} and {len(outputs)}"
            )
        self._input = inputs[0]["index"]
        self._output = outputs[0]["index"]
        self._batch = 0
        self.model_bytes = len(model_content)
        self.threads = threads

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        interpreter = self._interpreter
        if len(batch) != self._batch:
            interpreter.resize_tensor_input(self._input, batch.shape, strict=True)
            interpreter.allocate_tensors()
            self._batch = len(batch)
        interpreter.set_tensor(self._input, batch)
        interpreter.invoke()
        return interpreter.get_tensor(self._output)  # a copy: safe to hand to other threads


def read_tflite(path: Path, threads: int) -> LiteRunner | None:
    """The ``model.tflite`` at ``path``, or None if there is none. Raises TFLiteUnusable."""
    try:
        model_content = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise TFLiteUnusable(f"cannot read {path.name}: {exc.strerror}") from exc
    try:
        return LiteRunner(model_content, threads)
    except TFLiteUnusable:
        raise
    except Exception as exc:  # a corrupt flatbuffer: ValueError, RuntimeError, ...
        raise TFLiteUnusable(f"{path.name} is not a usable TFLite model") from exc


def convert_signature(signature: Any, owner: Any, threads: int) -> LiteRunner:
    """Convert a restored ``serving_default`` signature to TFLite. Raises TFLiteUnusable."""
    import tensorflow as tf

    try:
        converter = tf.lite.TFLiteConverter.from_concrete_functions([signature], owner)
        model_content = converter.convert()
        return LiteRunner(model_content, threads)
    except TFLiteUnusable:
        raise
    except Exception as exc:  # the converter raises many types (ConverterError, ValueError, ...)
        raise TFLiteUnusable(str(exc).strip().splitlines()[0] if str(exc) else repr(exc)) from exc


def check_agreement(reference: Any, runner: LiteRunner, sizes: tuple[int, ...] = (1, 7)) -> float:
    """Largest probability difference between the signature and the TFLite model.

    Raises TFLiteUnusable when it exceeds MAX_DIFFERENCE or the shapes differ. The check
    inputs are fixed pseudo-random images: a blank one would hide a wrong weight.
    """
    rng = np.random.default_rng(0)
    worst = 0.0
    for size in sizes:
        batch = rng.random((size, 28, 28, 1), dtype=np.float32)
        expected = np.asarray(reference(batch))
        got = runner(batch)
        if got.shape != expected.shape:
            raise TFLiteUnusable(f"shape {got.shape}, the signature gives {expected.shape}")
        worst = max(worst, float(np.max(np.abs(got - expected))))
    if not worst <= MAX_DIFFERENCE:  # also catches NaN
        raise TFLiteUnusable(f"probabilities differ from the signature's by {worst:.2g}")
    return worst
