"""Non-digit negatives: every kind drawn, framed like an upload, deterministic; Fashion-MNIST
loaded only when verified. The Fashion-MNIST chain runs on small fake files whose hash is made
the expected one; the real 60k copy is checked where Debian's package is installed."""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from training import negatives
from training.data import DatasetError
from training.negatives import (
    ALPHABET,
    HELD_OUT_KINDS,
    TRAIN_KINDS,
    FashionMnistUnavailableError,
    Negatives,
    available_held_out_kinds,
    load_fashion_mnist,
    load_negatives,
    mnist_frame,
    render_ink,
    split_evenly,
    synthetic_negatives,
    to_page,
)

ALL_KINDS = [(k, False) for k in TRAIN_KINDS] + [(k, True) for k in available_held_out_kinds()]
KIND_IDS = [f"{'held_out' if h else 'train'}-{k}" for k, h in ALL_KINDS]


def box_and_centre(frame: np.ndarray) -> tuple[int, float]:
    """Longer side of the box of non-zero pixels, and the centre of mass's distance from (14,14)."""
    rows = np.flatnonzero(frame.any(axis=1))
    cols = np.flatnonzero(frame.any(axis=0))
    side = max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1)
    m = cv2.moments(frame.astype(np.float32))
    return int(side), float(np.hypot(m["m01"] / m["m00"] - 14, m["m10"] / m["m00"] - 14))


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape
    )
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


# ---------------------------------------------------------------------------- constants


def test_kind_tables_match_the_public_tuples() -> None:
    assert tuple(negatives._TRAIN) == TRAIN_KINDS
    assert tuple(negatives._HELD_OUT) == HELD_OUT_KINDS
    assert set(TRAIN_KINDS) & set(HELD_OUT_KINDS) == {"letters", "words", "shapes", "noise"}


def test_alphabet_has_no_digit_lookalikes() -> None:
    assert not set(ALPHABET) & set("OoQDIlijLTZzSsBbGgqyJ")
    assert set(ALPHABET) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
    assert any(c.isupper() for c in ALPHABET)
    assert any(c.islower() for c in ALPHABET)


@pytest.mark.parametrize("kind", ["letters", "words", "shapes", "noise"])
def test_shared_kind_names_use_different_generators(kind: str) -> None:
    assert negatives._TRAIN[kind] is not negatives._HELD_OUT[kind]
    train = render_ink(kind, 3, 0)
    held = render_ink(kind, 3, 0, held_out=True)
    assert not any(
        a.shape == b.shape and np.array_equal(a, b) for a, b in zip(train, held, strict=True)
    )


def test_split_evenly() -> None:
    assert split_evenly(14, ("a", "b", "c")) == [("a", 5), ("b", 5), ("c", 4)]
    assert split_evenly(2, ("a", "b", "c")) == [("a", 1), ("b", 1), ("c", 0)]
    with pytest.raises(ValueError, match="no kinds"):
        split_evenly(3, ())


# ---------------------------------------------------------------------------- every kind


@pytest.mark.parametrize(("kind", "held_out"), ALL_KINDS, ids=KIND_IDS)
def test_ink_is_deterministic_and_seed_dependent(kind: str, held_out: bool) -> None:
    first = render_ink(kind, 4, 11, held_out=held_out)
    again = render_ink(kind, 4, 11, held_out=held_out)
    other = render_ink(kind, 4, 12, held_out=held_out)
    assert len(first) == 4
    for a, b in zip(first, again, strict=True):
        assert a.dtype == np.float32
        np.testing.assert_array_equal(a, b)
    assert not all(
        a.shape == c.shape and np.array_equal(a, c) for a, c in zip(first, other, strict=True)
    )
    # More canvases with the same seed extend the list instead of changing it.
    for a, b in zip(first, render_ink(kind, 6, 11, held_out=held_out)[:4], strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(("kind", "held_out"), ALL_KINDS, ids=KIND_IDS)
def test_every_kind_draws_ink_and_frames_like_mnist(kind: str, held_out: bool) -> None:
    inks = render_ink(kind, 30, 3, held_out=held_out)
    for ink in inks:
        assert ink.ndim == 2
        assert min(ink.shape) >= 16
        assert max(ink.shape) <= 400
        assert ink.min() >= 0.0
        assert ink.max() <= 1.0
        assert ink.max() > 0.25, "a canvas without ink"  # faint noise still frames to 255
    frames = [mnist_frame(ink) for ink in inks]
    placed = []
    for frame in frames:
        assert frame.shape == (28, 28)
        assert frame.dtype == np.uint8
        assert frame.max() == 255
        side, off = box_and_centre(frame)
        assert 19 <= side <= 21
        placed.append(off <= 1.0)
    # A photo crop can have all its ink at one edge; then the shift is clipped to keep it in.
    assert np.mean(placed) >= (0.8 if kind == "photos" else 1.0)


# ---------------------------------------------------------------------------- mnist_frame


def test_frame_of_empty_canvas_is_zeros() -> None:
    frame = mnist_frame(np.zeros((40, 50), np.float32))
    assert frame.dtype == np.uint8
    assert not frame.any()


def test_frame_scales_longer_side_to_20_and_centres_mass() -> None:
    ink = np.zeros((120, 90), np.float32)
    ink[10:50, 5:15] = 0.6  # 40 tall, 10 wide, far from the centre
    frame = mnist_frame(ink)
    rows, cols = np.flatnonzero(frame.any(1)), np.flatnonzero(frame.any(0))
    assert (rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1) == (20, 5)
    assert frame.max() == 255
    assert box_and_centre(frame)[1] <= 0.5


def test_frame_box_ignores_faint_ink_and_upscales_small_ink() -> None:
    ink = np.zeros((60, 60), np.float32)
    ink[30:35, 30:35] = 1.0
    ink[0:5, 0:60] = 0.1  # below 0.2 of the peak: paper texture, not ink
    frame = mnist_frame(ink)
    side, off = box_and_centre(frame)
    assert side == 20
    assert off <= 0.71  # an even box puts the centre half a pixel off on each axis
    assert (frame > 0).sum() == 400  # the 5x5 square fills a 20x20 box, and nothing else shows


def test_frame_clips_shift_so_ink_stays_inside() -> None:
    ink = np.zeros((40, 40), np.float32)
    ink[0:40, 18:20] = 0.2  # a faint stem...
    ink[36:40, 0:40] = 1.0  # ...under a heavy base: the mass sits at the bottom of the box
    frame = mnist_frame(ink)
    rows = np.flatnonzero(frame.any(1))
    assert rows[0] == 0
    assert rows[-1] == 19  # moved up as far as the frame allows, not cut off
    assert box_and_centre(frame)[1] > 1


def test_frame_accepts_uint8_ink() -> None:
    ink = np.zeros((50, 50), np.uint8)
    cv2.line(ink, (10, 10), (40, 30), 255, 5)
    np.testing.assert_array_equal(mnist_frame(ink), mnist_frame(ink.astype(np.float32) / 255))


# ---------------------------------------------------------------------------- to_page


def test_page_is_dark_ink_on_light_paper() -> None:
    ink = render_ink("letters", 1, 5)[0]
    page = to_page(ink, 7)
    assert page.dtype == np.uint8
    margin_h, margin_w = page.shape[0] - ink.shape[0], page.shape[1] - ink.shape[1]
    assert margin_h == margin_w >= 16
    assert margin_h % 2 == 0
    m = margin_h // 2
    assert np.median(page[:m]) >= 190  # paper
    under_ink = page[m : m + ink.shape[0], m : m + ink.shape[1]][ink > 0.9]
    assert under_ink.size
    assert np.median(under_ink) <= 100  # ink
    np.testing.assert_array_equal(page, to_page(ink, 7))
    assert not np.array_equal(page, to_page(ink, 8))


# ---------------------------------------------------------------------------- synthetic_negatives


def test_synthetic_negatives_blocks_follow_kind_order() -> None:
    x = synthetic_negatives(15, 4)
    assert x.shape == (15, 28, 28)
    assert x.dtype == np.uint8
    assert (x.reshape(15, -1).max(axis=1) == 255).all()
    np.testing.assert_array_equal(x, synthetic_negatives(15, 4))
    assert not np.array_equal(x, synthetic_negatives(15, 5))
    start = 0
    for kind, count in split_evenly(15, TRAIN_KINDS):
        inks = render_ink(kind, count, 4)
        if kind in negatives.SERVED_KINDS:
            pages = range(4 * negatives.PAGE_SEEDS, 4 * negatives.PAGE_SEEDS + count)
            expected = [
                negatives.as_served(ink, page) for ink, page in zip(inks, pages, strict=True)
            ]
        else:
            expected = [mnist_frame(ink) for ink in inks]
        np.testing.assert_array_equal(x[start : start + count], np.stack(expected))
        start += count


def test_held_out_negatives_differ_from_training_ones() -> None:
    train = synthetic_negatives(12, 0)
    held = synthetic_negatives(12, 0, held_out=True)
    assert held.shape == (12, 28, 28)
    assert not (train == held).all(axis=(1, 2)).any()


def test_photos_need_scikit_image(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    monkeypatch.setattr(negatives, "_photo_paths", lambda: ())
    assert "photos" not in available_held_out_kinds()
    with pytest.raises(LookupError, match="scikit-image"):
        render_ink("photos", 1, 0, held_out=True)
    with caplog.at_level(logging.WARNING, logger="training.negatives"):
        x = synthetic_negatives(10, 0, held_out=True)
    assert x.shape == (10, 28, 28)
    assert "photos" in caplog.text


def test_scenes_stand_in_for_photos_without_any_photograph(monkeypatch: pytest.MonkeyPatch) -> None:
    """Training's photo-like kind must work on a machine without scikit-image, and be regions
    of tone (what a photo crop becomes) rather than pen strokes."""
    monkeypatch.setattr(negatives, "_photo_paths", lambda: ())
    scenes = synthetic_negatives(40, 0, kinds=["scenes"])
    letters = synthetic_negatives(40, 0, kinds=["letters"])
    assert scenes.shape == (40, 28, 28)

    def wide_ink(frames: np.ndarray) -> float:
        # Ink left after an opening wider than most pen strokes of the framed letters.
        opened = [cv2.morphologyEx(f, cv2.MORPH_OPEN, np.ones((6, 6), np.uint8)) for f in frames]
        return float(np.mean([(o > 32).mean() for o in opened]))

    assert wide_ink(scenes) > 1.5 * wide_ink(letters)  # 2.2 times as much when written


def test_scenes_reach_the_model_cut_out_as_the_service_cuts_them() -> None:
    ink = render_ink("scenes", 3, 0)
    frames = synthetic_negatives(3, 0, kinds=["scenes"])
    for i, (canvas, frame) in enumerate(zip(ink, frames, strict=True)):
        np.testing.assert_array_equal(frame, negatives.as_served(canvas, i))
    # The service picks one piece out of a scene, which framing the canvas whole does not.
    assert any(not np.array_equal(f, mnist_frame(c)) for f, c in zip(frames, ink, strict=True))


def test_no_negative_is_an_upright_bar_which_is_a_1(mnist_sample) -> None:
    digits, labels = mnist_sample.x_test, mnist_sample.y_test
    bars = np.array([negatives._upright_bar(d) for d in digits])
    assert bars[labels == 1].mean() > 0.9  # 0.98 of the sample's 1s when written
    assert not bars[labels == 0].any()
    served = synthetic_negatives(200, 0, kinds=["scenes"])
    assert not any(negatives._upright_bar(f) for f in served)


def test_unknown_kind_and_family() -> None:
    with pytest.raises(KeyError, match="doodles"):
        render_ink("doodles", 1, 0)  # a held-out kind only
    with pytest.raises(KeyError):
        render_ink("digits", 1, 0, held_out=True)


# ---------------------------------------------------------------------------- load_negatives


@pytest.fixture
def fake_fashion(monkeypatch: pytest.MonkeyPatch) -> np.ndarray:
    """A small stand-in for Fashion-MNIST whose hash and shape are made the expected ones, so the
    whole chain runs with the real verification code on data that takes no time to read."""
    rng = np.random.default_rng(0)
    images = np.zeros((50, 28, 28), np.uint8)
    for i, image in enumerate(images):
        w, h = 4 + i % 8, 6 + i % 8
        image[14 - h : 14 + h, 14 - w : 14 + w] = rng.integers(60, 256, (2 * h, 2 * w))
    images[:5] = 0
    images[:5, 2:26, 11:17] = 200  # "trousers": 6 wide, 24 tall, a thick 1 once framed
    monkeypatch.setattr(negatives, "FASHION_TRAIN_IMAGES_SHA256", negatives.array_sha256(images))
    monkeypatch.setattr(negatives, "FASHION_TRAIN_IMAGES_SHAPE", images.shape)
    return images


def write_idx_dir(directory: Path, images: np.ndarray) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images)))
    labels = np.zeros(len(images), np.uint8)
    (directory / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    return directory


@pytest.fixture
def no_system_sources(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MNIST_OFFLINE", "1")
    monkeypatch.setattr(negatives, "DEBIAN_FASHION_DIR", tmp_path / "no-debian")


def test_programmatic_kinds_are_shared_out_by_weight(tmp_path: Path) -> None:
    got = load_negatives(1100, 1, cache_dir=tmp_path, use_fashion=False)
    counts = {s["kind"]: s["count"] for s in got.sources}
    total = sum(negatives.TRAIN_KIND_WEIGHTS.values())
    for kind, weight in negatives.TRAIN_KIND_WEIGHTS.items():
        assert counts[kind] == pytest.approx(1100 * weight / total, abs=1)
    assert counts["letters"] > 2 * counts["scribbles"]


def test_programmatic_only(tmp_path: Path) -> None:
    got = load_negatives(30, 1, cache_dir=tmp_path, use_fashion=False)
    assert isinstance(got, Negatives)
    assert got.x.shape == (30, 28, 28)
    assert got.x.dtype == np.uint8
    assert set(got.kinds) == set(TRAIN_KINDS)
    assert [s["name"] for s in got.sources] == [f"synthetic-{k}" for k in TRAIN_KINDS]
    counts = [s["count"] for s in got.sources]
    assert all(isinstance(c, int) for c in counts)
    assert sum(c for c in counts if isinstance(c, int)) == 30
    for source in got.sources:
        assert (got.kinds == source["kind"]).sum() == source["count"]
        assert isinstance(source["sha256"], str)
        assert len(source["sha256"]) == 64
    again = load_negatives(30, 1, cache_dir=tmp_path, use_fashion=False)
    np.testing.assert_array_equal(got.x, again.x)
    np.testing.assert_array_equal(got.kinds, again.kinds)
    assert got.sources == again.sources
    assert not np.array_equal(got.x, load_negatives(30, 2, use_fashion=False).x)
    assert not list(tmp_path.iterdir()), "nothing is cached without Fashion-MNIST"


def test_wrong_idx_content_is_an_error(tmp_path: Path) -> None:
    wrong = write_idx_dir(tmp_path / "wrong", np.zeros((10, 28, 28), np.uint8))
    with pytest.raises(DatasetError, match=r"expected uint8\(60000, 28, 28\)"):
        load_negatives(10, 0, fashion_path=wrong, cache_dir=tmp_path)
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"not an idx file"))
    with pytest.raises(DatasetError, match="bad magic"):
        load_negatives(10, 0, fashion_path=garbage, cache_dir=tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no train-images"):
        load_negatives(10, 0, fashion_path=tmp_path / "empty", cache_dir=tmp_path)


def test_same_shape_wrong_pixels_is_an_error(tmp_path: Path, fake_fashion: np.ndarray) -> None:
    altered = fake_fashion.copy()
    altered[0, 0, 0] ^= 1
    with pytest.raises(DatasetError, match="sha256"):
        load_negatives(10, 0, fashion_path=write_idx_dir(tmp_path / "a", altered))
    np.savez(tmp_path / "f.npz", x_train=altered)
    with pytest.raises(DatasetError, match="sha256"):
        load_negatives(10, 0, fashion_path=tmp_path / "f.npz")


def test_fashion_from_path_is_framed_and_recorded(tmp_path: Path, fake_fashion: np.ndarray) -> None:
    got = load_negatives(40, 3, fashion_path=write_idx_dir(tmp_path / "f", fake_fashion))
    assert got.x.shape == (40, 28, 28)
    fashion_rows = got.x[got.kinds == "fashion-mnist"]
    assert len(fashion_rows) == 12  # 30% of 40
    framed = {mnist_frame(image / 255.0).tobytes() for image in fake_fashion[5:]}
    assert all(row.tobytes() in framed for row in fashion_rows), "trousers are never used"
    source = got.sources[0]
    assert source["name"] == "fashion-mnist"
    assert source["count"] == 12
    assert source["origin"] == str(tmp_path / "f")
    assert source["sha256"] == negatives.FASHION_TRAIN_IMAGES_SHA256
    assert source["excluded_tall_thin"] == 5
    assert sum(c for s in got.sources[1:] if isinstance(c := s["count"], int)) == 28
    # 28 programmatic rows shared by weight: every kind with a weight of at least 1 is there.
    heavy = {k for k, w in negatives.TRAIN_KIND_WEIGHTS.items() if w >= 1}
    assert {"fashion-mnist", *heavy} <= set(got.kinds)
    # An .npz with x_train works the same and gives the same negatives.
    np.savez(tmp_path / "f.npz", x_train=fake_fashion)
    from_npz = load_negatives(40, 3, fashion_path=tmp_path / "f.npz")
    np.testing.assert_array_equal(from_npz.x, got.x)


@pytest.mark.usefixtures("no_system_sources")
def test_no_fashion_source_warns_and_continues(tmp_path: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="training.negatives"):
        got = load_negatives(30, 0, cache_dir=tmp_path)
    assert "Fashion-MNIST unavailable" in caplog.text
    assert got.sources[0]["name"] == "fashion-mnist"
    assert got.sources[0]["count"] == 0
    assert "MNIST_OFFLINE" in str(got.sources[0]["unavailable"])
    assert set(got.kinds) == set(TRAIN_KINDS)
    assert len(got.x) == 30


@pytest.mark.usefixtures("no_system_sources")
def test_debian_copy_is_cached_then_cache_is_used(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake_fashion: np.ndarray
) -> None:
    debian = write_idx_dir(tmp_path / "debian", fake_fashion)
    monkeypatch.setattr(negatives, "DEBIAN_FASHION_DIR", debian)
    cache = tmp_path / "cache"
    images, origin = load_fashion_mnist(cache_dir=cache)
    assert origin == str(debian)
    np.testing.assert_array_equal(images, fake_fashion)
    assert (cache / "fashion-mnist.npz").is_file()
    assert not [p for p in cache.iterdir() if p.name.startswith(".")], "temp file left behind"

    def must_not_download() -> np.ndarray:
        raise AssertionError("the cache should have been used")

    monkeypatch.delenv("MNIST_OFFLINE")
    images, origin = load_fashion_mnist(cache_dir=cache, keras_loader=must_not_download)
    assert origin == f"cache:{cache / 'fashion-mnist.npz'}"
    np.testing.assert_array_equal(images, fake_fashion)
    # $MNIST_CACHE_DIR is where the cache lives when no cache_dir is given.
    monkeypatch.setenv("MNIST_CACHE_DIR", str(cache))
    assert load_fashion_mnist(keras_loader=must_not_download)[1].startswith("cache:")


@pytest.mark.usefixtures("fake_fashion")
def test_corrupt_cache_is_an_error(tmp_path: Path) -> None:
    np.savez(tmp_path / "fashion-mnist.npz", x_train=np.zeros((50, 28, 28), np.uint8))
    with pytest.raises(DatasetError, match="Delete the cache file"):
        load_negatives(10, 0, cache_dir=tmp_path)
    (tmp_path / "fashion-mnist.npz").write_bytes(b"truncated")
    with pytest.raises(DatasetError, match="Delete the cache file"):
        load_negatives(10, 0, cache_dir=tmp_path)


@pytest.mark.usefixtures("no_system_sources")
def test_keras_download_is_tried_unless_offline(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake_fashion: np.ndarray
) -> None:
    calls: list[int] = []

    def keras_ok() -> np.ndarray:
        calls.append(1)
        return fake_fashion.copy()

    with pytest.raises(FashionMnistUnavailableError, match="skipped"):
        load_fashion_mnist(cache_dir=tmp_path / "a", keras_loader=keras_ok)
    assert not calls
    monkeypatch.delenv("MNIST_OFFLINE")
    _, origin = load_fashion_mnist(cache_dir=tmp_path / "b", keras_loader=keras_ok)
    assert origin == "keras download"
    assert calls == [1]
    assert (tmp_path / "b" / "fashion-mnist.npz").is_file()

    def keras_offline() -> np.ndarray:
        raise FashionMnistUnavailableError("keras download: no network")

    with pytest.raises(FashionMnistUnavailableError, match="no network"):
        load_fashion_mnist(cache_dir=tmp_path / "c", keras_loader=keras_offline)


@pytest.mark.skipif(
    not (negatives.DEBIAN_FASHION_DIR / "train-images-idx3-ubyte.gz").is_file(),
    reason="Debian's dataset-fashion-mnist is not installed",
)
def test_real_debian_fashion_mnist_loads_and_verifies(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MNIST_OFFLINE", "1")
    images, origin = load_fashion_mnist(cache_dir=tmp_path)
    assert origin == str(negatives.DEBIAN_FASHION_DIR)
    assert images.shape == (60000, 28, 28)
    assert images.dtype == np.uint8
    assert negatives.array_sha256(images) == negatives.FASHION_TRAIN_IMAGES_SHA256
    got = load_negatives(50, 0, cache_dir=tmp_path)  # now from the cache it just wrote
    assert got.sources[0]["origin"] == f"cache:{tmp_path / 'fashion-mnist.npz'}"
    assert got.sources[0]["count"] == 15
    assert got.sources[0]["excluded_tall_thin"] == 7782  # mostly trousers and dresses
