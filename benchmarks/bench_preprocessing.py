"""Per-request cost of preprocessing, ours against the naive Pillow baseline, side by side.

Run from the repository root: ``python -m benchmarks.bench_preprocessing [--repeats N]``.
Candidates are timed in interleaved rounds, so background load hits them all alike; the
figure is the median over rounds of the mean time per call within a round.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from app.imaging.decode import load_image, to_grayscale
from app.imaging.normalize import normalize_digit
from app.imaging.prepare import prepare_image, preprocess_image, preprocess_naive
from digit_photos import encode_png, photograph
from digit_photos.notebook import notebook_photo

ROOT = Path(__file__).resolve().parents[1]


def naive_baseline(data: bytes) -> np.ndarray:
    """What most MNIST demos do: decode, convert L, resize 28x28, scale."""
    image = Image.open(io.BytesIO(data)).convert("L").resize((28, 28))
    return np.asarray(image, dtype=np.float32)[..., None] / 255


def time_side_by_side(
    candidates: dict[str, Callable[[], object]], repeats: int, budget_s: float = 0.01
) -> dict[str, float]:
    """Median over ``repeats`` rounds of µs per call; each round runs every candidate once."""
    calls = {}
    for name, call in candidates.items():  # warm up and size each batch to ~budget_s
        start = time.perf_counter()
        call()
        calls[name] = max(1, int(budget_s / max(time.perf_counter() - start, 1e-7)))
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, call in candidates.items():
            start = time.perf_counter_ns()
            for _ in range(calls[name]):
                call()
            samples[name].append((time.perf_counter_ns() - start) / calls[name] / 1000)
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=51)
    args = parser.parse_args()

    with np.load(ROOT / "tests" / "data" / "mnist_sample.npz") as sample:
        digit = sample["x_test"][0]
    images = {
        "28x28 MNIST PNG": encode_png(digit),
        "1000x750 phone JPEG": photograph(digit, "jpeg", seed=1, size=(1000, 750)),
        "1000x750 notebook JPEG, hard shadow": notebook_photo(
            digit, "hard", seed=1, size=(1000, 750)
        ),
    }
    for label, data in images.items():
        with Image.open(io.BytesIO(data)) as image:
            size = "x".join(map(str, image.size))
        gray = to_grayscale(load_image(data))
        results = time_side_by_side(
            {
                "prepare_image (/predict's)": lambda data=data: prepare_image(data),
                "preprocess_image (ours)": lambda data=data: preprocess_image(data),
                "  its normalize_digit": lambda gray=gray: normalize_digit(gray),
                "  Pillow decode + to_grayscale": lambda data=data: to_grayscale(load_image(data)),
                "preprocess_naive (ours)": lambda data=data: preprocess_naive(data),
                "naive baseline (Pillow)": lambda data=data: naive_baseline(data),
            },
            args.repeats,
        )
        baseline = results["naive baseline (Pillow)"]
        print(f"\n{label}: {size}, {len(data):,} bytes, median of {args.repeats} rounds")
        for name, micros in results.items():
            print(f"  {name:30s} {micros:9.1f} µs  {micros / baseline:5.2f}x baseline")


if __name__ == "__main__":
    main()
