"""The fixture model restored once per test module, and sample digits as its input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.runtime.loading import LoadedModel, load_model


@pytest.fixture(scope="module")
def model(model_dir: Path) -> LoadedModel:
    return load_model(model_dir)


@pytest.fixture(scope="module")
def digits(mnist_sample) -> np.ndarray:
    """The first 64 sample test digits as model input, (64, 28, 28, 1) float32 in [0, 1]."""
    return (mnist_sample.x_test[:64, ..., np.newaxis] / 255).astype(np.float32)
