"""The serving signature: what goes into the model and what comes out, in every format.

The SavedModel's ``serving_default`` signature, its TFLite copy and the check batch all use
these names: ``image`` float32 [N,28,28,1] in [0,1] (white digit on black, MNIST-normalised)
to ``probabilities`` float32 [N,10], calibrated.
"""

from __future__ import annotations

import numpy as np

SIGNATURE = "serving_default"
INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"
INPUT_SHAPE = (28, 28, 1)
NUM_CLASSES = 10
# The arrays in the check batch file (CHECK_FILE): the same names as the signature's.
CHECK_INPUT = INPUT_NAME
CHECK_OUTPUT = OUTPUT_NAME


def to_model_input(images: np.ndarray) -> np.ndarray:
    """uint8 (N,28,28) or (N,28,28,1) pixels -> float32 (N,28,28,1) in [0,1]."""
    return (np.asarray(images, dtype=np.float32) / 255.0).reshape(-1, *INPUT_SHAPE)
