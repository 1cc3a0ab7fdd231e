"""An experiment for /read: does a small "one digit, several, or part of one" judge help it cut?

The number reader chooses among candidate digits by the single-digit model's confidence
(``app.imaging.segment.choose``), and that model reads two merged digits as one sure digit
(an "81" as an 8) about as readily as it reads a fragment of one as a digit. This experiment
trains a separate judge for the question the recogniser cannot answer and measures whether
weighing it in helps:

1. numbers are written with ``digit_photos.numbers`` from *training* digits (the model's
   training split: never its validation digits, never MNIST's test set), every kind of
   ``benchmarks.numbers_over_http``, and cut into candidates by the service's own
   ``propose``;
2. each candidate is labelled by its box against the written digits' boxes: a *whole* digit
   (IoU ≥ WHOLE_IOU with one, no other covered), *several* (half the width of two or more
   covered), or *part* of one (anything else);
3. a small CNN learns the label from the candidate's 28×28 input, width and height (in digit
   heights);
4. the tuning set of ``benchmarks.tune_numbers`` (validation digits) is read twice: as the
   service reads it, and with every candidate's confidence multiplied by
   ``(1 - P(several)) ** alpha`` before the choice.

It changes nothing in the service; the README's /read section reports what it measured.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np

from app.imaging.segment import Candidate, Proposal
from benchmarks.numbers_over_http import KINDS, Box, iou

WHOLE, SEVERAL, PART = 0, 1, 2
WHOLE_IOU = 0.6
COVERED = 0.5  # of a written digit's width: it is in the candidate
TOUCHED = 0.3  # ...and a whole digit's candidate covers no other digit this much
JUDGE_SEED = 40_000_000  # apart from every other benchmark's seeds
CHUNK = 50


def label(candidate: Candidate, written: Sequence[Box]) -> int:
    """WHOLE, SEVERAL or PART: what ``candidate`` holds of the ``written`` digits' boxes."""
    box = candidate.box
    x0, y0, x1, y1 = box.x, box.y, box.x + box.width, box.y + box.height
    cover = np.array([max(min(x1, t[2]) - max(x0, t[0]), 0) / max(t[2] - t[0], 1) for t in written])
    if (cover > COVERED).sum() >= 2:
        return SEVERAL
    k = int(np.argmax(cover))
    others = np.delete(cover, k)
    if iou((x0, y0, x1, y1), written[k]) >= WHOLE_IOU and (
        others.size == 0 or others.max() < TOUCHED
    ):
        return WHOLE
    return PART


def _candidates(job: tuple[int, list[int], list[np.ndarray], list[list[int]]]) -> tuple:
    from app.imaging.errors import ImageError
    from app.imaging.prepare import propose_number_in
    from digit_photos.numbers import number_photo

    kind_index, seeds, digits, texts = job
    kind = KINDS[kind_index]
    images, features, labels = [], [], []
    for seed, drawn, text in zip(seeds, digits, texts, strict=True):
        photo = number_photo(drawn, text, kind.spacing, kind.paper, seed)
        try:
            proposal = propose_number_in(photo.data)
        except ImageError:
            continue
        for candidate in proposal.candidates:
            images.append(candidate.image)
            features.append((candidate.width, candidate.height))
            labels.append(label(candidate, photo.boxes))
    return (
        np.array(images, np.float32).reshape(-1, 28, 28),
        np.array(features, np.float32).reshape(-1, 2),
        np.array(labels, np.int64),
    )


def labelled_candidates(
    photos_per_kind: int, x: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidates of numbers written with ``x``, ``y``: twice as many touching and
    overlapping numbers as of the other kinds, where merged candidates are."""
    from digit_photos.numbers import number_digits

    jobs = []
    for kind_index, kind in enumerate(KINDS):
        count = photos_per_kind * (2 if kind.spacing != "separated" else 1)
        for start in range(0, count, CHUNK):
            seeds, digits, texts = [], [], []
            for i in range(start, min(count, start + CHUNK)):
                seed = JUDGE_SEED + 1_000_000 * kind_index + i
                length = kind.lengths[i % len(kind.lengths)]
                drawn, text = number_digits(np.random.default_rng(seed), x, y, length)
                seeds.append(seed)
                digits.append(drawn)
                texts.append(text)
            jobs.append((kind_index, seeds, digits, texts))
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        parts = list(pool.map(_candidates, jobs))
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))  # type: ignore[return-value]


def train_judge(images: np.ndarray, features: np.ndarray, labels: np.ndarray, epochs: int) -> Any:
    import keras

    keras.utils.set_random_seed(0)
    image = keras.Input((28, 28, 1))
    size = keras.Input((2,))
    h = image
    for filters in (16, 32):
        h = keras.layers.Conv2D(filters, 3, activation="relu", padding="same")(h)
        h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Conv2D(64, 3, activation="relu", padding="same")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    h = keras.layers.Dense(64, activation="relu")(keras.layers.Concatenate()([h, size]))
    judge = keras.Model([image, size], keras.layers.Dense(3, activation="softmax")(h))
    judge.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    order = np.random.default_rng(0).permutation(len(labels))
    judge.fit(
        [images[order, ..., np.newaxis], features[order]],
        labels[order],
        validation_split=0.1,
        epochs=epochs,
        batch_size=256,
        verbose=2,
    )
    return judge


def weighed(judge: Any, alpha: float, choose: Callable[..., list[int]]) -> Callable[..., list[int]]:
    """``choose`` with every candidate's confidence times ``(1 - P(several)) ** alpha``."""

    def choose_weighed(proposal: Proposal, confidences: np.ndarray) -> list[int]:
        if not proposal.candidates:
            return choose(proposal, confidences)
        size = np.array([(c.width, c.height) for c in proposal.candidates], np.float32)
        several = judge([proposal.images, size], training=False).numpy()[:, SEVERAL]
        return choose(proposal, confidences * np.clip(1 - several, 1e-4, 1.0) ** alpha)

    return choose_weighed


async def read_tuning_set(
    model_dir: Path, per_kind: int, kinds: Sequence[int], alphas: Sequence[float], judge: Any
) -> None:
    import app.service
    from app.service import DigitService
    from app.settings import Settings
    from benchmarks.tune_numbers import read_kind, validation_digits

    digits = validation_digits(model_dir)
    service = DigitService(Settings(MODEL_DIR=model_dir))
    await service.start()
    try:
        for alpha in (0.0, *alphas):
            chooser = weighed(judge, alpha, app.service.choose) if alpha else app.service.choose
            with mock.patch.object(app.service, "choose", chooser):
                for index in kinds:
                    figures, failures, _ = await read_kind(service, KINDS[index], per_kind, digits)
                    print(
                        f"alpha {alpha:g}, {KINDS[index].name}: exact {figures['exact']:.1%}; "
                        + ", ".join(f"{why} {n}" for why, n in failures.most_common()),
                        flush=True,
                    )
    finally:
        await service.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.segment_judge", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--model-dir", type=Path, default=Path(os.environ.get("MODEL_DIR", "models/mnist"))
    )
    parser.add_argument("--photos", type=int, default=800, help="training photos per kind")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    parser.add_argument("--per-kind", type=int, default=300, help="tuning photos per kind")
    parser.add_argument("--kinds", type=int, nargs="+", default=[0, 3])
    args = parser.parse_args(argv)

    from benchmarks.tune_numbers import model_split

    split = model_split(args.model_dir)  # the judge learns from the training split only
    images, features, labels = labelled_candidates(args.photos, split.x_train, split.y_train)
    print(f"{len(labels)} candidates: whole, several, part = {np.bincount(labels).tolist()}")
    judge = train_judge(images, features, labels, args.epochs)
    asyncio.run(read_tuning_set(args.model_dir, args.per_kind, args.kinds, args.alphas, judge))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
