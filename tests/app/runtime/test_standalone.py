"""INFERENCE_BACKEND=litert: model.tflite alone, verified against what training recorded.

The fixture model is trained and exported by the real pipeline, so its metadata.json and
tflite_check.npz are the ones a user's `make train` writes.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from app.runtime.loading import LoadedModel, ModelLoadError, load_model
from contract import CHECK_FILE
from service_harness.process import service_env
from tests.app.runtime.tflite_models import uniform_tflite
from tests.servers import REPO, uvicorn_process, wait_until_ready

# A directory that shadows TensorFlow and Keras with packages that refuse to import: a process
# with it first on PYTHONPATH proves it never imports them.
BLOCKER = "raise ImportError('blocked: this process must not import TensorFlow or Keras')\n"


@pytest.fixture(scope="module")
def saved_model(model_dir: Path) -> LoadedModel:
    return load_model(model_dir, backend="savedmodel")


@pytest.fixture
def version(tmp_path: Path, model_dir: Path) -> Path:
    """A copy of the fixture model's version directory, free to damage."""
    return shutil.copytree(model_dir, tmp_path / "1")


@pytest.fixture(scope="module")
def no_tensorflow(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("no-tensorflow")
    for name in ("tensorflow", "keras"):
        (root / name).mkdir()
        (root / name / "__init__.py").write_text(BLOCKER)
    return root


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _edit_metadata(version: Path, edit) -> None:
    path = version / "metadata.json"
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))


def test_litert_serves_the_exported_file_like_the_saved_model(
    model_dir: Path, saved_model: LoadedModel, digits: np.ndarray
) -> None:
    lite = load_model(model_dir, backend="litert")
    assert lite.backend == "litert"
    assert lite.signature is None
    assert lite.version == saved_model.version
    got, expected = lite.predict(digits), saved_model.predict(digits)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert (got.argmax(axis=1) == expected.argmax(axis=1)).all()


def test_training_records_a_check_batch_with_the_saved_models_answers(
    model_dir: Path, saved_model: LoadedModel
) -> None:
    record = json.loads((model_dir / "metadata.json").read_text())["tflite"]
    assert record["check"]["sha256"] == _sha256(model_dir / CHECK_FILE)
    with np.load(model_dir / CHECK_FILE) as check:
        images, probabilities = check["image"], check["probabilities"]
    assert len(images) == record["check"]["images"] >= 10  # one digit of each class, and noise
    np.testing.assert_allclose(saved_model.predict(images), probabilities, atol=1e-6)
    assert record["runtime"].startswith("ai-edge-litert ")


def test_a_version_with_only_the_tflite_files_is_served(tmp_path: Path, model_dir: Path) -> None:
    """What an operator copies to a lean replica: model.tflite, its check and metadata."""
    lean = tmp_path / "mnist" / "3"
    lean.mkdir(parents=True)
    for name in ("model.tflite", CHECK_FILE, "metadata.json"):
        shutil.copy(model_dir / name, lean / name)
    loaded = load_model(lean.parent, backend="litert")
    assert (loaded.backend, loaded.version, loaded.path) == ("litert", "3", lean)


def test_a_changed_tflite_file_is_refused(version: Path) -> None:
    content = bytearray((version / "model.tflite").read_bytes())
    content[len(content) // 2] ^= 0xFF
    (version / "model.tflite").write_bytes(bytes(content))
    with pytest.raises(ModelLoadError, match="is not the file training exported: its sha256"):
        load_model(version, backend="litert")


def test_another_model_with_a_matching_sha256_fails_the_check_batch(version: Path) -> None:
    """Metadata rewritten to match a different model: the recorded answers still tell."""
    (version / "model.tflite").write_bytes(uniform_tflite())
    digest = _sha256(version / "model.tflite")
    _edit_metadata(version, lambda meta: meta["tflite"].update(sha256=digest))
    with pytest.raises(ModelLoadError, match="answers the check batch differently"):
        load_model(version, backend="litert")


def test_a_changed_check_batch_is_refused(version: Path) -> None:
    with np.load(version / CHECK_FILE) as check:
        images, probabilities = check["image"], check["probabilities"]
    np.savez(version / CHECK_FILE, image=images, probabilities=probabilities[::-1])
    with pytest.raises(ModelLoadError, match="does not match the sha256"):
        load_model(version, backend="litert")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("no sha256", "does not match the metadata schema .*tflite.sha256"),
        ("no check record", "no check batch recorded at export"),
        ("no check file", "no check batch recorded at export"),
        ("no metadata", "records no sha256"),
        ("no tflite file", "model.tflite is missing"),
    ],
)
def test_what_cannot_be_verified_is_not_served(version: Path, damage: str, message: str) -> None:
    if damage == "no sha256":
        _edit_metadata(version, lambda meta: meta["tflite"].pop("sha256"))
    elif damage == "no check record":
        _edit_metadata(version, lambda meta: meta["tflite"].pop("check"))
    elif damage == "no check file":
        (version / CHECK_FILE).unlink()
    elif damage == "no metadata":
        (version / "metadata.json").unlink()
    else:
        (version / "model.tflite").unlink()
    with pytest.raises(ModelLoadError, match=message):
        load_model(version.parent, backend="litert")


def test_the_litert_server_never_imports_tensorflow(
    model_dir: Path, no_tensorflow: Path, mnist_sample, tmp_path: Path
) -> None:
    """The real service over HTTP with TensorFlow and Keras unimportable, as in the lean image."""
    settings = {"INFERENCE_BACKEND": "litert", "PYTHONPATH": str(no_tensorflow)}
    log = tmp_path / "server.log"
    with uvicorn_process(model_dir, log, settings) as server:
        wait_until_ready(server)
        url = server.url
        assert httpx.get(f"{url}/model").json()["backend"] == "litert"
        for image, label in zip(mnist_sample.x_test[:20], mnist_sample.y_test[:20], strict=True):
            png = io.BytesIO()
            Image.fromarray(image).save(png, format="PNG")
            files = {"file": ("digit.png", png.getvalue(), "image/png")}
            answer = httpx.post(f"{url}/predict", files=files).json()
            assert answer["best_guess"] == label
    assert "blocked" not in log.read_text()


def test_restoring_the_saved_model_without_tensorflow_says_what_to_set(
    model_dir: Path, no_tensorflow: Path
) -> None:
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from app.runtime.loading import ModelLoadError, load_model\n"
        "try:\n"
        f"    load_model(Path({str(model_dir)!r}), backend='tflite')\n"
        "except ModelLoadError as exc:\n"
        "    print(exc)\n"
        "    sys.exit(3)\n"
    )
    env = service_env(model_dir, {"PYTHONPATH": str(no_tensorflow)})
    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 3, completed.stderr
    assert "TensorFlow is not installed" in completed.stdout
    assert "INFERENCE_BACKEND=litert" in completed.stdout
