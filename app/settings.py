"""The service's configuration: every knob is an upper-case environment variable.

``create_app()`` reads these once; tests build a ``Settings(...)`` and hand it to
``create_app(settings)`` instead of patching the environment.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

MIB = 1024 * 1024


class Settings(BaseSettings):
    """Defaults suit one uvicorn worker on a small CPU machine; see the README table."""

    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore", frozen=True)

    MODEL_DIR: Path = Field(
        Path("models/mnist"),
        description="Directory of numbered versions (the newest is served) or one version.",
    )
    MAX_UPLOAD_BYTES: int = Field(
        10 * MIB,
        gt=0,
        description="Largest request body for /predict and /predict/batch, multipart included.",
    )
    MAX_IMAGE_PIXELS: int = Field(
        40_000_000,
        gt=0,
        description="Largest width x height decoded; bigger images (bombs) get 413 unread.",
    )
    MAX_BATCH_FILES: int = Field(64, gt=0, description="Most files in one /predict/batch.")
    PROMETHEUS_MULTIPROC_DIR: Path | None = Field(
        None,
        description=(
            "prometheus_client's multiprocess mode, for several uvicorn workers: each writes its "
            "metrics there and /metrics adds them up. An empty directory, set before start."
        ),
    )
    BATCH_MAX_SIZE: int = Field(16, gt=0, description="Most images in one model call.")
    BATCH_MAX_WAIT_MS: float = Field(
        1.0,
        ge=0,
        description="How long a queued image may wait for others to share its model call.",
    )
    INFERENCE_BACKEND: Literal["tflite", "savedmodel", "litert"] = Field(
        "tflite",
        description=(
            "`tflite`: restore the SavedModel and serve its TFLite copy on LiteRT once the two "
            "agree (else the signature). `savedmodel`: call the signature. `litert`: serve "
            "`model.tflite` alone, without TensorFlow (the lean image), after checking the "
            "sha256 and check batch training recorded."
        ),
    )
    INFERENCE_THREADS: int = Field(
        1, gt=0, description="CPU threads for one model call (the `tflite` backend)."
    )
    QUEUE_MAX: int = Field(
        512, gt=0, description="Images waiting for the model before /predict answers 503."
    )
    NOT_A_DIGIT_BELOW: float | None = Field(
        None,
        ge=0,
        le=1,
        description=(
            "An answer whose best digit has a probability below this is `not_a_digit` (its "
            "`digit` is null). Unset: the value training fitted (metadata.json "
            "`operating_points`), else 0.5. Must not exceed UNCERTAIN_BELOW."
        ),
    )
    UNCERTAIN_BELOW: float | None = Field(
        None,
        ge=0,
        le=1,
        description=(
            "An answer whose best digit has a probability below this (and at least "
            "NOT_A_DIGIT_BELOW) is `uncertain`, with the top three digits as alternatives. "
            "Unset: the value training fitted, else 0.9. 1.0 makes every answer short of "
            "certainty uncertain."
        ),
    )
    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    LOG_FORMAT: Literal["json", "text"] = "json"
    ACCESS_LOG: bool = Field(True, description="Log one line per request.")
    CORS_ORIGINS: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated origins allowed by CORS; empty turns CORS off.",
    )
    HOST: str = Field("127.0.0.1", description="Interface `python -m app.main` binds.")
    PORT: int = Field(8000, gt=0, lt=65536, description="Port `python -m app.main` listens on.")

    @field_validator("LOG_LEVEL", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        # LOG_LEVEL=info is what people type; logging's level names are upper-case.
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("LOG_FORMAT", mode="before")
    @classmethod
    def _lower_format(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("CORS_ORIGINS", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        # A comma-separated list reads better in an env file than the JSON pydantic expects.
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @property
    def batch_max_wait_s(self) -> float:
        return self.BATCH_MAX_WAIT_MS / 1000


@lru_cache
def get_settings() -> Settings:
    """Settings from the environment, read once per process."""
    return Settings()
