"""Coverage-guided fuzzing of the upload path: bytes -> decode -> greyscale -> 28x28 digit.

``preprocess_image`` (what POST /predict runs) promises a (28, 28, 1) float32 array in [0, 1]
or one of the ``app.imaging.errors`` ImageError types, which the API answers as 4xx. This harness feeds
it mutated images under atheris (libFuzzer for Python): an ImageError is an expected outcome,
any other exception, or a result outside the contract, is a crash and libFuzzer saves the input.

    make fuzz                                   # FUZZ_SECONDS=60 by default
    .venv/bin/python fuzz/fuzz_preprocess.py -max_total_time=600 build/fuzz/corpus fuzz/corpus

New inputs go to the first corpus directory given (make fuzz uses build/fuzz/corpus, outside
git); fuzz/corpus holds the small seeds kept in the repo. A crash is written to
``-artifact_prefix`` and can be replayed by passing the file instead of a directory.
"""

from __future__ import annotations

import os
import sys
import warnings

import atheris

# Instrument our code and Pillow's Python plugins (the format parsers an upload reaches);
# Pillow's C decoders and OpenCV are not instrumented but still run on every input.
with atheris.instrument_imports(include=["app", "PIL"]):
    import numpy as np

    from app.imaging.errors import ImageError
    from app.imaging.prepare import preprocess_image, preprocess_naive

# Large enough for every decoding path, small enough to keep executions fast: a bomb is
# refused on its header either way.
MAX_PIXELS = 4_000_000


def check(x: np.ndarray) -> None:
    if x.shape != (28, 28, 1) or x.dtype != np.float32:
        raise AssertionError(f"bad model input: {x.dtype} {x.shape}")
    if not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
        raise AssertionError(f"values out of [0, 1]: {x.min()}..{x.max()}")


def test_one_input(data: bytes) -> None:
    # The first byte picks the route: ?preprocess=full (most of the time) or ?preprocess=none.
    preprocess = preprocess_naive if data[:1] == b"\x00" else preprocess_image
    try:
        x = preprocess(data[1:], max_pixels=MAX_PIXELS)
    except ImageError:
        return
    check(x)


def main() -> None:
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    warnings.simplefilter("ignore")  # Pillow warns about odd EXIF and metadata; not crashes
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
