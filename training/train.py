"""Fit a network on MNIST: validation split, outlier exposure, augmentation, schedule, the fit.

Outlier exposure: besides the digits, the network sees images that are not digits (letters,
shapes, scribbles, textures, ...) with a *uniform* target over the ten digits, so that on
something that is not a digit its probabilities come out flat instead of confidently wrong.
The loss on them is the cross-entropy to the uniform distribution, weighted by ``OE_WEIGHT``
(Hendrycks et al. use 0.5 for classifiers trained from scratch). A flat answer, not an eleventh
class, keeps the model's contract (ten probabilities) exactly what every consumer already reads.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field

import keras
import numpy as np
import tensorflow as tf

from training.models import ARCHITECTURES
from training.pairs import PAIRS_PER_NEGATIVE


@dataclass(frozen=True)
class TrainConfig:
    arch: str = "default"
    epochs: int | None = None  # None: the architecture's own default
    batch_size: int | None = None
    seed: int = 42
    limit: int | None = None  # train on the first N images only (quick runs)
    validation_size: int = 5000  # held out of the training digits; every choice is made on it
    negatives: int | None = None  # outlier-exposure images; None: the recipe's share of digits
    pairs: int | None = None  # pairs of digits on top of them (training.pairs); None: its share
    verbose: int | str = "auto"


@dataclass(frozen=True)
class Recipe:
    """Per-architecture defaults; the seed's are exactly the tutorial's."""

    epochs: int
    batch_size: int
    augment: bool
    peak_lr: float | None  # None: plain Adam at Keras' default rate
    negatives_share: float  # outlier-exposure images per training digit (0: none)


RECIPES: dict[str, Recipe] = {
    "seed": Recipe(epochs=10, batch_size=32, augment=False, peak_lr=None, negatives_share=0.0),
    # 17 epochs over 55,000 digits + 15,000 negatives: about 1.3x what 15 over 60,000 cost.
    "default": Recipe(
        epochs=17, batch_size=128, augment=True, peak_lr=3e-3, negatives_share=15 / 55
    ),
}

OE_WEIGHT = 0.5
EMA_MOMENTUM = 0.999


@dataclass
class TrainResult:
    model: keras.Model
    history: dict[str, list[float]]
    epochs: int
    batch_size: int
    seconds: float
    recipe: dict[str, object] = field(default_factory=dict)


def scale_images(x: np.ndarray) -> np.ndarray:
    """The seed's preprocessing: (N,28,28) uint8 -> (N,28,28,1) float32 in [0,1]."""
    return (x.astype(np.float32) / 255.0).reshape(-1, 28, 28, 1)


@dataclass(frozen=True)
class Split:
    """The training digits cut in two by a seeded, stratified draw: fit on one, choose on the other."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    val_indices: np.ndarray  # positions in the original training set, sorted

    def describe(self, seed: int) -> dict[str, object]:
        return {
            "size": len(self.y_val),
            "seed": seed,
            "of": len(self.y_val) + len(self.y_train),
            "indices_sha256": hashlib.sha256(self.val_indices.astype("<i8").tobytes()).hexdigest(),
            "per_class": np.bincount(self.y_val, minlength=10).tolist(),
        }


def split_validation(x: np.ndarray, y: np.ndarray, size: int, seed: int) -> Split:
    """Hold ``size`` digits out of the training set, stratified by class, fixed by ``seed``."""
    if not 0 < size < len(y):
        raise ValueError(f"validation size {size} must be between 0 and {len(y)}")
    rng = np.random.default_rng(seed)
    # Each class's share of ``size``, rounded so that they add up to exactly ``size``.
    counts = np.bincount(y, minlength=10)
    exact = size * counts / len(y)
    shares = np.floor(exact).astype(int)
    shares[np.argsort(shares - exact)[: size - shares.sum()]] += 1
    picked: list[np.ndarray] = []
    for digit in range(10):
        members = np.flatnonzero(y == digit)
        picked.append(rng.choice(members, size=int(shares[digit]), replace=False))
    val = np.sort(np.concatenate(picked))
    keep = np.ones(len(y), dtype=bool)
    keep[val] = False
    return Split(x[keep], y[keep], x[val], y[val], val)


def soft_targets(labels: np.ndarray, negatives: int) -> np.ndarray:
    """One-hot rows for the digits, then ``negatives`` uniform rows: the outlier-exposure target."""
    eye = np.eye(10, dtype=np.float32)[labels.astype(np.int64)]
    return np.concatenate([eye, np.full((negatives, 10), 0.1, dtype=np.float32)])


class DigitAccuracy(keras.metrics.Mean):
    """Accuracy over the digit rows only: a negative has no right answer to count."""

    def __init__(self, name: str = "accuracy", **kwargs: object) -> None:
        super().__init__(name=name, **kwargs)

    def update_state(
        self, y_true: tf.Tensor, y_pred: tf.Tensor, sample_weight: tf.Tensor | None = None
    ) -> None:
        is_digit = tf.cast(tf.reduce_max(y_true, axis=-1) > 0.5, tf.float32)
        hit = tf.cast(tf.argmax(y_true, axis=-1) == tf.argmax(y_pred, axis=-1), tf.float32)
        super().update_state(hit, sample_weight=is_digit)


# Augmentation ranges. The service normalises uploads the way MNIST was made (20 px box, centre
# of mass), so what is left to learn is the residual: a few degrees of slant, +-15% size and
# aspect, a couple of pixels of centring error, strokes a pixel thicker or thinner than a pen's.
ROTATION_DEG = 12.0
SCALE_RANGE = 0.15
SHEAR = 0.15
SHIFT_PX = 2.5
STROKE_CHANGE_P = 0.1


def augment_batch(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Random affine warp (one fused op for the whole batch) plus occasional stroke-width change."""
    n = tf.shape(images)[0]
    seeds = tf.random.experimental.stateless_split(seed, 6)

    def u(i: int, lo: float, hi: float) -> tf.Tensor:
        return tf.random.stateless_uniform([n], seeds[i], lo, hi)

    theta = u(0, -ROTATION_DEG, ROTATION_DEG) * (math.pi / 180.0)
    sx = u(1, 1.0 - SCALE_RANGE, 1.0 + SCALE_RANGE)
    sy = sx * u(2, 0.9, 1.1)
    shear = u(3, -SHEAR, SHEAR)
    shift = tf.random.stateless_uniform([n, 2], seeds[4], -SHIFT_PX, SHIFT_PX)
    cos, sin = tf.cos(theta), tf.sin(theta)
    # Output->input mapping (what ImageProjectiveTransform wants), about the image centre.
    a0, a1 = cos / sx, (-sin + shear * cos) / sx
    b0, b1 = sin / sy, (cos + shear * sin) / sy
    c = 13.5
    a2 = c - a0 * c - a1 * c + shift[:, 0]
    b2 = c - b0 * c - b1 * c + shift[:, 1]
    zeros = tf.zeros_like(a0)
    transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
    warped = tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=transforms,
        output_shape=tf.constant([28, 28]),
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )
    pick = tf.random.stateless_uniform([n, 1, 1, 1], seeds[5])
    thicker = tf.nn.max_pool2d(warped, 2, 1, "SAME")
    thinner = -tf.nn.max_pool2d(-warped, 2, 1, "SAME")
    out = tf.where(pick < STROKE_CHANGE_P, thicker, warped)
    return tf.where(pick > 1.0 - STROKE_CHANGE_P, thinner, out)


def training_dataset(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    seed: int,
    augment: bool,
    weights: np.ndarray | None = None,
) -> tf.data.Dataset:
    """Shuffled, batched, augmented on the fly; ``weights`` become Keras sample weights."""
    columns = (x, y) if weights is None else (x, y, weights)
    ds = tf.data.Dataset.from_tensor_slices(columns)
    ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    if augment:
        counter = tf.data.Dataset.counter()
        ds = tf.data.Dataset.zip((ds, counter)).map(
            lambda batch, i: (
                augment_batch(batch[0], tf.stack([tf.cast(seed, tf.int64), i])),
                *batch[1:],
            ),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
    return ds.prefetch(tf.data.AUTOTUNE)


def augmented_copy(x: np.ndarray, seed: int, batch_size: int = 1000) -> np.ndarray:
    """uint8 digits warped once by the training augmentation: the harder half of validation.

    Clean validation digits are easier than what the service meets; the same digits slanted,
    rescaled, shifted and re-stroked stand for the residual a real photo leaves after
    normalisation, without being fitted to any one photo generator.
    """
    images = scale_images(x)
    out = []
    for i in range(0, len(images), batch_size):
        chunk = tf.constant(images[i : i + batch_size])
        out.append(augment_batch(chunk, tf.constant([seed, i], tf.int64)).numpy())
    return np.clip(np.round(np.concatenate(out)[..., 0] * 255.0), 0, 255).astype(np.uint8)


def one_cycle(
    peak_lr: float, total_steps: int, warmup_frac: float = 0.15
) -> keras.optimizers.schedules.LearningRateSchedule:
    """Linear warm-up to the peak, then cosine decay to ~0: short runs converge well with it."""
    warmup = max(1, int(total_steps * warmup_frac))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=peak_lr / 10,
        decay_steps=max(1, total_steps - warmup),
        alpha=1e-3,
        warmup_target=peak_lr,
        warmup_steps=warmup,
    )


def negatives_wanted(config: TrainConfig, digits: int) -> int:
    """How many outlier-exposure images this run trains on."""
    if config.negatives is not None:
        return config.negatives
    return round(RECIPES[config.arch].negatives_share * digits)


def pairs_wanted(config: TrainConfig, negatives: int) -> int:
    """How many of the negatives are pairs of digits (added to ``negatives``, not of them)."""
    if config.pairs is not None:
        return config.pairs
    return round(PAIRS_PER_NEGATIVE * negatives)


def train(
    config: TrainConfig,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    x_negatives: np.ndarray | None = None,
) -> TrainResult:
    """Train ``config.arch`` on uint8 images.

    ``x_val`` (digits held out of the training set, never the test set) is what the learning
    curves show; ``x_negatives`` are trained towards the uniform distribution.
    """
    keras.utils.set_random_seed(config.seed)
    recipe = RECIPES[config.arch]
    epochs = config.epochs or recipe.epochs
    batch_size = config.batch_size or recipe.batch_size
    if config.limit:
        x_train, y_train = x_train[: config.limit], y_train[: config.limit]
    negatives = 0 if x_negatives is None else len(x_negatives)
    if negatives and not recipe.augment:
        raise ValueError(f"the {config.arch!r} recipe trains on digits only")

    model = ARCHITECTURES[config.arch]()
    ema_momentum = None
    if recipe.peak_lr is not None:
        steps = epochs * math.ceil((len(x_train) + negatives) / batch_size)
        ema_momentum = min(EMA_MOMENTUM, 1.0 - 8.0 / steps)
        model.compile(
            # The weights kept are an exponential average over the last ~1,000 steps (about
            # two epochs), which smooths out the noise of the final mini-batches. Short runs
            # average over fewer, so that the random initial weights have faded (e^-8) by the end.
            optimizer=keras.optimizers.Adam(
                one_cycle(recipe.peak_lr, steps),
                use_ema=True,
                ema_momentum=ema_momentum,
            ),
            loss=keras.losses.CategoricalCrossentropy(),
            metrics=[DigitAccuracy()],
        )
    validation = None
    if x_val is not None and y_val is not None:
        if recipe.peak_lr is not None:
            validation = (scale_images(x_val), soft_targets(y_val, 0))
        else:
            validation = (scale_images(x_val), y_val.astype(np.int32))

    start = time.perf_counter()
    if recipe.augment:
        images = x_train if x_negatives is None else np.concatenate([x_train, x_negatives])
        weights = np.ones(len(images), dtype=np.float32)
        weights[len(x_train) :] = OE_WEIGHT
        history = model.fit(
            training_dataset(
                scale_images(images),
                soft_targets(y_train, negatives),
                batch_size,
                config.seed,
                augment=True,
                weights=weights,
            ),
            epochs=epochs,
            shuffle=False,  # the dataset shuffles itself, reproducibly
            validation_data=validation,
            # The curves' validation figures are then the averaged weights', the ones exported.
            callbacks=[keras.callbacks.SwapEMAWeights()] if ema_momentum else None,
            verbose=config.verbose,
        )
    else:  # the seed's own call, unchanged
        history = model.fit(
            scale_images(x_train),
            y_train.astype(np.int32),
            batch_size=batch_size,
            epochs=epochs,
            validation_data=validation,
            verbose=config.verbose,
        )
    seconds = time.perf_counter() - start
    return TrainResult(
        model=model,
        history={k: [float(v) for v in vs] for k, vs in history.history.items()},
        epochs=epochs,
        batch_size=batch_size,
        seconds=seconds,
        recipe={
            "augment": recipe.augment,
            "outlier_exposure": {"negatives": negatives, "weight": OE_WEIGHT, "target": "uniform"}
            if negatives
            else None,
            "peak_lr": recipe.peak_lr,
            "weights": f"exponential moving average, momentum {ema_momentum:.5f}"
            if ema_momentum
            else "last step",
            "schedule": "one-cycle (linear warm-up, cosine decay)"
            if recipe.peak_lr
            else "constant",
            "augmentation": {
                "rotation_deg": ROTATION_DEG,
                "scale": SCALE_RANGE,
                "shear": SHEAR,
                "shift_px": SHIFT_PX,
                "stroke_change_p": STROKE_CHANGE_P,
            }
            if recipe.augment
            else None,
        },
    )
