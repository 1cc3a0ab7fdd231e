"""Tuning the number reader on digits the test set never sees: validation digits, in process.

``python -m benchmarks.tune_numbers`` writes numbers with ``digit_photos.numbers`` from the
model's *validation* digits (the split recorded in its ``metadata.json``: held out of training,
and not MNIST's test set, which ``benchmarks.numbers_over_http`` keeps for the figures), reads
them through the service's own ``DigitService.read_number`` without HTTP, and says how each
wrong reading went wrong:

- ``too few``: fewer digits found than written (two read as one, or one lost);
- ``too many``: more found than written (one cut in two, or a mark read as a digit);
- ``misread``: the right number of digits, and at least one read wrong.

Segmentation choices (where to cut, what a cut costs) are made on these figures, so the test
numbers stay a fair measure. ``--dump DIR`` writes each wrong photo with its reading.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from app.api.read import number_reading
from app.schemas import Timing
from app.service import DigitService, NumberRead
from app.settings import Settings
from benchmarks.numbers_over_http import KINDS, Kind, evaluate, render_kind, score
from training.train import Split

# The tuning numbers are numbers_over_http's kinds with their groups moved by this, so their
# seeds (numbers_over_http.number_seed) start at 30,000,000, apart from the test photos'.
TUNING_GROUPS = 10


def as_body(reading: NumberRead, model_version: str) -> dict[str, Any]:
    """The JSON /read answers with for ``reading`` (timings zero: nothing here is timed)."""
    untimed = Timing(read=0.0, preprocess=0.0, inference=0.0, total=0.0)
    answer = number_reading(reading, None, model_version=model_version, timing_ms=untimed)
    return answer.model_dump(mode="json")


def read_as(reading: NumberRead) -> str:
    """The digits' best guesses, left to right, whatever their verdicts."""
    return "".join(str(d.judged.best_guess) for d in reading.digits)


def failure(text: str, found: str) -> str | None:
    """How reading ``text`` as ``found`` went wrong (see the module's docstring), or None."""
    if found == text:
        return None
    if len(found) < len(text):
        return "too few"
    if len(found) > len(text):
        return "too many"
    return "misread"


def model_split(model_dir: Path) -> Split:
    """The training/validation split of the model in ``model_dir``, re-drawn from the one its
    ``metadata.json`` records, and checked against it."""
    from app.runtime.loading import find_latest_version, read_metadata
    from training.data import load_mnist
    from training.train import split_validation

    recorded = read_metadata(find_latest_version(model_dir))["validation"]
    mnist = load_mnist()
    split = split_validation(mnist.x_train, mnist.y_train, recorded["size"], recorded["seed"])
    if split.describe(recorded["seed"])["indices_sha256"] != recorded["indices_sha256"]:
        raise SystemExit("the validation split does not match the model's metadata.json")
    return split


def validation_digits(model_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The model's validation digits: held out of its training, and not MNIST's test set."""
    split = model_split(model_dir)
    return split.x_val, split.y_val


async def read_kind(
    service: DigitService, kind: Kind, count: int, digits: tuple[np.ndarray, np.ndarray]
) -> tuple[dict[str, Any], Counter[str], list[tuple[Any, NumberRead]]]:
    tuning = Kind(kind.name, kind.spacing, kind.paper, kind.lengths, kind.group + TUNING_GROUPS)
    photos = render_kind(tuning, count, *digits)
    scores, failures, wrong = [], Counter[str](), []
    for photo in photos:
        reading, _ = await service.read_number(photo.data)
        scores.append(score(photo, 200, as_body(reading, service.model.version)))
        why = failure(photo.text, read_as(reading))
        if why is not None:
            failures[why] += 1
            wrong.append((photo, reading))
    return evaluate(scores)["all"], failures, wrong


def dump(directory: Path, name: str, wrong: list[tuple[Any, NumberRead]]) -> None:
    import cv2

    directory.mkdir(parents=True, exist_ok=True)
    for i, (photo, reading) in enumerate(wrong):
        image = cv2.imdecode(np.frombuffer(photo.data, np.uint8), cv2.IMREAD_COLOR)
        for d in reading.digits:
            b = d.box
            cv2.rectangle(image, (b.x, b.y), (b.x + b.width, b.y + b.height), (0, 0, 255), 2)
        found = read_as(reading)
        stem = f"{name.split(',')[0]}-{i:03d}-{photo.text}-read-{found or 'none'}"
        cv2.imwrite(str(directory / f"{stem}.png"), image)


async def run(args: argparse.Namespace) -> None:
    digits = validation_digits(args.model_dir)
    service = DigitService(Settings(MODEL_DIR=args.model_dir))
    await service.start()
    try:
        for index in args.kinds:
            kind = KINDS[int(index)]
            figures, failures, wrong = await read_kind(service, kind, args.per_kind, digits)
            print(
                f"{kind.name}: exact {figures['exact']:.1%}, reading {figures['reading']:.1%}, "
                f"length {figures['length']:.1%}, per digit {figures['per_digit']:.2%}; wrong: "
                + ", ".join(f"{why} {n}" for why, n in failures.most_common()),
                flush=True,
            )
            if args.dump is not None:
                dump(args.dump, kind.name, wrong)
    finally:
        await service.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.tune_numbers", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--model-dir", type=Path, default=Path(os.environ.get("MODEL_DIR", "models/mnist"))
    )
    parser.add_argument("--per-kind", type=int, default=300, help="photos per kind")
    parser.add_argument(
        "--kinds",
        nargs="+",
        default=["0", "3"],
        metavar="N",
        help="kinds, by number (default: 0 3): "
        + "; ".join(f"{i}: {k.name}" for i, k in enumerate(KINDS)),
    )
    parser.add_argument("--dump", type=Path, default=None, help="write wrong photos here")
    asyncio.run(run(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
