"""``metadata.json``: what training records beside a model version, as one typed schema.

Training validates what it writes against ``ModelMetadata`` before it publishes a version; the
service reads the same fields through it (the lean server's sha256 and check batch, ``/model``,
whose response model extends this one). A field either side adds is declared here, or it is not
part of the contract. Unknown keys are ignored on reading, so an older service still serves a
newer model's directory.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class CheckBatchRecord(BaseModel):
    """``tflite_check.npz``: the check batch with the SavedModel's own answers."""

    file: str
    sha256: str
    images: int = Field(ge=1)


class TFLiteRecord(BaseModel):
    """The TFLite copy, compared with the SavedModel over the whole test set at export."""

    file: str
    sha256: str
    test_accuracy: float | None = None
    max_probability_difference: float | None = None
    runtime: str | None = Field(None, description="The interpreter training measured it on.")
    check: CheckBatchRecord | None = Field(
        None, description="The check batch a server without TensorFlow repeats at startup."
    )


class ModelMetadata(BaseModel):
    """Every field training writes into ``metadata.json``; all but ``version`` optional, so
    model directories from older training runs still read."""

    version: str
    arch: str | None = None
    parameters: int | None = None
    epochs: int | None = None
    batch_size: int | None = None
    seed: int | None = None
    train_examples: int | None = None
    validation: dict[str, Any] | None = Field(
        None, description="The validation split the temperature and thresholds were fitted on."
    )
    test_accuracy: float | None = Field(None, description="Accuracy on the MNIST test set.")
    test_loss: float | None = None
    test_evaluated: str | None = Field(None, description="When and how the test set was used.")
    per_class: list[dict[str, Any]] | None = Field(
        None, description="Precision, recall and F1 per digit on the test set."
    )
    confusion_matrix: list[list[int]] | None = None
    test_verdicts: dict[str, Any] | None = Field(
        None, description="The share of test digits given each verdict, and their accuracy."
    )
    calibration: dict[str, Any] | None = Field(
        None,
        description=(
            "How training calibrated the probabilities (a temperature, already part of the "
            "served model) and the calibration error on the test set before and after."
        ),
    )
    operating_points: dict[str, Any] | None = Field(
        None, description="The verdict thresholds training fitted, with their targets and rates."
    )
    negatives: dict[str, Any] | None = Field(
        None, description="The non-digit images training showed the model (outlier exposure)."
    )
    training_seconds: float | None = None
    history: dict[str, Any] | None = None
    recipe: dict[str, Any] | None = None
    input: dict[str, Any] | None = Field(None, description="The signature's input, for people.")
    output: dict[str, Any] | None = Field(None, description="The signature's output, for people.")
    signature: str | None = None
    tflite: TFLiteRecord | None = Field(
        None, description="The TFLite copy training wrote: file, sha256, its own test accuracy."
    )
    data: dict[str, Any] | None = None
    tensorflow_version: str | None = None
    keras_version: str | None = None
    python_version: str | None = None
    created: str | None = Field(None, description="When the model was exported (ISO 8601).")
    report: list[str] | None = Field(None, description="Report images beside the model.")

    model_config = ConfigDict(extra="ignore")


def undeclared_keys(metadata: dict[str, Any]) -> list[str]:
    """Top-level keys a writer put in ``metadata`` that the schema does not declare."""
    return sorted(set(metadata) - set(ModelMetadata.model_fields))


def check_written(metadata: dict[str, Any]) -> ModelMetadata:
    """``metadata`` as the schema reads it; ValueError if a key is undeclared or a type wrong.

    What the writer calls before it publishes a version, so that nothing reaches a model
    directory that the readers do not know.
    """
    extra = undeclared_keys(metadata)
    if extra:
        raise ValueError(f"metadata keys not in contract.metadata.ModelMetadata: {extra}")
    return ModelMetadata.model_validate(metadata)
