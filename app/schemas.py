"""The JSON the API returns, as pydantic models: they drive both serialisation and ``/docs``."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.imaging.prepare import Preprocess
from app.imaging.segment import MarkKind
from app.verdicts import NumberVerdict, Verdict
from contract import ModelMetadata


def _absent(value: object) -> bool:
    return value is None


# Responses are serialised without ``exclude_none``: ``digit`` is null for ``not_a_digit`` and
# must stay in the JSON (a client reading only ``digit`` must see the null, not a missing key
# it might default). The fields that are only there sometimes say so themselves, here.
OMITTED_WHEN_NONE: Any = {"exclude_if": _absent}

Probabilities = Annotated[
    list[float],
    Field(
        min_length=10,
        max_length=10,
        description="Probability of each digit 0-9, in order; they sum to 1.",
    ),
]
VerdictField = Annotated[
    Verdict,
    Field(
        description=(
            "`digit`, `uncertain`, `not_a_digit` or (/predict) `several_digits`: see Verdict "
            "for what each means."
        )
    ),
]
Digit = Annotated[
    int | None,
    Field(
        ge=0,
        le=9,
        description=(
            "The digit, for the verdicts `digit` and `uncertain`; null for `not_a_digit`. "
            "Always present: a client that reads only this field never gets a digit for an "
            "image that is not one."
        ),
    ),
]
BestGuess = Annotated[
    int,
    Field(ge=0, le=9, description="The most probable digit, whatever the verdict."),
]
Confidence = Annotated[
    float,
    Field(ge=0, le=1, description="The calibrated probability of `best_guess`."),
]
PreprocessedPng = Annotated[
    str | None,
    Field(
        description=(
            "With `?include=preprocessed`: the 28x28 image the model saw, as a base64 PNG."
        ),
        **OMITTED_WHEN_NONE,
    ),
]

_EXAMPLE_PROBABILITIES = [0.0, 0.0001, 0.0004, 0.0012, 0.0, 0.0001, 0.0, 0.998, 0.0, 0.0002]
_EXAMPLE_UNCERTAIN = [0.0, 0.0002, 0.0, 0.0011, 0.52, 0.0003, 0.0, 0.066, 0.0004, 0.412]
_EXAMPLE_NOT_A_DIGIT = [
    0.031,
    0.0512,
    0.0894,
    0.1416,
    0.3127,
    0.0455,
    0.0288,
    0.107,
    0.1204,
    0.0724,
]
_EXAMPLE_TIMING = {"read": 0.1, "preprocess": 0.4, "inference": 1.9, "total": 2.5}
_EXAMPLE_READINGS: dict[str, dict[str, Any]] = {
    "digit": {
        "verdict": "digit",
        "digit": 7,
        "best_guess": 7,
        "confidence": 0.998,
        "probabilities": _EXAMPLE_PROBABILITIES,
    },
    "uncertain": {
        "verdict": "uncertain",
        "digit": 4,
        "best_guess": 4,
        "confidence": 0.52,
        "alternatives": [
            {"digit": 4, "probability": 0.52},
            {"digit": 9, "probability": 0.412},
            {"digit": 7, "probability": 0.066},
        ],
        "probabilities": _EXAMPLE_UNCERTAIN,
    },
    "not_a_digit": {
        "verdict": "not_a_digit",
        "digit": None,
        "best_guess": 4,
        "confidence": 0.3127,
        "probabilities": _EXAMPLE_NOT_A_DIGIT,
    },
}
PREDICTION_EXAMPLES: dict[str, dict[str, Any]] = {
    verdict: {
        **reading,
        "model_version": "3",
        "preprocess": "full",
        "timing_ms": _EXAMPLE_TIMING,
    }
    for verdict, reading in _EXAMPLE_READINGS.items()
}
"""One /predict answer per verdict: the model's examples and /docs' named examples."""
_EXAMPLE_SUMMARIES = {
    "digit": "A clear digit",
    "uncertain": "Probably a 4, possibly a 9",
    "not_a_digit": "A letter, a shape: not a digit (digit is null)",
}


def restore_null_digits(node: Any) -> None:
    """Put ``"digit": null`` back into the not_a_digit examples of an OpenAPI document.

    FastAPI serialises the document with ``exclude_none``, which drops the one null the
    examples exist to show: /docs would teach clients that `digit` is left out.
    """
    if isinstance(node, dict):
        if node.get("verdict") == "not_a_digit" and "best_guess" in node and "digit" not in node:
            entries = list(node.items())
            at = next(i for i, (key, _) in enumerate(entries) if key == "verdict") + 1
            node.clear()
            node.update([*entries[:at], ("digit", None), *entries[at:]])
        for value in node.values():
            restore_null_digits(value)
    elif isinstance(node, list):
        for value in node:
            restore_null_digits(value)


def named_examples(examples: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``examples`` as OpenAPI named examples, which /docs offers in a drop-down."""
    return {
        name: {"summary": _EXAMPLE_SUMMARIES[name], "value": value}
        for name, value in examples.items()
    }


class Include(StrEnum):
    preprocessed = "preprocessed"


class PredictOptions(BaseModel):
    """The query options of /predict and /predict/batch.

    One model rather than two ``Query()`` parameters: validated in one pass (the README's
    "What made the difference" table has the measurement).
    """

    preprocess: Preprocess = Field(
        Preprocess.full,
        description="`full`: MNIST-style normalisation of any photo. `none`: plain resize.",
    )
    include: Include | None = Field(
        None, description="`preprocessed`: also return the 28x28 model input as a base64 PNG."
    )


class ErrorResponse(BaseModel):
    """Every error: a status code and a sentence for a person."""

    detail: str = Field(examples=["The upload is not a readable image."])


class Timing(BaseModel):
    """Where the time went, in milliseconds, measured inside the server."""

    read: float = Field(description="Receiving and parsing the upload.")
    preprocess: float = Field(description="Decoding and normalising the image(s).")
    inference: float = Field(description="Queueing for and running the model call.")
    total: float = Field(description="From the route's start to the response.")


class Alternative(BaseModel):
    """One of the digits an `uncertain` answer hesitates between."""

    digit: int = Field(ge=0, le=9)
    probability: float = Field(ge=0, le=1, description="Its calibrated probability.")


Alternatives = Annotated[
    list[Alternative] | None,
    Field(
        description=(
            "Only when the verdict is `uncertain`: the three most probable digits, most "
            "probable first (the first is `best_guess`)."
        ),
        **OMITTED_WHEN_NONE,
    ),
]


class Prediction(BaseModel):
    """One image's answer: the verdict, the digit (null when it is not one), the best guess."""

    model_config = ConfigDict(json_schema_extra={"examples": list(PREDICTION_EXAMPLES.values())})

    verdict: VerdictField
    digit: Digit
    best_guess: BestGuess
    confidence: Confidence
    alternatives: Alternatives = None
    probabilities: Probabilities
    model_version: str = Field(description="The served model's version directory name.")
    preprocess: Preprocess
    timing_ms: Timing
    preprocessed_png_base64: PreprocessedPng = None


class BatchItem(BaseModel):
    """One file's result in a batch, at the file's position in the request."""

    index: int = Field(ge=0, description="Position of the file in the request, from 0.")
    filename: str | None = Field(description="The file name the client sent, if any.")
    verdict: VerdictField
    digit: Digit
    best_guess: BestGuess
    confidence: Confidence
    alternatives: Alternatives = None
    probabilities: Probabilities
    preprocessed_png_base64: PreprocessedPng = None


class BatchItemError(BaseModel):
    """One file of a batch that could not be classified; the others still are."""

    index: int = Field(ge=0, description="Position of the file in the request, from 0.")
    filename: str | None = Field(description="The file name the client sent, if any.")
    status_code: int = Field(
        description="The status /predict would have answered for this file alone."
    )
    detail: str


class BatchPrediction(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model_version": "3",
                    "preprocess": "full",
                    "count": 4,
                    "failed": 1,
                    "results": [
                        {"index": 0, "filename": "seven.png", **_EXAMPLE_READINGS["digit"]},
                        {"index": 1, "filename": "four.png", **_EXAMPLE_READINGS["uncertain"]},
                        {"index": 2, "filename": "A.png", **_EXAMPLE_READINGS["not_a_digit"]},
                        {
                            "index": 3,
                            "filename": "blank.png",
                            "status_code": 422,
                            "detail": "The image has no contrast that looks like ink.",
                        },
                    ],
                    "timing_ms": {"read": 0.3, "preprocess": 0.9, "inference": 2.1, "total": 3.4},
                }
            ]
        }
    )

    model_version: str
    preprocess: Preprocess
    count: int = Field(description="Files received; `results` has one entry per file, in order.")
    failed: int = Field(description="How many entries of `results` are errors.")
    results: list[BatchItem | BatchItemError]
    timing_ms: Timing


class Health(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"status": "ok", "model_loaded": True, "model_version": "3"}]
        }
    )

    status: Literal["ok", "unavailable"] = Field(
        description="`ok` when the model is loaded and warmed up (the same as /health/ready)."
    )
    model_loaded: bool
    model_version: str | None


class Probe(BaseModel):
    status: Literal["alive", "ready"]


class OperatingPointsInfo(BaseModel):
    """The confidence thresholds answers are judged by, as in force (after the settings)."""

    not_a_digit_below: float = Field(
        ge=0, le=1, description="Below this probability of the best digit: `not_a_digit`."
    )
    uncertain_below: float = Field(
        ge=0, le=1, description="Below this (and at least `not_a_digit_below`): `uncertain`."
    )
    source: Literal["settings", "metadata", "default"] = Field(
        description=(
            "`metadata`: fitted by training (metadata.json). `settings`: NOT_A_DIGIT_BELOW or "
            "UNCERTAIN_BELOW replaced at least one of them. `default`: the model has none (it "
            "predates them) and 0.5 / 0.9 stand in: retrain it."
        )
    )
    fitted: dict[str, Any] | None = Field(
        None,
        description=(
            "What training recorded, whatever is in force: its thresholds, what they were "
            "chosen on and the rates they gave there."
        ),
    )


class ModelInfo(ModelMetadata):
    """What ``training/`` recorded about the served model (``metadata.json``, whose schema is
    ``contract.metadata``), with what the service serves it with."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "version": "3",
                    "arch": "default",
                    "parameters": 189610,
                    "epochs": 15,
                    "test_accuracy": 0.9952,
                    "test_loss": 0.0161,
                    "created": "2026-11-27T11:31:51+00:00",
                    "tensorflow_version": "2.21.0",
                    "keras_version": "3.15.1",
                    "backend": "tflite",
                    "calibration": {
                        "method": "temperature",
                        "temperature": 1.31,
                        "test": {
                            "before": {"ece": 0.012, "nll": 0.031, "brier": 0.011},
                            "after": {"ece": 0.004, "nll": 0.02, "brier": 0.008},
                        },
                    },
                    "operating_points": {
                        "not_a_digit_below": 0.55,
                        "uncertain_below": 0.93,
                        "source": "metadata",
                        "fitted": {
                            "not_a_digit_below": 0.55,
                            "uncertain_below": 0.93,
                            "chosen_on": "validation digits and held-out negatives",
                        },
                    },
                    "negatives": {"count": 12000},
                    "validation": {"size": 5000, "seed": 42},
                }
            ]
        },
    )

    backend: Literal["tflite", "savedmodel", "litert"] | None = Field(
        None,
        description=(
            "What answers predictions (INFERENCE_BACKEND): `tflite` (the TFLite copy, checked "
            "against its SavedModel at startup), `savedmodel` (the signature itself) or `litert` "
            "(model.tflite alone, checked against what training recorded; no TensorFlow)."
        ),
    )
    operating_points: OperatingPointsInfo | None = Field(  # type: ignore[assignment]
        None, description="The thresholds behind each answer's `verdict`, as in force."
    )


# --- POST /read --------------------------------------------------------------------------------


class PixelBox(BaseModel):
    """A rectangle in the uploaded image's pixels (after its EXIF orientation), origin top left."""

    x: int = Field(ge=0)
    y: int = Field(ge=0)
    width: int = Field(ge=0)
    height: int = Field(ge=0)


class ReadDigit(BaseModel):
    """One digit of the number, in reading order."""

    box: PixelBox
    verdict: VerdictField
    digit: Digit
    best_guess: BestGuess
    confidence: Confidence
    alternatives: Alternatives = None
    probabilities: Probabilities
    preprocessed_png_base64: PreprocessedPng = None


class ReadMark(BaseModel):
    """A piece of ink that is not one of the number's digits."""

    box: PixelBox
    kind: MarkKind
    preprocessed_png_base64: PreprocessedPng = None


class ReadOptions(BaseModel):
    """The query options of /read."""

    include: Include | None = Field(
        None,
        description="`preprocessed`: also return each digit as the model saw it, as a base64 PNG.",
    )


_EXAMPLE_BOX = {"x": 112, "y": 230, "width": 96, "height": 141}
NUMBER_EXAMPLES: dict[str, dict[str, Any]] = {
    "number": {
        "verdict": "number",
        "number": "27",
        "digits": [
            {"box": _EXAMPLE_BOX, **_EXAMPLE_READINGS["digit"], "digit": 2, "best_guess": 2},
            {
                "box": {"x": 231, "y": 226, "width": 88, "height": 150},
                **_EXAMPLE_READINGS["digit"],
            },
        ],
        "marks": [{"box": {"x": 330, "y": 352, "width": 14, "height": 15}, "kind": "small"}],
        "model_version": "3",
        "timing_ms": {"read": 0.2, "preprocess": 6.1, "inference": 2.4, "total": 8.9},
    },
    "no_number": {
        "verdict": "no_number",
        "number": None,
        "digits": [],
        "marks": [{"box": _EXAMPLE_BOX, "kind": "not_a_digit"}],
        "model_version": "3",
        "timing_ms": {"read": 0.2, "preprocess": 4.0, "inference": 2.0, "total": 6.3},
    },
}


class NumberReading(BaseModel):
    """A whole number read from one image: the digits left to right, and what else was there."""

    model_config = ConfigDict(json_schema_extra={"examples": list(NUMBER_EXAMPLES.values())})

    verdict: NumberVerdict
    number: str | None = Field(
        description=(
            "The digits read, left to right (`digit`s and the best guesses of `uncertain` "
            'ones), e.g. `"2024"`; null when none could be read. Always present.'
        ),
        examples=["2024"],
    )
    digits: list[ReadDigit]
    marks: list[ReadMark] = Field(
        description="Ink that is not a digit of the number: dashes, dots, lines, letters."
    )
    model_version: str
    timing_ms: Timing
