"""The served SavedModel compiled to TensorFlow Lite, for the hot path.

Calling a restored SavedModel signature from Python costs about 1 ms before any arithmetic
(eager dispatch, structure flattening, tensor conversion): on this 2-core machine one image
took 1.0 ms and a batch of 32 4.5 ms. The same graph converted to TFLite and run by its
interpreter (XNNPACK kernels) took 0.08 ms and 1.8 ms, with probabilities equal to 1e-9.

The SavedModel stays the contract: ``app.inference.load_model`` restores it and checks its
signature as before, and a TFLite copy is only served after it has answered a check batch the
way the signature does. ``training/`` writes that copy as ``model.tflite`` beside the
SavedModel; a model directory without one (or with one that disagrees) has its signature
converted here instead, which adds about a second to startup.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

TFLITE_FILE = "model.tflite"

# Probabilities from the two runtimes differ by float rounding (1e-9 seen); anything near this
# bound means the conversion changed the model, and the signature is served instead.
MAX_DIFFERENCE = 1e-4


class CompilationFailed(Exception):  # noqa: N818 - the service's vocabulary
    """The signature could not be converted, or the converted model answers differently."""


class LiteRunner:
    """(N,28,28,1) float32 -> (N,10) probabilities through one TFLite interpreter.

    An interpreter is not thread-safe: call it from one thread only (the batcher's worker).
    Changing the batch size re-plans the tensors, which costs microseconds, so the input is
    resized to each batch rather than padded to a fixed size.
    """

    def __init__(self, model_content: bytes, threads: int) -> None:
        import tensorflow as tf

        with warnings.catch_warnings():
            # TF 2.21 warns that tf.lite.Interpreter moves to the ai-edge-litert package; that
            # package would load a second TFLite runtime beside TensorFlow's own.
            warnings.simplefilter("ignore", UserWarning)
            self._interpreter = tf.lite.Interpreter(
                model_content=model_content, num_threads=threads
            )
        inputs = self._interpreter.get_input_details()
        outputs = self._interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise CompilationFailed(
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


def read_compiled(path: Path, threads: int) -> LiteRunner | None:
    """The ``model.tflite`` at ``path``, or None if there is none. Raises CompilationFailed."""
    try:
        model_content = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CompilationFailed(f"cannot read {path.name}: {exc.strerror}") from exc
    try:
        return LiteRunner(model_content, threads)
    except CompilationFailed:
        raise
    except Exception as exc:  # a corrupt flatbuffer: ValueError, RuntimeError, ...
        raise CompilationFailed(f"{path.name} is not a usable TFLite model") from exc


def compile_signature(signature: Any, owner: Any, threads: int) -> LiteRunner:
    """Convert a restored ``serving_default`` signature to TFLite. Raises CompilationFailed."""
    import tensorflow as tf

    try:
        converter = tf.lite.TFLiteConverter.from_concrete_functions([signature], owner)
        model_content = converter.convert()
        return LiteRunner(model_content, threads)
    except CompilationFailed:
        raise
    except Exception as exc:  # the converter raises many types (ConverterError, ValueError, ...)
        raise CompilationFailed(
            str(exc).strip().splitlines()[0] if str(exc) else repr(exc)
        ) from exc


def check_agreement(reference: Any, runner: LiteRunner, sizes: tuple[int, ...] = (1, 7)) -> float:
    """Largest probability difference between the signature and the compiled model.

    Raises CompilationFailed when it exceeds MAX_DIFFERENCE or the shapes differ. The check
    inputs are fixed pseudo-random images: a blank one would hide a wrong weight.
    """
    rng = np.random.default_rng(0)
    worst = 0.0
    for size in sizes:
        batch = rng.random((size, 28, 28, 1), dtype=np.float32)
        expected = np.asarray(reference(batch))
        got = runner(batch)
        if got.shape != expected.shape:
            raise CompilationFailed(f"shape {got.shape}, the signature gives {expected.shape}")
        worst = max(worst, float(np.max(np.abs(got - expected))))
    if not worst <= MAX_DIFFERENCE:  # also catches NaN
        raise CompilationFailed(f"probabilities differ from the signature's by {worst:.2g}")
    return worst
