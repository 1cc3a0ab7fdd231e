"""app/settings.py: defaults, environment parsing, and the settings that shape the app."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from app.main import create_app
from app.settings import Settings, get_settings

README = Path(__file__).resolve().parents[2] / "README.md"
ENV_NAMES = (
    "MODEL_DIR",
    "MAX_UPLOAD_BYTES",
    "MAX_IMAGE_PIXELS",
    "MAX_BATCH_FILES",
    "BATCH_MAX_SIZE",
    "BATCH_MAX_WAIT_MS",
    "QUEUE_MAX",
    "INFERENCE_BACKEND",
    "INFERENCE_THREADS",
    "NOT_A_DIGIT_BELOW",
    "UNCERTAIN_BELOW",
    "LOG_LEVEL",
    "LOG_FORMAT",
    "ACCESS_LOG",
    "CORS_ORIGINS",
    "HOST",
    "PORT",
    "PROMETHEUS_MULTIPROC_DIR",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def readme_configuration() -> dict[str, str | None]:
    """The README's configuration table: each variable and its default as written there
    (None where the default is not a literal value: unset, empty, the model's own)."""
    text = README.read_text()
    section = text[text.index("## Configuration") :]
    section = section[: section.index("\n## ", 1)]
    table: dict[str, str | None] = {}
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        names_cell, default_cell = line.split("|")[1:3]
        names = re.findall(r"`([A-Z_]+)`", names_cell)
        defaults = re.findall(r"`([^`]*)`", default_cell)[: len(names)]
        table.update(zip(names, defaults + [None] * (len(names) - len(defaults)), strict=True))
    return table


def _as_written(value: object) -> str | None:
    if value is None or value == []:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, Path):
        return value.as_posix()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def test_the_readme_documents_every_setting_with_its_real_default(
    clean_env: pytest.MonkeyPatch,
) -> None:
    documented = readme_configuration()
    settings = Settings()
    for name in Settings.model_fields:
        assert name in documented, f"{name} is missing from the README's configuration table"
        assert documented[name] == _as_written(getattr(settings, name)), name
    assert settings.batch_max_wait_s == pytest.approx(settings.BATCH_MAX_WAIT_MS / 1000)


def test_environment_variables_are_read_and_normalised(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("MODEL_DIR", "/srv/models/mnist/3")
    clean_env.setenv("MAX_UPLOAD_BYTES", "2048")
    clean_env.setenv("BATCH_MAX_WAIT_MS", "0.5")
    clean_env.setenv("LOG_LEVEL", "debug")
    clean_env.setenv("LOG_FORMAT", "TEXT")
    clean_env.setenv("CORS_ORIGINS", "http://localhost:3000, https://digits.example ,")
    clean_env.setenv("UNCERTAIN_BELOW", "0.97")
    settings = Settings()
    assert settings.MODEL_DIR.as_posix() == "/srv/models/mnist/3"
    assert settings.MAX_UPLOAD_BYTES == 2048
    assert settings.batch_max_wait_s == pytest.approx(0.0005)
    assert settings.LOG_LEVEL == "DEBUG"
    assert settings.LOG_FORMAT == "text"
    assert settings.CORS_ORIGINS == ["http://localhost:3000", "https://digits.example"]
    assert settings.UNCERTAIN_BELOW == 0.97
    assert settings.NOT_A_DIGIT_BELOW is None  # unset: the model's own


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MAX_UPLOAD_BYTES", "0"),
        ("LOG_FORMAT", "xml"),
        ("PORT", "70000"),
        ("QUEUE_MAX", "x"),
        ("NOT_A_DIGIT_BELOW", "-0.1"),
        ("UNCERTAIN_BELOW", "1.5"),
        ("UNCERTAIN_BELOW", "nan"),
    ],
)
def test_invalid_values_are_refused(clean_env: pytest.MonkeyPatch, name: str, value: str) -> None:
    clean_env.setenv(name, value)
    with pytest.raises(ValidationError, match=name):
        Settings()


def test_get_settings_reads_the_environment_once(clean_env: pytest.MonkeyPatch) -> None:
    get_settings.cache_clear()
    try:
        clean_env.setenv("PORT", "9001")
        first = get_settings()
        clean_env.setenv("PORT", "9002")
        assert get_settings() is first
        assert first.PORT == 9001
    finally:
        get_settings.cache_clear()


def _preflight(settings: Settings) -> dict[str, str]:
    # No lifespan needed: CORS is answered by middleware before any route or model.
    response = TestClient(create_app(settings)).options(
        "/predict",
        headers={"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"},
    )
    return dict(response.headers)


def test_cors_is_off_by_default_and_on_for_listed_origins(clean_env: pytest.MonkeyPatch) -> None:
    assert "access-control-allow-origin" not in _preflight(Settings())
    headers = _preflight(Settings(CORS_ORIGINS=["http://localhost:3000"]))
    assert headers["access-control-allow-origin"] == "http://localhost:3000"


def test_cors_headers_reach_refused_uploads_too(clean_env: pytest.MonkeyPatch) -> None:
    origin = "http://localhost:3000"
    app = create_app(Settings(CORS_ORIGINS=[origin], MAX_UPLOAD_BYTES=100))
    response = TestClient(app).post(
        "/predict", files={"file": ("d.png", b"\x00" * 500)}, headers={"Origin": origin}
    )
    assert response.status_code == 413
    assert response.headers["access-control-allow-origin"] == origin
