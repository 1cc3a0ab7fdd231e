"""Two real digits written into one another: a negative that teaches where one digit ends.

``/read`` cuts a row of digits into candidates and lets the model choose (``app.imaging.segment``):
the reading whose digits the model is surest of wins. When two digits touch, one candidate is
the whole blob, framed as one digit, and a model that has only ever been told "this is a digit"
or "this is not pen-on-paper" reads most such blobs as a digit, and surely: a 2 against a 1
reads as a 4, a 1 against an 8 as an 8. So the merged reading beats the right one. Pairs of
real digits side by side, touching or nearly, framed whole and trained towards the uniform
distribution like every other negative, are the evidence the model lacks: a blob of two digits
is not a digit. (The other way round, pieces of one digit cut apart, is not taught: a 3's
right half is a 3 and a 9's a 7 or a 1, and telling the model so would teach it to doubt
them.)

The digits come from the training split only (never validation, never test), so the
``/read`` benchmark's numbers, written with test digits, stay unseen.
"""

from __future__ import annotations

import cv2
import numpy as np

from training.negatives import mnist_frame

# Pairs per ordinary negative (on top of them, not instead).
PAIRS_PER_NEGATIVE = 0.2
HEIGHT_PX = 40.0  # the pair is composed at this digit height, then framed to MNIST's 20 px
SIZE_JITTER = 0.15  # each digit's height, ± this share
BASELINE_JITTER = 0.08  # each digit lifted or dropped by up to this share of the height
# The gap between the two ink boxes, in digit heights: negative overlaps, up to the gap under
# which /read may take two pieces for one digit (app.imaging.segment.MAYBE_MERGE_GAP).
GAP = (-0.25, 0.1)
# ...but the boxes overlap by at most this share of the narrower one, so a 1 is never drawn
# inside a 0 (that pair would look like one odd digit, and teach nothing about two).
MAX_OVERLAP_OF_NARROWER = 0.5
INK = 0.2  # of the peak: what counts as the digit's ink box


def digit_pairs(images: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` pairs of ``images`` (N x 28 x 28 uint8 digits, white on black), each pair framed
    as MNIST frames one digit: (n, 28, 28) uint8. The same arguments give the same pairs."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    images = np.asarray(images)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or (n and len(images) < 2):
        raise ValueError(f"need at least two 28x28 digits, got shape {images.shape}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x9A125]))
    out = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):
        left, right = rng.choice(len(images), size=2, replace=False)
        out[i] = mnist_frame(pair_ink(images[left], images[right], rng))
    return out


def pair_ink(left: np.ndarray, right: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Two digits side by side on one baseline, touching, overlapping or nearly: float32 ink."""
    a, b = (
        _scaled(d, HEIGHT_PX * rng.uniform(1 - SIZE_JITTER, 1 + SIZE_JITTER)) for d in (left, right)
    )
    gap = rng.uniform(*GAP) * HEIGHT_PX
    gap = max(gap, -MAX_OVERLAP_OF_NARROWER * min(a.shape[1], b.shape[1]))
    drops = [round(rng.uniform(-BASELINE_JITTER, BASELINE_JITTER) * HEIGHT_PX) for _ in "ab"]
    baseline = max(d.shape[0] - drop for d, drop in zip((a, b), drops, strict=True)) + 1
    xs = (0, max(0, round(a.shape[1] + gap)))
    height = max(baseline + drop for drop in drops) + 1
    width = max(x + d.shape[1] for d, x in zip((a, b), xs, strict=True))
    canvas = np.zeros((height, width), np.float32)
    for digit, x, drop in zip((a, b), xs, drops, strict=True):
        top = baseline + drop - digit.shape[0]
        window = canvas[top : top + digit.shape[0], x : x + digit.shape[1]]
        np.maximum(window, digit, out=window)
    return canvas


def _scaled(digit: np.ndarray, height: float) -> np.ndarray:
    """The digit's ink box, scaled to ``height`` px tall, float32 in [0, 1]."""
    image = digit.astype(np.float32) / 255.0
    mask = image >= INK * image.max()
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    crop = image[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    scale = height / crop.shape[0]
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(height)))
    return cv2.resize(crop, size, interpolation=cv2.INTER_LINEAR)
