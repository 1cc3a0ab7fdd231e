"""One real uvicorn process serving the fixture model, for the protocol clients to talk to."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from digit_photos import encode_png, photograph
from tests.servers import serve

MAX_BATCH_FILES = 8
MAX_UPLOAD_BYTES = 1024 * 1024


@pytest.fixture(scope="package")
def server_url(model_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``http://127.0.0.1:<port>`` of the service, with small limits the tests can reach."""
    log = tmp_path_factory.mktemp("protocols") / "server.log"
    limits = {"MAX_BATCH_FILES": str(MAX_BATCH_FILES), "MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES)}
    with serve(model_root, log, settings=limits) as server:
        yield server.url


@pytest.fixture(scope="package")
def digits(mnist_sample) -> tuple[np.ndarray, np.ndarray]:
    """Real MNIST test digits (uint8, 28x28) and their labels: two of each class."""
    picks = np.concatenate([np.flatnonzero(mnist_sample.y_test == d)[:2] for d in range(10)])
    return mnist_sample.x_test[picks], mnist_sample.y_test[picks]


@pytest.fixture(scope="package")
def uploads(digits) -> list[bytes]:
    """Files as users send them: MNIST PNGs and phone-photo JPEGs of the same digits."""
    images, _ = digits
    return [encode_png(d) for d in images[:4]] + [
        photograph(d, "jpeg", seed=i) for i, d in enumerate(images[4:8])
    ]
