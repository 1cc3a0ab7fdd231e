"""Images that are not digits, for outlier exposure and for measuring rejection.

The model is trained to give a uniform distribution on these, so that at serving time a low
top probability means "not a digit". Every negative is produced as *ink* (white on black, any
size) and framed exactly the way an upload is framed before it reaches the model
(:func:`mnist_frame`), so the model learns to reject what it will actually be shown, not a
differently centred or scaled version of it.

Two disjoint families of generators exist. The training kinds (:data:`TRAIN_KINDS`) feed
outlier exposure; the held-out kinds (:data:`HELD_OUT_KINDS`) use different fonts, shape
families, stroke models and noise models, so a rejection rate measured on them says how well
rejection generalises to things the model never saw, rather than how well it memorised our
generators.

Fashion-MNIST is an optional extra source of training negatives, loaded and verified by hash
like MNIST itself (:func:`load_fashion_mnist`); a machine without it still trains.

Everything is deterministic: the same seed gives byte-identical arrays, because all randomness
comes from ``np.random.default_rng`` seeded from (seed, kind, family) and never global state.
"""

from __future__ import annotations

import functools
import glob
import importlib.util
import logging
import os
import socket
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from training.data import DatasetError, array_sha256, default_cache_dir, read_idx_file

log = logging.getLogger(__name__)

MNIST_SIZE = 28
MNIST_BOX = 20  # longer side of the ink's box inside the 28x28 frame, as in MNIST
MNIST_CENTRE = 14.0
BOX_THRESHOLD = 0.2  # fraction of the peak that counts as ink when finding the box

TRAIN_KINDS: tuple[str, ...] = (
    "letters",
    "words",
    "shapes",
    "scribbles",
    "textures",
    "noise",
    "loops",
    "strokes",
    "specks",
    "scenes",
)
HELD_OUT_KINDS: tuple[str, ...] = ("letters", "words", "shapes", "doodles", "photos", "noise")

# Letters a digit can be mistaken for (or that a sloppy digit can look like): training the model
# to reject these would teach it to reject real digits. O o Q D -> 0; I l i j J T L -> 1 or 7;
# Z z -> 2; S s -> 5; B -> 8; b G -> 6; g q y -> 9 or 4; U u -> an open 0 or 4; t f -> a 1 or 7
# with a crossbar (they frame to a tall thin stem); r -> a 7 or a flagged 1 once framed.
CONFUSABLE_LETTERS = "OoQDIlijJLTtfrZzSsBbGgqyUu"
ALPHABET = "".join(
    c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" if c not in CONFUSABLE_LETTERS
)

# Fashion-MNIST training images, raw uint8 C-order bytes (computed from Debian's
# dataset-fashion-mnist 0.0~git20200523; its mean 0.2860, std 0.3530 and labels match upstream).
FASHION_TRAIN_IMAGES_SHA256 = "2e487a6c89124f78f2d7521542223cafe96f7123c3ca13d447772ac6ecbb3012"
FASHION_TRAIN_IMAGES_SHAPE: tuple[int, ...] = (60000, 28, 28)
FASHION_IDX_STEM = "train-images-idx3-ubyte"
FASHION_CACHE_FILENAME = "fashion-mnist.npz"
DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MAX_FRACTION = 0.3  # the rest of the negatives stay programmatic, so kinds stay mixed
# Training kinds that reach the model as the service would cut them out of a photographed page
# (as_served) rather than framed whole: scenes hold many pieces, the others one object.
SERVED_KINDS = frozenset({"scenes"})
PAGE_SEEDS = 1_000_003  # a page's seed is seed * PAGE_SEEDS + its index within the kind
# A served piece thinner than this (minor / major axis) and within UPRIGHT_DEG of vertical
# reads as a 1 and is framed whole instead (as_served).
BAR_ELONGATION = 0.4
UPRIGHT_DEG = 40.0
# How the programmatic training negatives are shared out. Letters weigh most: an A, an H or
# a Y is nearer a 4 than any scribble is to a digit, and needs the most examples to be told
# apart; dense textures, noise and specks are easy and mostly turned away as having no ink.
TRAIN_KIND_WEIGHTS: dict[str, float] = {
    "letters": 3.0,
    "words": 1.0,
    "shapes": 1.5,
    "scribbles": 1.0,
    "textures": 0.5,
    "noise": 0.5,
    "loops": 1.5,
    "strokes": 1.5,
    "specks": 0.5,
    "scenes": 3.0,
}
# Fashion-MNIST images whose ink box is narrower than this fraction of its height are left out:
# framed to 20 px tall, trousers and narrow dresses are a thick 1, and rejecting them would teach
# the model to reject 1s. That drops 7,782 images (13%), among them 5,417 of the 6,000 trousers
# and 2,093 of the dresses.
FASHION_MIN_ASPECT = 0.5
KERAS_DATASET_HOST = ("storage.googleapis.com", 443)

# skimage/data photographs used for the held-out "photos" kind. Left out: text.png (handwritten
# maths, digits included), page.png (printed text), and the synthetic or single-blob images
# (phantom, color, chessboard, microaneurysms, clock_motion) that are not photographs.
PHOTO_FILES: tuple[str, ...] = (
    "astronaut.png",
    "brick.png",
    "camera.png",
    "cell.png",
    "chelsea.png",
    "coffee.png",
    "coins.png",
    "grass.png",
    "gravel.png",
    "horse.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "logo.png",
    "moon.png",
    "motorcycle_left.png",
    "retina.jpg",
    "rocket.jpg",
)

Stroke = tuple[np.ndarray, bool]  # (k,2) float points (x, y) and whether the path is closed
Figure = tuple[list[Stroke], list[np.ndarray]]  # strokes, filled polygons
Rng = np.random.Generator


class FashionMnistUnavailableError(LookupError):
    """No Fashion-MNIST source is present or reachable (not an error: training goes on)."""


# ---------------------------------------------------------------------------- framing


def mnist_frame(ink: np.ndarray) -> np.ndarray:
    """Frame one ink canvas as MNIST frames a digit: (28,28) uint8, peak 255.

    Crop to the box of pixels at least 0.2 of the peak, scale the longer side to 20 px keeping
    the aspect ratio, and paste so the centre of mass lands on (14,14) with a whole-pixel shift,
    clipped so that no ink leaves the frame. This mirrors the service's framing of uploads
    (app/imaging/normalize.py), so a negative looks to the model exactly like an upload would.
    An empty canvas gives all zeros rather than an error: a generator bug should show up as a
    failing test on non-empty output, not as a crash in the middle of training.
    """
    image = np.asarray(ink, dtype=np.float32)
    frame = np.zeros((MNIST_SIZE, MNIST_SIZE), np.uint8)
    if image.ndim != 2 or image.size == 0:
        raise ValueError(f"ink must be a 2-D array, got shape {image.shape}")
    image = np.nan_to_num(image, nan=0.0, posinf=0.0, neginf=0.0).clip(0, None)
    peak = float(image.max())
    if peak <= 0:
        return frame
    image = image / np.float32(peak)  # any scale of ink (uint8 0-255 too) frames the same
    mask = image >= BOX_THRESHOLD
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    crop: np.ndarray = image[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    height, width = crop.shape
    scale = MNIST_BOX / max(height, width)
    if scale != 1:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        # INTER_AREA averages when shrinking (no aliasing of thin strokes or noise); for the
        # rare canvas smaller than the box it is bilinear, as the service does.
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        crop = cv2.resize(crop, size, interpolation=interpolation)
        height, width = crop.shape
    peak = float(crop.max())
    if peak <= 0:
        return frame
    moments = cv2.moments(crop)
    row, col = moments["m01"] / moments["m00"], moments["m10"] / moments["m00"]
    top = min(max(_shift_to_centre(row), 0), MNIST_SIZE - height)
    left = min(max(_shift_to_centre(col), 0), MNIST_SIZE - width)
    pasted = np.rint(crop * np.float32(255.0 / peak)).clip(0, 255).astype(np.uint8)
    frame[top : top + height, left : left + width] = pasted
    return frame


def as_served(ink: np.ndarray, seed: int) -> np.ndarray:
    """What the service hands the model for ``ink`` photographed as a page: (28,28) uint8.

    Framing the canvas whole (``mnist_frame``) is what the service does to one object on a
    page, but not to a scene: there it picks the most digit-like stroke or region out of
    many and reweights it, and that piece (an arc, a bar, a blob) is what the model must
    learn to turn away. A page the service finds no ink on falls back to the whole canvas.
    """
    from app.imaging.errors import NoDigitFound
    from app.imaging.normalize import normalize_digit

    try:
        served = normalize_digit(to_page(ink, seed))
    except NoDigitFound:
        return mnist_frame(ink)
    frame = np.rint(served * np.float32(255)).clip(0, 255).astype(np.uint8)
    # A piece that is a bar standing upright is a 1 to anyone: teaching the model to turn it
    # away would teach it to turn 1s away (as CONFUSABLE_LETTERS and FASHION_MIN_ASPECT do).
    return mnist_frame(ink) if _upright_bar(frame) else frame


def _upright_bar(frame: np.ndarray) -> bool:
    """Whether the ink is a long thin stroke within UPRIGHT_DEG of vertical (by its moments)."""
    moments = cv2.moments(frame.astype(np.float32))
    if moments["m00"] <= 0:
        return False
    xx, yy, xy = moments["mu20"], moments["mu02"], moments["mu11"]
    spread = np.sqrt(((xx - yy) / 2) ** 2 + xy**2)
    major, minor = (xx + yy) / 2 + spread, (xx + yy) / 2 - spread
    if major <= 0 or np.sqrt(max(minor, 0.0) / major) >= BAR_ELONGATION:
        return False
    # The major axis' angle from the vertical (image rows grow downwards).
    tilt = np.degrees(0.5 * np.arctan2(2 * xy, yy - xx))
    return bool(abs(tilt) < UPRIGHT_DEG)


def _shift_to_centre(position: float) -> int:
    """Whole-pixel shift that brings ``position`` nearest MNIST_CENTRE (halves round up)."""
    return int(np.floor(MNIST_CENTRE - position + 0.5))


def to_page(ink: np.ndarray, seed: int) -> np.ndarray:
    """The ink as a user would photograph or scan it: dark ink on light paper, uint8 greyscale.

    Paper 200-245, ink 20-80, a margin of paper around the canvas, mild gaussian sensor noise
    and sometimes a slight blur. Used to send negatives through the real service over HTTP,
    where the service's own ink detection and framing must cope with them.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, _crc("to_page")]))
    image = np.asarray(ink, dtype=np.float32).clip(0, 1)
    if image.ndim != 2:
        raise ValueError(f"ink must be a 2-D array, got shape {image.shape}")
    margin = int(rng.integers(8, 8 + max(8, max(image.shape) // 4)))
    padded = cv2.copyMakeBorder(
        image, margin, margin, margin, margin, cv2.BORDER_CONSTANT, value=0.0
    )
    paper = rng.uniform(200, 245)
    dark = rng.uniform(20, 80)
    page: np.ndarray = (paper - (paper - dark) * padded).astype(np.float32)
    if rng.random() < 0.5:
        page = cv2.GaussianBlur(page, (0, 0), rng.uniform(0.4, 1.0))
    page = page + rng.normal(0.0, rng.uniform(1.5, 5.0), page.shape).astype(np.float32)
    return np.rint(page).clip(0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------- public generators


def available_held_out_kinds() -> tuple[str, ...]:
    """HELD_OUT_KINDS minus "photos" when scikit-image's sample photographs are not installed."""
    return tuple(k for k in HELD_OUT_KINDS if k != "photos" or _photo_paths())


def render_ink(kind: str, n: int, seed: int, *, held_out: bool = False) -> list[np.ndarray]:
    """``n`` canvases of white ink on black, float32 in [0,1], roughly 40-160 px a side.

    Training (``held_out=False``) and held-out kinds come from different generators. The
    random stream depends on (seed, kind, held_out) only, and each canvas draws from it in
    turn, so asking for more canvases with the same seed extends the list rather than
    changing it. Raises KeyError for an unknown kind and LookupError for "photos" when
    scikit-image's sample photographs are not installed.
    """
    table = _HELD_OUT if held_out else _TRAIN
    if kind not in table:
        family = "HELD_OUT_KINDS" if held_out else "TRAIN_KINDS"
        raise KeyError(f"unknown kind {kind!r}; {family} are {tuple(table)}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if kind == "photos" and not _photo_paths():
        raise LookupError(
            "the held-out 'photos' kind needs scikit-image's sample photographs "
            "(pip install scikit-image); use available_held_out_kinds() to skip it"
        )
    rng = np.random.default_rng(np.random.SeedSequence([seed, _crc(kind), int(held_out)]))
    draw = table[kind]
    return [draw(rng) for _ in range(n)]


def split_weighted(n: int, weights: dict[str, float]) -> list[tuple[str, int]]:
    """``n`` shared out in proportion to ``weights`` (largest remainders get the rest)."""
    kinds = list(weights)
    exact = n * np.array([weights[k] for k in kinds]) / sum(weights.values())
    counts = np.floor(exact).astype(int)
    counts[np.argsort(counts - exact, kind="stable")[: n - counts.sum()]] += 1
    return [(kind, int(count)) for kind, count in zip(kinds, counts, strict=True)]


def split_evenly(n: int, kinds: Sequence[str]) -> list[tuple[str, int]]:
    """``n`` spread over ``kinds`` as evenly as integers allow; the first kinds get the rest."""
    if not kinds:
        raise ValueError("no kinds to spread negatives over")
    base, extra = divmod(n, len(kinds))
    return [(kind, base + (i < extra)) for i, kind in enumerate(kinds)]


def synthetic_negatives(
    n: int, seed: int, *, held_out: bool = False, kinds: Sequence[str] | None = None
) -> np.ndarray:
    """(n,28,28) uint8 MNIST-framed negatives spread evenly over the kinds, in kind order.

    ``kinds`` defaults to TRAIN_KINDS, or to the available held-out kinds (HELD_OUT_KINDS
    without "photos" when scikit-image is absent: a warning says so). Rows come in blocks,
    one per kind in that order with the sizes :func:`split_evenly` gives, so a caller can
    label them without a second return value.
    """
    return _synthetic(n, seed, held_out=held_out, kinds=kinds)[0]


def _synthetic(
    n: int,
    seed: int,
    *,
    held_out: bool,
    kinds: Sequence[str] | None,
    weights: dict[str, float] | None = None,
) -> tuple[np.ndarray, list[tuple[str, int]]]:
    if kinds is None:
        kinds = available_held_out_kinds() if held_out else TRAIN_KINDS
        if held_out and len(kinds) < len(HELD_OUT_KINDS):
            log.warning("held-out negatives without 'photos': scikit-image is not installed")
    counts = split_weighted(n, weights) if weights else split_evenly(n, kinds)
    frames = [
        as_served(ink, seed * PAGE_SEEDS + i) if kind in SERVED_KINDS else mnist_frame(ink)
        for kind, count in counts
        for i, ink in enumerate(render_ink(kind, count, seed, held_out=held_out))
    ]
    x = np.stack(frames) if frames else np.zeros((0, MNIST_SIZE, MNIST_SIZE), np.uint8)
    return x, counts


@dataclass(frozen=True)
class Negatives:
    """Training negatives, their kinds, and where they came from (for metadata.json)."""

    x: np.ndarray  # (N,28,28) uint8, MNIST-framed, white on black
    kinds: np.ndarray  # (N,) str: the kind of each row ("letters", ..., "fashion-mnist")
    sources: list[dict[str, object]]


def load_negatives(
    n: int,
    seed: int,
    *,
    fashion_path: Path | None = None,
    cache_dir: Path | None = None,
    use_fashion: bool = True,
) -> Negatives:
    """``n`` training negatives: up to 30% Fashion-MNIST where a source has it, the rest shared
    over TRAIN_KINDS by TRAIN_KIND_WEIGHTS, shuffled together.

    Fashion-MNIST gives real, varied, non-digit shapes the generators cannot imagine; the cap
    keeps the programmatic kinds (the ones that look like pen on paper) in the majority. A
    missing Fashion-MNIST is a warning and a ``sources`` entry saying why, since a fresh
    machine has none and must still train; a source that is present but wrong is an error.
    Only Fashion-MNIST's training split is used, its images re-framed like uploads.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, _crc("load_negatives")]))
    parts: list[np.ndarray] = []
    labels: list[str] = []
    sources: list[dict[str, object]] = []

    if use_fashion:
        try:
            fashion, origin = load_fashion_mnist(fashion_path, cache_dir)
        except FashionMnistUnavailableError as exc:
            log.warning("Fashion-MNIST unavailable, negatives are programmatic only: %s", exc)
            sources.append(
                {
                    "name": "fashion-mnist",
                    "kind": "fashion-mnist",
                    "count": 0,
                    "unavailable": str(exc),
                }
            )
        else:
            eligible = np.flatnonzero(~_tall_and_thin(fashion))
            count = min(int(FASHION_MAX_FRACTION * n), len(eligible))
            rows = eligible[rng.choice(len(eligible), size=count, replace=False)]
            framed = _frame_all(fashion[rows].astype(np.float32) / 255.0)
            parts.append(framed)
            labels += ["fashion-mnist"] * count
            sources.append(
                {
                    "name": "fashion-mnist",
                    "kind": "fashion-mnist",
                    "origin": origin,
                    "split": "train",
                    "count": count,
                    "sha256": FASHION_TRAIN_IMAGES_SHA256,  # the verified source array
                    "framed_sha256": array_sha256(framed),  # the rows used, as framed
                    "excluded_tall_thin": int(len(fashion) - len(eligible)),
                }
            )

    synthetic, counts = _synthetic(
        n - len(labels), seed, held_out=False, kinds=TRAIN_KINDS, weights=TRAIN_KIND_WEIGHTS
    )
    start = 0
    for kind, count in counts:
        block = synthetic[start : start + count]
        start += count
        labels += [kind] * count
        sources.append(
            {
                "name": f"synthetic-{kind}",
                "kind": kind,
                "origin": f"training.negatives.render_ink({kind!r}, seed={seed})",
                "count": count,
                "sha256": array_sha256(block),
            }
        )
    parts.append(synthetic)

    order = rng.permutation(n)
    x = np.concatenate(parts)[order]
    kinds = np.asarray(labels, dtype=str)[order]
    return Negatives(x=x, kinds=kinds, sources=sources)


def _tall_and_thin(images: np.ndarray) -> np.ndarray:
    """Which images' ink box (as mnist_frame finds it) is under FASHION_MIN_ASPECT as wide as tall."""
    flat = images.reshape(len(images), -1)
    peak = flat.max(axis=1, initial=0).astype(np.float32)
    ink = images >= (BOX_THRESHOLD * peak)[:, None, None]
    ink &= (peak > 0)[:, None, None]

    def span(present: np.ndarray) -> np.ndarray:
        first = present.argmax(axis=1)
        last = present.shape[1] - 1 - present[:, ::-1].argmax(axis=1)
        return np.where(present.any(axis=1), last - first + 1, 0)

    height, width = span(ink.any(axis=2)), span(ink.any(axis=1))
    return np.asarray(width < FASHION_MIN_ASPECT * height)


def _frame_all(images: np.ndarray) -> np.ndarray:
    if len(images) == 0:
        return np.zeros((0, MNIST_SIZE, MNIST_SIZE), np.uint8)
    return np.stack([mnist_frame(image) for image in images])


# ---------------------------------------------------------------------------- Fashion-MNIST


def verify_fashion(images: np.ndarray, origin: str) -> None:
    """Raise DatasetError unless ``images`` is exactly Fashion-MNIST's training split."""
    if images.dtype != np.uint8 or images.shape != FASHION_TRAIN_IMAGES_SHAPE:
        raise DatasetError(
            f"{origin}: Fashion-MNIST images are {images.dtype}{images.shape}, "
            f"expected uint8{FASHION_TRAIN_IMAGES_SHAPE}"
        )
    got = array_sha256(images)
    if got != FASHION_TRAIN_IMAGES_SHA256:
        raise DatasetError(
            f"{origin}: sha256 {got[:16]}... is not Fashion-MNIST's training images "
            f"{FASHION_TRAIN_IMAGES_SHA256[:16]}... (file corrupt or not Fashion-MNIST)"
        )


def read_fashion(path: Path) -> np.ndarray:
    """Training images from a directory of IDX files (gzipped or not), an .npz with ``x_train``,
    or one IDX file. Raises DatasetError when the path holds none of these."""
    if path.is_dir():
        npz = path / FASHION_CACHE_FILENAME
        if npz.is_file():
            return _read_fashion_npz(npz)
        for candidate in (path / f"{FASHION_IDX_STEM}.gz", path / FASHION_IDX_STEM):
            if candidate.is_file():
                return read_idx_file(candidate)
        raise DatasetError(f"{path}: no {FASHION_IDX_STEM}[.gz] or {FASHION_CACHE_FILENAME}")
    if path.is_file():
        if path.suffix == ".npz":
            return _read_fashion_npz(path)
        return read_idx_file(path)
    raise DatasetError(f"{path}: no such file or directory")


def _read_fashion_npz(path: Path) -> np.ndarray:
    # allow_pickle=False: an npz is data, never code.
    try:
        with np.load(path, allow_pickle=False) as f:
            if "x_train" not in f.files:
                raise DatasetError(f"{path}: no x_train array")
            return f["x_train"]
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DatasetError(f"{path}: not a readable .npz file ({exc})") from exc


def _write_fashion_cache(cache_file: Path, images: np.ndarray) -> None:
    """Atomic, uncompressed (a cache hit is then a plain read, ~0.1 s instead of ~1 s)."""
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache_file.parent, prefix=".fashion-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, x_train=images)
        os.chmod(tmp, 0o644)
        os.replace(tmp, cache_file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _try_write_cache(cache_file: Path, images: np.ndarray) -> None:
    """A cache that cannot be written (read-only home, full disk) only costs the next run time."""
    try:
        _write_fashion_cache(cache_file, images)
    except OSError as exc:
        log.warning("Fashion-MNIST: could not write the cache %s: %s", cache_file, exc)


def _offline() -> bool:
    return os.environ.get("MNIST_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _keras_fashion() -> np.ndarray:
    """Keras' own download, tried only if it can plausibly work.

    Importing Keras costs seconds (TensorFlow), and offline the download fails only after
    that; so unless Keras already has the files cached, one quick connection to its host
    decides whether to try at all.
    """
    keras_home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")
    cached = (keras_home / "datasets" / "fashion-mnist" / f"{FASHION_IDX_STEM}.gz").is_file()
    if not cached:
        try:
            socket.create_connection(KERAS_DATASET_HOST, timeout=3).close()
        except OSError as exc:
            raise FashionMnistUnavailableError(
                f"keras download: {KERAS_DATASET_HOST[0]}: {exc}"
            ) from exc
    try:
        import keras

        (x_train, _), _ = keras.datasets.fashion_mnist.load_data()
    except Exception as exc:  # offline and partial downloads show up as many exception types
        raise FashionMnistUnavailableError(f"keras download failed: {exc}") from exc
    return np.asarray(x_train)


def load_fashion_mnist(
    fashion_path: Path | None = None,
    cache_dir: Path | None = None,
    *,
    keras_loader: Callable[[], np.ndarray] = _keras_fashion,
) -> tuple[np.ndarray, str]:
    """Fashion-MNIST training images (60000,28,28) uint8 and where they came from.

    Tried in order, first that works wins, each verified by sha256: ``fashion_path``; the
    cache ``(cache_dir or $MNIST_CACHE_DIR or ~/.cache/mnist-service)/fashion-mnist.npz``;
    Keras' download (skipped when ``MNIST_OFFLINE=1``); Debian's dataset-fashion-mnist in
    /usr/share/datasets/fashion-mnist. A result from the last two is cached. A source that
    is present but fails verification raises DatasetError (a wrong dataset is never used
    silently); FashionMnistUnavailableError means none was there.
    """
    if fashion_path is not None:
        images = read_fashion(Path(fashion_path))
        verify_fashion(images, str(fashion_path))
        return images, str(fashion_path)

    cache_file = Path(cache_dir or default_cache_dir()) / FASHION_CACHE_FILENAME
    if cache_file.is_file():
        try:
            images = _read_fashion_npz(cache_file)
            verify_fashion(images, str(cache_file))
        except DatasetError as exc:
            raise DatasetError(f"{exc}. Delete the cache file and run again.") from exc
        return images, f"cache:{cache_file}"

    tried = [f"cache: {cache_file} does not exist"]
    if _offline():
        tried.append("keras download: skipped (MNIST_OFFLINE)")
    else:
        try:
            images = keras_loader()
        except FashionMnistUnavailableError as exc:
            tried.append(str(exc))
        else:
            verify_fashion(images, "keras download")
            _try_write_cache(cache_file, images)
            return images, "keras download"

    debian = DEBIAN_FASHION_DIR
    if (debian / f"{FASHION_IDX_STEM}.gz").is_file() or (debian / FASHION_IDX_STEM).is_file():
        images = read_fashion(debian)
        verify_fashion(images, str(debian))
        _try_write_cache(cache_file, images)
        return images, str(debian)
    tried.append(
        f"debian: {debian} has no {FASHION_IDX_STEM}[.gz] (apt install dataset-fashion-mnist)"
    )
    raise FashionMnistUnavailableError("; ".join(tried))


# ---------------------------------------------------------------------------- drawing helpers


def _crc(text: str) -> int:
    """A stable integer for a name (Python's hash() changes between runs)."""
    return zlib.crc32(text.encode())


def _pen(rng: Rng, low: float = 1.3, high: float = 3.2) -> float:
    """Stroke width the ink should have once framed to 20 px, like a pen's on a digit.

    MNIST's own strokes, measured the same way (ink mass per skeleton pixel, calibrated on
    drawn strokes of known width), are 1.2-2.8 px wide at the 10th-90th percentiles, median
    1.9; the range here covers that and a little more for thick markers. A negative with a
    stroke no digit has would be rejected for its stroke alone, which teaches nothing.
    """
    return float(rng.uniform(low, high))


def _affine(
    rng: Rng, rotate: float = 25.0, shear: float = 0.35, squash: float = 0.25
) -> np.ndarray:
    """A random 2x2 linear map: rotation, slant (shear) and aspect change, as handwriting has."""
    theta = np.deg2rad(rng.uniform(-rotate, rotate))
    c, s = np.cos(theta), np.sin(theta)
    k = rng.uniform(-shear, shear)
    a = np.exp(rng.uniform(-squash, squash))
    rotation = np.array([[c, -s], [s, c]])
    slant = np.array([[1.0, k], [0.0, 1.0]])
    aspect = np.diag([a, 1.0 / a])
    return rotation @ slant @ aspect


def _draw(
    figure: Figure, rng: Rng, *, pen: float | None = None, transform: bool = True
) -> np.ndarray:
    """Draw strokes and filled polygons (any coordinates) as ink with a round pen.

    The figure is mapped to a canvas whose longer side holds 40-90 px of figure, and the pen
    is chosen so that after mnist_frame's scaling to 20 px the stroke is ``pen`` px wide:
    strokes that thin or thicken with the canvas would not look like anyone's pen.
    """
    strokes, fills = figure
    matrix = _affine(rng) if transform else np.eye(2)
    paths = [(np.asarray(p, np.float64) @ matrix.T, closed) for p, closed in strokes]
    polygons = [np.asarray(p, np.float64) @ matrix.T for p in fills]
    points = np.concatenate([p for p, _ in paths] + polygons)
    low, high = points.min(axis=0), points.max(axis=0)
    extent = float(max(high - low)) or 1.0
    target = float(rng.uniform(40, 90))
    pen = _pen(rng) if pen is None else pen
    width = pen * target / (MNIST_BOX - pen)  # so that width / (target + width) * 20 == pen
    margin = width / 2 + 3
    scale = target / extent
    size = np.ceil((high - low) * scale + 2 * margin).astype(int) + 1
    canvas = np.zeros((size[1], size[0]), np.uint8)
    shift = 4  # sub-pixel precision for cv2's integer coordinates

    def fixed(p: np.ndarray) -> np.ndarray:
        return np.rint(((p - low) * scale + margin) * (1 << shift)).astype(np.int32)

    for polygon in polygons:
        cv2.fillPoly(canvas, [fixed(polygon)], 255, cv2.LINE_AA, shift)
    thickness = max(1, round(width))
    for path, closed in paths:
        if len(path) == 1:
            centre = tuple(int(v) for v in fixed(path)[0])
            cv2.circle(
                canvas, centre, max(1, round(width / 2)) << shift, 255, -1, cv2.LINE_AA, shift
            )
        else:
            cv2.polylines(canvas, [fixed(path)], closed, 255, thickness, cv2.LINE_AA, shift)
    return canvas.astype(np.float32) / 255.0


def _warp(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2x2 linear map to a raster, growing the canvas so nothing is cut off."""
    h, w = image.shape
    corners = np.array([[0, 0], [w, 0], [0, h], [w, h]], np.float64) @ matrix.T
    low, high = corners.min(axis=0), corners.max(axis=0)
    size = np.ceil(high - low).astype(int) + 2
    affine = np.hstack([matrix, (1 - low)[:, None]]).astype(np.float32)
    return cv2.warpAffine(image, affine, (int(size[0]), int(size[1])), flags=cv2.INTER_LINEAR)


def _circle(n: int, radius: float = 1.0, centre: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([centre[0] + radius * np.cos(t), centre[1] + radius * np.sin(t)], axis=1)


def _text_pick(rng: Rng, words: bool) -> str:
    length = int(rng.integers(2, 7)) if words else 1
    return "".join(ALPHABET[i] for i in rng.integers(0, len(ALPHABET), length))


# ---------------------------------------------------------------------------- training kinds

# Each font with how much heavier than SIMPLEX it draws at the same thickness (the duplex,
# triplex and complex faces trace every stroke two or three times), measured on framed letters.
_HERSHEY_FONTS: tuple[tuple[int, float], ...] = (
    (cv2.FONT_HERSHEY_SIMPLEX, 1.0),
    (cv2.FONT_HERSHEY_PLAIN, 1.0),
    (cv2.FONT_HERSHEY_DUPLEX, 1.25),
    (cv2.FONT_HERSHEY_COMPLEX, 1.08),
    (cv2.FONT_HERSHEY_TRIPLEX, 1.2),
    (cv2.FONT_HERSHEY_COMPLEX_SMALL, 1.1),
    (cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, 1.2),
    (cv2.FONT_HERSHEY_SCRIPT_COMPLEX, 1.4),
)


def _hershey_text(rng: Rng, words: bool) -> np.ndarray:
    """Letters or short words in OpenCV's Hershey stroke fonts, any weight, slanted and turned."""
    text = _text_pick(rng, words)
    font, weight = _HERSHEY_FONTS[int(rng.integers(len(_HERSHEY_FONTS)))]
    if rng.random() < 0.3:
        font |= cv2.FONT_ITALIC
    (_, h1), base1 = cv2.getTextSize(text, font, 1.0, 1)
    scale = float(rng.uniform(36, 64)) / max(h1 + base1, 1)  # a line of text 36-64 px high
    (w, h), base = cv2.getTextSize(text, font, scale, 1)

    def put(thickness: int) -> np.ndarray:
        pad = thickness + 4
        canvas = np.zeros((h + base + 2 * pad, w + 2 * pad), np.uint8)
        cv2.putText(canvas, text, (pad, pad + h), font, scale, 255, thickness, cv2.LINE_AA)
        return canvas

    # The pen is sized on the ink's own box (an "n" is shorter than the line it sits on), since
    # that box is what mnist_frame scales to 20 px.
    _, _, ink_w, ink_h = cv2.boundingRect(put(1))
    pen = _pen(rng, 1.0, 2.6) / weight  # letters measure heavier than single strokes
    width = pen * max(ink_w, ink_h) / (MNIST_BOX - pen)
    if words:
        # A long word framed to 20 px has small letters; a pen as wide as the box allows would
        # fill them in, so the stroke is kept to a fraction of the letters' height.
        width = min(width, ink_h * rng.uniform(0.1, 0.18))
    canvas = put(max(1, round(width)))
    return _warp(canvas.astype(np.float32) / 255.0, _affine(rng, rotate=20, shear=0.3, squash=0.2))


def _arc(cx: float, cy: float, r: float, start: float, end: float, n: int = 12) -> np.ndarray:
    """Points along a circular arc (angles in degrees, y pointing down like the page)."""
    a = np.deg2rad(np.linspace(start, end, n))
    return np.stack([cx + r * np.cos(a), cy - r * np.sin(a)], axis=1)


def _line(*points: tuple[float, float]) -> np.ndarray:
    return np.array(points, np.float64)


# Capital letters as a hand draws them: pen strokes in a unit box (x right, y down). Only
# letters of ALPHABET; each stroke is a polyline that _draw renders with a round pen.
_HAND_LETTERS: dict[str, list[np.ndarray]] = {
    "A": [_line((0, 1), (0.5, 0), (1, 1)), _line((0.22, 0.6), (0.78, 0.6))],
    "C": [_arc(0.55, 0.5, 0.5, 50, 310, 16)],
    "E": [_line((0.9, 0), (0.1, 0), (0.1, 1), (0.9, 1)), _line((0.1, 0.5), (0.7, 0.5))],
    "F": [_line((0.9, 0), (0.1, 0), (0.1, 1)), _line((0.1, 0.5), (0.7, 0.5))],
    "H": [_line((0.1, 0), (0.1, 1)), _line((0.9, 0), (0.9, 1)), _line((0.1, 0.5), (0.9, 0.5))],
    "K": [_line((0.15, 0), (0.15, 1)), _line((0.9, 0), (0.15, 0.55)), _line((0.35, 0.4), (0.9, 1))],
    "M": [_line((0, 1), (0.1, 0), (0.5, 0.7), (0.9, 0), (1, 1))],
    "N": [_line((0.1, 1), (0.1, 0), (0.9, 1), (0.9, 0))],
    "P": [np.vstack([_line((0.15, 1), (0.15, 0)), _arc(0.4, 0.27, 0.27, 90, -90, 12)])],
    "R": [
        np.vstack([_line((0.15, 1), (0.15, 0)), _arc(0.4, 0.27, 0.27, 90, -90, 12)]),
        _line((0.4, 0.54), (0.9, 1)),
    ],
    "V": [_line((0, 0), (0.5, 1), (1, 0))],
    "W": [_line((0, 0), (0.25, 1), (0.5, 0.35), (0.75, 1), (1, 0))],
    "X": [_line((0.05, 0), (0.95, 1)), _line((0.95, 0), (0.05, 1))],
    "Y": [_line((0.05, 0), (0.5, 0.5), (0.95, 0)), _line((0.5, 0.5), (0.5, 1))],
}


def _hand_letter(rng: Rng) -> np.ndarray:
    """A capital drawn in pen strokes with a wobbly hand: what people write on the page.

    Fonts alone teach the network what printed letters look like; users who try the service
    with a letter draw it, stroke by stroke, the way they draw digits.
    """
    letter = list(_HAND_LETTERS)[int(rng.integers(len(_HAND_LETTERS)))]
    width = rng.uniform(0.6, 1.1)
    strokes: list[Stroke] = []
    for stroke in _HAND_LETTERS[letter]:
        points = stroke * np.array([width, 1.0]) + rng.normal(0, 0.035, stroke.shape)
        strokes.append((points, False))
    return _draw((strokes, []), rng)


def _train_letters(rng: Rng) -> np.ndarray:
    if rng.random() < 0.5:
        return _hand_letter(rng)
    return _hershey_text(rng, words=False)


def _train_words(rng: Rng) -> np.ndarray:
    return _hershey_text(rng, words=True)


def _train_shapes(rng: Rng) -> np.ndarray:
    """Polygons (outline or filled), plus signs and crosses of two bars, concentric squares.

    No lone circle or ellipse (a 0), straight line (a 1) or dot. Outlined pentagons and
    hexagons are near enough to an 0 that they get their diagonals drawn; outlined rectangles
    are at least as wide as tall, since 0s are taller than wide.
    """
    choice = rng.integers(4)
    if choice == 0:  # triangle, rectangle, pentagon, hexagon
        sides = int(rng.integers(3, 7))
        start = rng.uniform(0, 2 * np.pi)
        if sides == 4:
            w, h = 1.0, float(rng.uniform(0.35, 1.0))
            pts = np.array([[-w, -h], [w, -h], [w, h], [-w, h]])
        else:
            t = start + np.arange(sides) * 2 * np.pi / sides + rng.normal(0, 0.12, sides)
            r = rng.uniform(0.8, 1.1, sides)
            pts = np.stack([r * np.cos(t), r * np.sin(t)], axis=1)
        if rng.random() < 0.4:
            return _draw(([], [pts]), rng)
        strokes: list[Stroke] = [(pts, True)]
        if sides >= 5:
            for i in range(0, sides, 2 if rng.random() < 0.5 else 1):
                strokes.append((np.array([pts[i], pts[(i + sides // 2) % sides]]), False))
        return _draw((strokes, []), rng)
    if choice == 1:  # plus or cross of two thick bars
        bar = float(rng.uniform(0.15, 0.35))
        arm = float(rng.uniform(0.7, 1.0))
        horizontal = np.array([[-1, -bar], [1, -bar], [1, bar], [-1, bar]])
        vertical = np.array([[-bar, -arm], [bar, -arm], [bar, arm], [-bar, arm]])
        if rng.random() < 0.5:  # an x rather than a +
            c = s = np.sqrt(0.5)
            turn = np.array([[c, -s], [s, c]])
            horizontal, vertical = horizontal @ turn.T, vertical @ turn.T
        return _draw(([], [horizontal, vertical]), rng)
    if choice == 2:  # concentric squares
        rings = int(rng.integers(2, 4))
        strokes = []
        for r in np.linspace(1.0, rng.uniform(0.2, 0.4), rings):
            strokes.append((np.array([[-r, -r], [r, -r], [r, r], [-r, r]]), True))
        return _draw((strokes, []), rng, pen=_pen(rng, 1.5, 2.5))
    # a triangle or square with a second, rotated copy through it
    sides = int(rng.choice([3, 4]))
    pts = _circle(sides)
    angle = rng.uniform(0.3, 1.0)
    c, s = np.cos(angle), np.sin(angle)
    return _draw(([(pts, True), (pts @ np.array([[c, -s], [s, c]]).T * 0.8, True)], []), rng)


def _catmull_rom(points: np.ndarray, per_segment: int = 8) -> np.ndarray:
    """A smooth curve through the points, like a quick pen movement through them."""
    p = np.vstack([points[:1], points, points[-1:]])
    t = np.linspace(0, 1, per_segment, endpoint=False)[:, None]
    out = []
    for i in range(1, len(p) - 2):
        p0, p1, p2, p3 = p[i - 1], p[i], p[i + 1], p[i + 2]
        out.append(
            0.5
            * (
                2 * p1
                + (-p0 + p2) * t
                + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
                + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3
            )
        )
    out.append(points[-1:])
    return np.vstack(out)


def _tangled(path: np.ndarray) -> bool:
    """Long and round enough to be a tangle: a gentle curve or a long thin path is a 1, 2, 5 or 7."""
    extent = path.max(axis=0) - path.min(axis=0)
    length = float(np.linalg.norm(np.diff(path, axis=0), axis=1).sum())
    return bool(min(extent) >= 0.5 * max(extent) and length >= 6 * max(extent))


def _scribble_path(rng: Rng) -> np.ndarray:
    if rng.random() < 0.5:  # a random walk with momentum on its turning, bounced inside a box
        steps = int(rng.integers(70, 120))
        heading, turning = rng.uniform(0, 2 * np.pi), 0.0
        position = np.zeros(2)
        path = [position.copy()]
        for _ in range(steps):
            turning = 0.7 * turning + rng.normal(0, 0.35)
            heading += turning
            step = 0.12 * np.array([np.cos(heading), np.sin(heading)])
            for axis in (0, 1):
                if abs(position[axis] + step[axis]) > 1:  # bounce off the wall
                    step[axis] = -step[axis]
                    heading = float(np.arctan2(step[1], step[0]))
            position = position + step
            path.append(position.copy())
        return np.array(path)
    return _catmull_rom(rng.uniform(-1, 1, (int(rng.integers(12, 20)), 2)))


def _train_scribbles(rng: Rng) -> np.ndarray:
    """Tangles: a bounced random walk, or a smooth curve through many random points.

    Redrawn until it is long and round enough (:func:`_tangled`) that no digit's path fits.
    """
    path = _scribble_path(rng)
    for _ in range(20):
        if _tangled(path):
            break
        path = _scribble_path(rng)
    return _draw(([(path, False)], []), rng, pen=_pen(rng, 1.2, 2.2))


def _train_textures(rng: Rng) -> np.ndarray:
    """Smooth random fields (blurred noise at a random scale), as blobs or as stretched grey."""
    size = int(rng.integers(48, 97))
    field: np.ndarray = rng.standard_normal((size, size)).astype(np.float32)
    field = cv2.GaussianBlur(field, (0, 0), float(rng.uniform(1.5, 5.0)))
    field = (field - field.min()) / max(float(field.max() - field.min()), 1e-6)
    if rng.random() < 0.5:
        level = np.quantile(field, rng.uniform(0.4, 0.75))
        blobs = (field > level).astype(np.float32)
        return cv2.GaussianBlur(blobs, (0, 0), 0.7)
    return np.clip((field - rng.uniform(0.1, 0.4)) * rng.uniform(1.5, 3.0), 0, 1) ** rng.uniform(
        0.7, 1.5
    )


def _train_noise(rng: Rng) -> np.ndarray:
    """Per-pixel gaussian or uniform noise, lightly blurred, at a few canvas sizes (grain)."""
    size = int(rng.choice([24, 32, 48, 64, 80]))
    if rng.random() < 0.5:
        noise = rng.normal(rng.uniform(0.3, 0.6), rng.uniform(0.15, 0.35), (size, size))
    else:
        noise = rng.uniform(0, 1, (size, size)) * rng.uniform(0.5, 1.0)
    grain: np.ndarray = noise.astype(np.float32)
    sigma = float(rng.choice([0.0, 0.6, 1.0]))
    if sigma:
        grain = cv2.GaussianBlur(grain, (0, 0), sigma)
    return np.clip(grain, 0, 1)


def _train_loops(rng: Rng) -> np.ndarray:
    """Closed curves that are not a 0: a cusp or a point on the outline, marks inside or out.

    A plain round loop is a 0, so every loop here has what a 0 never has: a sharp corner in
    its outline (a drop, a leaf, a kidney with a notch) or one to three marks of its own
    (dots, dashes, a small arc) inside or beside it.
    """
    t = np.linspace(0, 2 * np.pi, 96, endpoint=False)
    radius = np.ones_like(t)
    for harmonic in range(2, 5):
        radius += rng.uniform(-0.12, 0.12) * np.cos(harmonic * t + rng.uniform(0, 2 * np.pi))
    pointed = rng.random() < 0.5
    at = rng.uniform(0, 2 * np.pi)
    gap = np.abs(np.angle(np.exp(1j * (t - at))))
    if pointed:  # pull the outline out into a sharp point (a drop, a leaf)
        radius += rng.uniform(0.6, 1.0) * np.exp(-gap / rng.uniform(0.1, 0.2))
    elif rng.random() < 0.5:  # or push a deep notch into it (a kidney, a heart's top)
        radius -= rng.uniform(0.35, 0.55) * np.exp(-gap / rng.uniform(0.1, 0.2))
    aspect = rng.uniform(0.8, 1.3)
    outline = np.stack([radius * np.cos(t) * aspect, radius * np.sin(t)], axis=1)
    strokes: list[Stroke] = [(outline, True)]
    fills: list[np.ndarray] = []
    marks = int(rng.integers(0 if pointed else 1, 4))
    for _ in range(marks):
        centre = rng.uniform(-0.45, 0.45, 2)  # inside: a 0 is empty
        kind = rng.integers(3)
        if kind == 0:  # a dot
            fills.append(_circle(12, float(rng.uniform(0.08, 0.15)), (centre[0], centre[1])))
        elif kind == 1:  # a dash
            angle = rng.uniform(0, np.pi)
            half = rng.uniform(0.15, 0.35) * np.array([np.cos(angle), np.sin(angle)])
            strokes.append((np.array([centre - half, centre + half]), False))
        else:  # a small arc
            a = np.linspace(0, rng.uniform(1.5, 3.0), 10) + rng.uniform(0, 2 * np.pi)
            r = rng.uniform(0.2, 0.4)
            strokes.append(
                (np.stack([centre[0] + r * np.cos(a), centre[1] + r * np.sin(a)], 1), False)
            )
    return _draw((strokes, fills), rng, pen=_pen(rng, 1.3, 2.6))


def _train_strokes(rng: Rng) -> np.ndarray:
    """Straight strokes that meet at sharp angles: ticks, zig-zags, asterisks, angle brackets.

    Drawn so that no digit's skeleton fits: a tick falls then rises (no digit does), a zig-zag
    turns back at least three times, an asterisk crosses three or four lines at one point.
    """
    choice = rng.integers(3)
    if choice == 0:  # a tick: a short fall to the right, a long rise to the right
        down = np.deg2rad(rng.uniform(30, 70))
        up = np.deg2rad(rng.uniform(40, 75))
        first = rng.uniform(0.3, 0.6)
        second = first * rng.uniform(1.6, 3.0)
        corner = np.array([first * np.cos(down), first * np.sin(down)])
        end = corner + np.array([second * np.cos(up), -second * np.sin(up)])
        path = np.array([[0.0, 0.0], corner, end])
        if rng.random() < 0.5:  # mirrored tick
            path[:, 0] *= -1
        return _draw(([(path, False)], []), rng)
    if choice == 1:  # zig-zag with 4-6 sharp turns
        teeth = int(rng.integers(4, 7))
        x = np.linspace(-1, 1, teeth + 1) + rng.normal(0, 0.05, teeth + 1)
        y = np.where(np.arange(teeth + 1) % 2 == 0, -1.0, 1.0) * rng.uniform(0.3, 0.8)
        return _draw(([(np.stack([x, y], 1), False)], []), rng)
    lines = int(rng.integers(3, 5))  # an asterisk
    start = rng.uniform(0, np.pi)
    strokes: list[Stroke] = []
    for i in range(lines):
        angle = start + i * np.pi / lines + rng.normal(0, 0.08)
        half = rng.uniform(0.8, 1.0) * np.array([np.cos(angle), np.sin(angle)])
        strokes.append((np.array([-half, half]), False))
    return _draw((strokes, []), rng)


def _train_specks(rng: Rng) -> np.ndarray:
    """Scattered blots and dots of several sizes: dust, spatter, a sprinkle of ink."""
    size = int(rng.integers(40, 97))
    canvas = np.zeros((size, size), np.float32)
    for _ in range(int(rng.integers(6, 60))):
        centre = (int(rng.integers(size)), int(rng.integers(size)))
        radius = max(1, round(float(rng.gamma(1.5, size / 60))))
        cv2.circle(canvas, centre, radius, float(rng.uniform(0.6, 1.0)), -1, cv2.LINE_AA)
    return cv2.GaussianBlur(canvas, (0, 0), 0.6)


def _train_scenes(rng: Rng) -> np.ndarray:
    """What a crop of a photograph becomes as ink, drawn without any photograph.

    A "dead leaves" picture: opaque discs and boxes of random grey, each hiding what lies
    under it, with sizes spread over scales as in the physical model of natural scenes (radius
    density ~ r**-3), so it has a photo's flat areas, occlusion edges at every angle and scale,
    and corners; under it sometimes a 1/f**beta field (shading, grain). Then the photo crops'
    normalisation: the majority tone is the "paper", what differs from it is ink.
    """
    size = int(rng.integers(48, 97))
    scene: np.ndarray = np.full((size, size), rng.uniform(0, 1), np.float32)
    low, high = 0.08 * size, size
    for _ in range(int(rng.integers(10, 80))):
        # Inverse CDF of the r**-3 density between low and high.
        radius = (low**-2 - rng.uniform() * (low**-2 - high**-2)) ** -0.5
        centre = (int(rng.integers(size)), int(rng.integers(size)))
        grey = float(rng.uniform(0, 1))
        if rng.random() < 0.5:
            cv2.circle(scene, centre, max(1, round(radius)), grey, -1, cv2.LINE_AA)
        else:
            axes = (max(1, round(radius)), max(1, round(radius * rng.uniform(0.2, 1.0))))
            box = cv2.boxPoints((centre, (2 * axes[0], 2 * axes[1]), float(rng.uniform(0, 180))))
            cv2.fillConvexPoly(scene, np.rint(box).astype(np.int32), grey, cv2.LINE_AA)
    if rng.random() < 0.6:
        freq = np.hypot(*np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size)))
        freq[0, 0] = 1.0
        spectrum = freq ** -rng.uniform(1.0, 2.0) * np.exp(2j * np.pi * rng.random((size, size)))
        field = np.fft.ifft2(spectrum).real.astype(np.float32)
        field = (field - field.mean()) / max(float(field.std()), 1e-6)
        scene = scene + float(rng.uniform(0.05, 0.3)) * field
    scene = cv2.GaussianBlur(scene, (0, 0), float(rng.uniform(0.5, 1.5)))
    if np.median(scene) > 0.5 * (float(scene.min()) + float(scene.max())):
        scene = -scene
    return _tone_to_ink(scene, rng.uniform(0.3, 0.6))


# ---------------------------------------------------------------------------- held-out kinds


@functools.cache
def _ttf_paths() -> tuple[str, ...]:
    """System TrueType fonts, if any; none is fine, Pillow's bundled font is always there."""
    found = sorted(glob.glob("/usr/share/fonts/truetype/**/*.ttf", recursive=True))
    # Symbol and maths fonts have no ordinary Latin letters worth the name.
    return tuple(p for p in found if not any(w in p.lower() for w in ("math", "symbol", "emoji")))


@functools.cache
def _font(path: str | None, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    if path is None:
        return ImageFont.load_default(size=size)
    return ImageFont.truetype(path, size)


@functools.cache
def _font_stroke(path: str | None, size: int) -> float:
    """A font's own stroke width in px, from the distance transform of a sample word.

    In a band of width w, distances to the edge run evenly from 0 to w/2, so w ~ 4 * mean (on
    a pixel grid that reads a pixel or two high, which errs towards thinner strokes; the
    result still matches MNIST's stroke widths). Knowing it lets Pillow's stroke_width top up
    each font to the pen width wanted.
    """
    font = _font(path, size)
    image = Image.new("L", (size * 6, size * 2), 0)
    ImageDraw.Draw(image).text((size // 2, size // 4), "nmhkx", font=font, fill=255)
    mask = (np.asarray(image) > 127).astype(np.uint8)
    if not mask.any():
        return 1.0
    distance = cv2.distanceTransform(mask, cv2.DIST_L2, 3)
    return float(4 * distance[mask > 0].mean())


def _pillow_text(rng: Rng, words: bool) -> np.ndarray:
    """Letters or short words in TrueType fonts (Pillow's bundled Aileron, system fonts)."""
    text = _text_pick(rng, words)
    fonts: list[str | None] = [None, *_ttf_paths()]
    path = fonts[int(rng.integers(len(fonts)))]
    size = int(rng.choice([40, 56]))
    font = _font(path, size)
    left, top, right, bottom = font.getbbox(text)
    extent = max(right - left, bottom - top, 1)
    pen = _pen(rng, 1.5, 3.5)
    wanted = pen * extent / (MNIST_BOX - pen)
    if words:  # as for the Hershey words: small letters would fill in under a wide pen
        wanted = min(wanted, (bottom - top) * rng.uniform(0.1, 0.18))
    stroke = max(0, round((wanted - _font_stroke(path, size)) / 2))
    left, top, right, bottom = font.getbbox(text, stroke_width=stroke)
    pad = 4
    size_px = (int(np.ceil(right - left)) + 2 * pad, int(np.ceil(bottom - top)) + 2 * pad)
    image = Image.new("L", size_px, 0)
    ImageDraw.Draw(image).text(
        (pad - left, pad - top), text, font=font, fill=255, stroke_width=stroke, stroke_fill=255
    )
    ink = np.asarray(image, np.float32) / 255.0
    return _warp(ink, _affine(rng, rotate=20, shear=0.3, squash=0.2))


def _held_out_letters(rng: Rng) -> np.ndarray:
    return _pillow_text(rng, words=False)


def _held_out_words(rng: Rng) -> np.ndarray:
    return _pillow_text(rng, words=True)


def _star(rng: Rng) -> Figure:
    points = int(rng.integers(5, 9))
    inner = rng.uniform(0.38, 0.6)
    t = np.arange(2 * points) * np.pi / points - np.pi / 2
    r = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
    pts = np.stack([r * np.cos(t), r * np.sin(t)], axis=1)
    return ([], [pts]) if rng.random() < 0.5 else ([(pts, True)], [])


def _heart(rng: Rng) -> Figure:
    t = np.linspace(0, 2 * np.pi, 60, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    pts = np.stack([x, y], axis=1)
    return ([], [pts]) if rng.random() < 0.5 else ([(pts, True)], [])


def _arrow(rng: Rng) -> Figure:
    """Pointing left or right (an upright arrow is a 1 with a flag), with a head big enough
    to show at 28 px: a thin arrow framed to 20 px wide is otherwise just a line."""
    head = rng.uniform(0.5, 0.8)
    spread = rng.uniform(0.4, 0.65)
    back = -rng.uniform(0.3, 1.0)
    sign = 1.0 if rng.random() < 0.5 else -1.0
    flip = np.array([sign, 1.0])
    shaft = np.array([[back, 0.0], [1.0, 0.0]]) * flip
    tip = np.array([[1 - head, -spread], [1.0, 0.0], [1 - head, spread]]) * flip
    strokes: list[Stroke] = [(shaft, False)]
    if rng.random() < 0.5:
        return (strokes, [tip])
    strokes.append((tip, False))
    if rng.random() < 0.4:  # a fletched tail
        tail = np.array([[back + head / 2, -spread], [back, 0.0], [back + head / 2, spread]])
        strokes.append((tail * flip, False))
    return (strokes, [])


def _smiley(rng: Rng) -> Figure:
    face = _circle(48)
    eye_y = -rng.uniform(0.25, 0.4)
    eye_x = rng.uniform(0.25, 0.4)
    eyes: list[Stroke] = [(np.array([[-eye_x, eye_y]]), False), (np.array([[eye_x, eye_y]]), False)]
    t = np.linspace(0.2 * np.pi, 0.8 * np.pi, 16)
    mouth_r = rng.uniform(0.4, 0.6)
    mouth = np.stack([mouth_r * np.cos(t), mouth_r * np.sin(t) - rng.uniform(0, 0.15)], axis=1)
    if rng.random() < 0.3:  # a frown
        mouth[:, 1] = 0.9 - mouth[:, 1]
    return ([(face, True), *eyes, (mouth, False)], [])


def _check(rng: Rng) -> Figure:
    """A tick: a short arm down to the vertex, a long one up to the right (y grows down)."""
    short = rng.uniform(0.45, 0.65)
    # The long arm rises at ~40 degrees: steeper, and a turned tick reads as a J.
    pts = np.array([[-short, -short * rng.uniform(0.6, 1.2)], [0.0, 0.0], [1.3, -1.1]])
    return ([(pts, False)], [])


def _diamond(rng: Rng) -> Figure:
    h = rng.uniform(1.0, 1.5)
    pts = np.array([[0.0, -h], [1.0, 0.0], [0.0, h], [-1.0, 0.0]])
    strokes: list[Stroke] = [(pts, True)]
    if rng.random() < 0.5:
        strokes += [(pts[[0, 2]], False), (pts[[1, 3]], False)]
    else:
        strokes.append((pts * rng.uniform(0.35, 0.6), True))
    return (strokes, [])


def _grid(rng: Rng) -> Figure:
    lines = int(rng.integers(2, 5))
    if rng.random() < 0.5:  # a "#": inner lines only
        ticks = np.linspace(-1, 1, lines + 2)[1:-1]
    else:  # boxed: the border plus at least one line inside, or it is a square (an 0)
        ticks = np.linspace(-1, 1, lines + 1)
    strokes: list[Stroke] = []
    for v in ticks:
        strokes.append((np.array([[v, -1.0], [v, 1.0]]), False))
        strokes.append((np.array([[-1.0, v], [1.0, v]]), False))
    return (strokes, [])


def _held_out_shapes(rng: Rng) -> np.ndarray:
    """Stars, hearts, arrows, smileys, check marks, diamonds with inner lines, grids."""
    makers = (_star, _heart, _arrow, _smiley, _check, _diamond, _grid)
    figure = makers[int(rng.integers(len(makers)))](rng)
    return _draw(figure, rng)


def _held_out_doodles(rng: Rng) -> np.ndarray:
    """Spirals, zig-zags, chains of cursive loops, scattered hatching marks."""
    choice = rng.integers(4)
    if choice == 0:  # spiral, 2+ turns so it cannot pass for a 6, 9 or 0; thin, or it fills in
        turns = rng.uniform(2.0, 3.0)
        t = np.linspace(0, 2 * np.pi * turns, int(40 * turns))
        r = 0.15 + t / t[-1]
        path = np.stack([r * np.cos(t), r * np.sin(t)], axis=1)
        return _draw(([(path, False)], []), rng, pen=_pen(rng, 1.2, 1.8))
    if choice == 1:  # zig-zag, 4+ teeth (two would be a Z, that is a 2)
        teeth = int(rng.integers(4, 8))
        half = rng.uniform(0.18, 0.3)  # each tooth about half as wide as it is tall
        x = np.arange(2 * teeth + 1) * half
        y = (np.arange(2 * teeth + 1) % 2) * rng.uniform(0.8, 1.2, 2 * teeth + 1)
        pen = _pen(rng, 1.2, 2.0)  # teeth close up under a wide pen
        return _draw(([(np.stack([x, y], axis=1), False)], []), rng, pen=pen)
    if choice == 2:  # loops of loops: cursive "eeee" (a prolate cycloid)
        loops = int(rng.integers(2, 5))
        t = np.linspace(0, 2 * np.pi * loops, 24 * loops)
        advance = rng.uniform(0.25, 0.45)
        tall = rng.uniform(1.3, 1.8)  # loops taller than wide, like a written e
        path = np.stack([advance * t - np.sin(t), -tall * np.cos(t)], axis=1)
        return _draw(([(path, False)], []), rng, pen=_pen(rng, 1.3, 2.2))
    marks = int(rng.integers(6, 16))  # hatching: short strokes, mostly parallel
    angle = rng.uniform(0, np.pi)
    strokes: list[Stroke] = []
    for _ in range(marks):
        a = angle + rng.normal(0, 0.25)
        reach = rng.uniform(0.15, 0.35) * np.array([np.cos(a), np.sin(a)])
        centre = rng.uniform(-1, 1, 2)
        strokes.append((np.array([centre - reach, centre + reach]), False))
    return _draw((strokes, []), rng, pen=_pen(rng, 1.5, 2.5), transform=False)


@functools.cache
def _skimage_data_dir() -> Path | None:
    """scikit-image's data folder, found without importing scikit-image (seconds, scipy)."""
    try:
        spec = importlib.util.find_spec("skimage")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    return folder if folder.is_dir() else None


@functools.cache
def _photo_paths() -> tuple[Path, ...]:
    folder = _skimage_data_dir()
    if folder is None:
        return ()
    return tuple(folder / name for name in PHOTO_FILES if (folder / name).is_file())


@functools.cache
def _photo(path: Path) -> np.ndarray:
    """A photograph as float32 grey in [0,1], at most 512 px a side (as a phone upload is
    shrunk before framing: crops then hold objects, not just pixels)."""
    with Image.open(path) as image:
        grey = image.convert("L")
        grey.thumbnail((512, 512), Image.Resampling.LANCZOS)
        return np.asarray(grey, np.float32) / 255.0


def _held_out_photos(rng: Rng) -> np.ndarray:
    """A crop of a real photograph turned into ink the way an upload's normalisation would:
    the majority tone (the "paper") goes to black, what differs from it to white."""
    paths = _photo_paths()
    for _ in range(10):  # a crop of clear sky has nothing to show: try another
        ink = _photo_crop(_photo(paths[int(rng.integers(len(paths)))]), rng)
        if (ink > 0.5).mean() > 0.02:
            break
    return ink


def _photo_crop(photo: np.ndarray, rng: Rng) -> np.ndarray:
    h, w = photo.shape
    side = int(rng.integers(48, min(h, w, 200) + 1))
    top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    crop = photo[top : top + side, left : left + side]
    if side > 96:
        crop = cv2.resize(crop, (96, 96), interpolation=cv2.INTER_AREA)
    if np.median(crop) > 0.5:
        crop = 1.0 - crop
    return _tone_to_ink(crop, rng.uniform(0.3, 0.6))


def _tone_to_ink(tone: np.ndarray, paper_quantile: float) -> np.ndarray:
    """Ink in [0,1] from a picture whose majority tone is dark: the ``paper_quantile`` of its
    tones is the paper (0), its 99.5% quantile full ink (1), as a photo crop is normalised."""
    low = float(np.quantile(tone, paper_quantile))
    high = float(np.quantile(tone, 0.995))
    return np.clip((tone - low) / max(high - low, 1e-3), 0, 1).astype(np.float32)


def _held_out_noise(rng: Rng) -> np.ndarray:
    """Salt-and-pepper specks, or coarse low-frequency noise upsampled from a few cells:
    neither is in training, whose noise is fine-grained gaussian or uniform."""
    size = int(rng.integers(40, 97))
    if rng.random() < 0.5:
        density = rng.uniform(0.01, 0.08)
        specks: np.ndarray = (rng.random((size, size)) < density).astype(np.float32)
        if rng.random() < 0.5:
            specks = cv2.dilate(specks, np.ones((2, 2), np.uint8))
        specks[0, 0] = specks[-1, -1] = 1.0  # spans the canvas, never empty
        return specks
    cells = int(rng.integers(3, 9))
    coarse = rng.random((cells, cells)).astype(np.float32)
    method = cv2.INTER_NEAREST if rng.random() < 0.5 else cv2.INTER_CUBIC
    return np.clip(cv2.resize(coarse, (size, size), interpolation=method), 0, 1)


_TRAIN: dict[str, Callable[[Rng], np.ndarray]] = {
    "letters": _train_letters,
    "words": _train_words,
    "shapes": _train_shapes,
    "scribbles": _train_scribbles,
    "textures": _train_textures,
    "noise": _train_noise,
    "loops": _train_loops,
    "strokes": _train_strokes,
    "specks": _train_specks,
    "scenes": _train_scenes,
}
_HELD_OUT: dict[str, Callable[[Rng], np.ndarray]] = {
    "letters": _held_out_letters,
    "words": _held_out_words,
    "shapes": _held_out_shapes,
    "doodles": _held_out_doodles,
    "photos": _held_out_photos,
    "noise": _held_out_noise,
}
