"""The two networks: the seed tutorial's (kept as the reference) and the team's default recipe."""

from __future__ import annotations

import keras
from keras import layers

INPUT_SHAPE = (28, 28, 1)
NUM_CLASSES = 10


def build_seed() -> keras.Model:
    """Exactly the seed tutorial's network; 98.5-98.6% on MNIST test after 10 epochs."""
    model = keras.Sequential(
        [
            keras.Input(shape=INPUT_SHAPE, name="image"),
            layers.Conv2D(28, kernel_size=(3, 3)),
            layers.MaxPooling2D(pool_size=(2, 2)),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dropout(0.2),
            layers.Dense(NUM_CLASSES, activation="softmax"),
        ],
        name="seed",
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _conv_bn(
    x: keras.KerasTensor, filters: int, kernel: int, strides: int = 1, padding: str = "valid"
) -> keras.KerasTensor:
    # No bias: BatchNorm's beta does its job.
    x = layers.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return layers.ReLU()(x)


def build_default(width: int = 32, dropout: float = 0.4) -> keras.Model:
    """Conv-BN network, about 190k parameters and 5 MFLOP per image.

    Sized for a 2-core CPU: valid padding and early pooling keep the expensive layers at 12x12
    and below, so an epoch costs about a third of a wider all-3x3 design, which buys the epochs
    that augmentation needs (shifted, rotated, rescaled, thicker or thinner strokes) to pay off.
    BatchNorm everywhere lets the one-cycle schedule use a high peak learning rate. Not compiled:
    the training loop owns the optimizer and schedule.
    """
    inputs = keras.Input(shape=INPUT_SHAPE, name="image")
    x = _conv_bn(inputs, width, 5)  # 24x24
    x = layers.MaxPooling2D()(x)  # 12x12
    x = _conv_bn(x, 2 * width, 3)  # 10x10
    x = _conv_bn(x, 2 * width, 3)  # 8x8
    x = layers.MaxPooling2D()(x)  # 4x4
    x = layers.Flatten()(x)
    x = layers.Dropout(dropout)(x)
    x = layers.Dense(4 * width, use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    x = layers.Dropout(dropout)(x)
    # float32 softmax so probabilities stay exact even under a mixed-precision policy.
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", dtype="float32", name="probs")(x)
    return keras.Model(inputs, outputs, name="default")


ARCHITECTURES = {"seed": build_seed, "default": build_default}
