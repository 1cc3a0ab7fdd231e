"""contract/: the model directory's layout, version rules and signature, written once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from contract import (
    METADATA_FILE,
    SAVED_MODEL_FILE,
    TFLITE_FILE,
    ModelMetadata,
    NoModelFound,
    check_written,
    is_version_name,
    latest_version,
    next_version,
    to_model_input,
    undeclared_keys,
    versions,
)
from tests.servers import REPO


def _version(root: Path, name: str, marker: str = SAVED_MODEL_FILE) -> Path:
    path = root / name
    path.mkdir(parents=True)
    (path / marker).write_bytes(b"")
    return path


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("contract", ("app", "training", "tensorflow", "keras")),
        ("app.main", ("training", "tensorflow", "keras")),
        ("training.pipeline", ("app",)),
    ],
)
def test_the_packages_import_the_contract_and_not_each_other(
    package: str, forbidden: tuple[str, ...]
) -> None:
    probe = (
        f"import sys, {package}\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {forbidden!r})\n"
        "print(bad, 'contract' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[]", "True"]


@pytest.mark.parametrize(
    ("name", "published"),
    [
        ("1", True),
        ("12", True),
        ("0", False),
        ("01", False),
        ("-1", False),
        ("1a", False),
        (".staging-abc", False),
        ("²", False),
    ],
)
def test_only_positive_integers_without_leading_zeros_are_versions(
    name: str, published: bool
) -> None:
    assert is_version_name(name) is published


def test_the_newest_version_is_the_highest_number_not_the_last_name(tmp_path: Path) -> None:
    for name in ("2", "10", "9"):
        _version(tmp_path, name)
    (tmp_path / ".staging-x").mkdir()
    (tmp_path / "011").mkdir()
    (tmp_path / "11").write_text("a file, not a version")
    assert [p.name for p in versions(tmp_path)] == ["2", "9", "10"]
    assert latest_version(tmp_path) == tmp_path / "10"
    assert next_version(tmp_path) == 11


def test_a_version_directory_is_its_own_latest_version(tmp_path: Path) -> None:
    version = _version(tmp_path, "3", marker=TFLITE_FILE)
    assert latest_version(version, marker=TFLITE_FILE) == version
    # Without the marker it is a root with no versions below it.
    with pytest.raises(NoModelFound, match=r"expected version directories like .*3/1/saved_model"):
        latest_version(version)


def test_an_empty_or_missing_root_has_no_model_and_starts_at_one(tmp_path: Path) -> None:
    assert next_version(tmp_path / "absent") == 1
    assert versions(tmp_path / "absent") == []
    with pytest.raises(NoModelFound, match="does not exist"):
        latest_version(tmp_path / "absent")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NoModelFound, match="is not a directory"):
        latest_version(tmp_path / "file")
    with pytest.raises(NoModelFound, match="expected version directories"):
        latest_version(tmp_path)


def test_model_input_is_float32_in_the_unit_interval_with_a_channel() -> None:
    pixels = np.array([[[0, 255], [51, 102]]], dtype=np.uint8).repeat(14, 1).repeat(14, 2)
    x = to_model_input(pixels)
    assert (x.shape, x.dtype) == ((1, 28, 28, 1), np.float32)
    assert x.min() == 0.0
    assert x.max() == 1.0
    assert x[0, 0, 14, 0] == 1.0
    assert x[0, 14, 0, 0] == pytest.approx(0.2)


def test_training_writes_only_what_the_metadata_schema_declares(model_dir: Path) -> None:
    """The fixture model is exported by the real pipeline: its metadata.json is a user's."""
    import json

    metadata = json.loads((model_dir / METADATA_FILE).read_text())
    assert undeclared_keys(metadata) == []
    read = check_written(metadata)
    assert read.tflite is not None
    assert read.tflite.check is not None
    assert read.tflite.sha256 == metadata["tflite"]["sha256"]
    assert read.test_accuracy == metadata["test_accuracy"]


def test_the_metadata_schema_refuses_what_readers_would_not_understand() -> None:
    with pytest.raises(ValueError, match=r"not in contract.metadata.ModelMetadata: \['colour'\]"):
        check_written({"version": "1", "colour": "blue"})
    with pytest.raises(ValueError, match=r"tflite\.sha256"):
        check_written({"version": "1", "tflite": {"file": TFLITE_FILE}})
    with pytest.raises(ValueError, match="test_accuracy"):
        check_written({"version": "1", "test_accuracy": "very good"})
    # Reading is lenient about keys a newer writer added: an older service still serves it.
    assert ModelMetadata.model_validate({"version": "2", "colour": "blue"}).version == "2"
