"""Fit a network on MNIST: input scaling, augmentation, learning-rate schedule, the fit itself."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import keras
import numpy as np
import tensorflow as tf

from training.models import ARCHITECTURES


@dataclass(frozen=True)
class TrainConfig:
    arch: str = "default"
    epochs: int | None = None  # None: the architecture's own default
    batch_size: int | None = None
    seed: int = 42
    limit: int | None = None  # train on the first N images only (quick runs)
    verbose: int | str = "auto"


@dataclass(frozen=True)
class Recipe:
    """Per-architecture defaults; the seed's are exactly the tutorial's."""

    epochs: int
    batch_size: int
    augment: bool
    peak_lr: float | None  # None: plain Adam at Keras' default rate


RECIPES: dict[str, Recipe] = {
    "seed": Recipe(epochs=10, batch_size=32, augment=False, peak_lr=None),
    "default": Recipe(epochs=15, batch_size=128, augment=True, peak_lr=3e-3),
}


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
    x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, augment: bool
) -> tf.data.Dataset:
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    if augment:
        counter = tf.data.Dataset.counter()
        ds = tf.data.Dataset.zip((ds, counter)).map(
            lambda xy, i: (augment_batch(xy[0], tf.stack([tf.cast(seed, tf.int64), i])), xy[1]),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
    return ds.prefetch(tf.data.AUTOTUNE)


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


def train(
    config: TrainConfig,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
) -> TrainResult:
    """Train ``config.arch`` on uint8 images; ``x_val`` only monitors, it never steers training."""
    keras.utils.set_random_seed(config.seed)
    recipe = RECIPES[config.arch]
    epochs = config.epochs or recipe.epochs
    batch_size = config.batch_size or recipe.batch_size
    if config.limit:
        x_train, y_train = x_train[: config.limit], y_train[: config.limit]
    x = scale_images(x_train)
    y = y_train.astype(np.int32)

    model = ARCHITECTURES[config.arch]()
    if recipe.peak_lr is not None:
        steps = epochs * math.ceil(len(x) / batch_size)
        model.compile(
            optimizer=keras.optimizers.Adam(one_cycle(recipe.peak_lr, steps)),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
    validation = None
    if x_val is not None and y_val is not None:
        validation = (scale_images(x_val), y_val.astype(np.int32))

    start = time.perf_counter()
    if recipe.augment:
        history = model.fit(
            training_dataset(x, y, batch_size, config.seed, augment=True),
            epochs=epochs,
            shuffle=False,  # the dataset shuffles itself, reproducibly
            validation_data=validation,
            verbose=config.verbose,
        )
    else:  # the seed's own call, unchanged
        history = model.fit(
            x,
            y,
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
            "peak_lr": recipe.peak_lr,
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
