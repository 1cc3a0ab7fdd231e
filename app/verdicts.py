"""The verdict on one answer: a digit, a digit it is unsure of, or not a digit at all.

The model's signature returns calibrated probabilities (training bakes its fitted temperature
into the exported graph), so the service applies no temperature here: it only judges the
probability of the best digit, ``c``, against two operating points:

- ``c < not_a_digit_below``: ``not_a_digit`` (no digit is named);
- ``not_a_digit_below <= c < uncertain_below``: ``uncertain`` (the top three are named);
- otherwise ``digit``.

The operating points are chosen once, at startup: ``NOT_A_DIGIT_BELOW`` / ``UNCERTAIN_BELOW``
when set, else the ones training fitted and wrote into ``metadata.json``, else DEFAULT_POINTS.
Nothing here imports a web framework or TensorFlow: ``judge`` is a pure function of its input.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, NamedTuple

import numpy as np

logger = logging.getLogger(__name__)

ALTERNATIVES = 3
"""How many digits an ``uncertain`` answer names, most probable first."""
DECIMALS = 6
"""Probabilities are reported with six decimals (all float32 holds); verdicts judge those."""
IN_A_NUMBER = 0.5
"""/read's pieces are ``not_a_digit`` below this share of ``not_a_digit_below`` (in_a_number)."""

Source = Literal["settings", "metadata", "default"]
METADATA_KEY = "operating_points"
FIELDS = ("not_a_digit_below", "uncertain_below")
SETTING_NAMES = {"not_a_digit_below": "NOT_A_DIGIT_BELOW", "uncertain_below": "UNCERTAIN_BELOW"}


class Verdict(StrEnum):
    """How sure the model is that the image shows a digit, and which.

    - `digit`: it is a digit, and `digit` says which.
    - `uncertain`: probably a digit, but the model is not sure which: `digit` is its best
      guess and `alternatives` names the three most probable digits.
    - `not_a_digit`: the image does not look like a handwritten digit (a letter, a shape, a
      photo of something else): `digit` is null; `best_guess` is what the model would have
      said had it been forced to choose.
    - `several_digits` (/predict only): the image holds several digits side by side and the
      model does not read it as one: `digit` is null; send it to `POST /read` to read them.
    """

    digit = "digit"
    uncertain = "uncertain"
    not_a_digit = "not_a_digit"
    several_digits = "several_digits"


class InvalidOperatingPoints(ValueError):  # noqa: N818 - the service's vocabulary
    """The operating points in force would not be ``0 <= not_a_digit_below <= uncertain_below
    <= 1``; the message is one line that says which value came from where."""


@dataclass(frozen=True, slots=True)
class OperatingPoints:
    """The two confidence thresholds answers are judged by, and where they came from."""

    not_a_digit_below: float
    uncertain_below: float
    source: Source = "default"

    def __post_init__(self) -> None:
        # Chained, so that NaN (which compares False with everything) is refused too.
        if not (0.0 <= self.not_a_digit_below <= self.uncertain_below <= 1.0):
            raise InvalidOperatingPoints(
                "Invalid operating points: need 0 <= not_a_digit_below <= uncertain_below <= 1, "
                f"got not_a_digit_below={self.not_a_digit_below}, "
                f"uncertain_below={self.uncertain_below}."
            )


DEFAULT_POINTS = OperatingPoints(not_a_digit_below=0.5, uncertain_below=0.9, source="default")
"""For a model trained before training fitted operating points: a guess, not a measurement."""


_ORIGIN_WORDS: dict[Source, str] = {
    "settings": "the settings",
    "metadata": "the model's metadata.json",
    "default": "the defaults",
}


class Alternative(NamedTuple):
    digit: int
    probability: float


class Judgement(NamedTuple):
    """Everything a response says about one image's probabilities."""

    verdict: Verdict
    digit: int | None
    """``best_guess`` for ``digit`` and ``uncertain``; None for ``not_a_digit``."""
    best_guess: int
    confidence: float
    """The probability of ``best_guess``, rounded to DECIMALS."""
    alternatives: tuple[Alternative, ...] | None
    """Only for ``uncertain``: the ALTERNATIVES most probable digits, most probable first."""


def judge(probabilities: np.ndarray | Sequence[float], points: OperatingPoints) -> Judgement:
    """The verdict on one image's ten calibrated probabilities.

    The confidence compared is the one the response reports (rounded to DECIMALS), so that a
    client checking ``confidence`` against ``/model``'s operating points reaches the same
    verdict. Only an ``uncertain`` answer sorts the ten (it names the top three); the others
    need the maximum alone: this runs once per image on the request path.
    """
    row = np.asarray(probabilities)
    best = int(row.argmax())
    confidence = round(float(row[best]), DECIMALS)
    if confidence < points.not_a_digit_below:
        return Judgement(Verdict.not_a_digit, None, best, confidence, None)
    if confidence >= points.uncertain_below:
        return Judgement(Verdict.digit, best, best, confidence, None)
    # Stable on the negated row: among equal probabilities the lower digit comes first, as in
    # argmax, so the first alternative always is the best guess.
    top = np.argsort(-row, kind="stable")[:ALTERNATIVES]
    alternatives = tuple(
        Alternative(int(digit), round(float(row[digit]), DECIMALS)) for digit in top
    )
    return Judgement(Verdict.uncertain, best, best, confidence, alternatives)


def in_a_number(points: OperatingPoints) -> OperatingPoints:
    """The points /read judges each piece of a number by: ``not_a_digit`` only below
    IN_A_NUMBER of ``not_a_digit_below``.

    ``not_a_digit_below`` is fitted for an upload that may be anything; a digit-sized piece of
    ink in a row of digits is most likely a digit, and one read at 0.3 is better named as an
    ``uncertain`` digit (its number ``uncertain``) than dropped, which makes the number a digit
    short. A letter among the digits still reads lower than that.
    """
    return OperatingPoints(
        points.not_a_digit_below * IN_A_NUMBER, points.uncertain_below, points.source
    )


def several(judged: Judgement) -> Judgement:
    """``judged`` for an upload that holds several digits, unless the model read it as one
    digit for sure (a 4 whose bar came loose looks like two pieces, and is one digit)."""
    if judged.verdict is Verdict.digit:
        return judged
    return Judgement(Verdict.several_digits, None, judged.best_guess, judged.confidence, None)


def resolve_operating_points(
    metadata: Mapping[str, Any],
    *,
    not_a_digit_below: float | None = None,
    uncertain_below: float | None = None,
) -> OperatingPoints:
    """The operating points to serve with: each value from the settings if set, else from the
    model's ``metadata.json``, else DEFAULT_POINTS (with a warning: the model should be
    retrained).

    ``source`` is ``settings`` when either value was set there, ``metadata`` when both come from
    the model, ``default`` when the model has none and no setting replaced both. Raises
    InvalidOperatingPoints, with a one-line message, for values that do not fit together or a
    malformed ``operating_points`` in the metadata.
    """
    overrides = {"not_a_digit_below": not_a_digit_below, "uncertain_below": uncertain_below}
    # With both values set, what the model carries does not matter, garbled or not.
    fitted = _fitted_points(metadata) if None in overrides.values() else None
    values: dict[str, float] = {}
    origins: dict[str, Source] = {}
    for field in FIELDS:
        override = overrides[field]
        if override is not None:
            values[field], origins[field] = float(override), "settings"
        elif fitted is not None:
            values[field], origins[field] = fitted[field], "metadata"
        else:
            values[field], origins[field] = getattr(DEFAULT_POINTS, field), "default"

    if defaulted := [field for field in FIELDS if origins[field] == "default"]:
        logger.warning(
            "the model has no fitted operating points (retrain it): defaults stand in",
            extra={"fields": {"defaulted": defaulted, **values}},
        )
    candidates: tuple[Source, ...] = ("settings", "metadata")
    source: Source = next(
        (origin for origin in candidates if origin in origins.values()), "default"
    )
    try:
        return OperatingPoints(values["not_a_digit_below"], values["uncertain_below"], source)
    except InvalidOperatingPoints:
        described = ", ".join(
            f"{SETTING_NAMES[field] if origins[field] == 'settings' else field}={values[field]} "
            f"(from {_ORIGIN_WORDS[origins[field]]})"
            for field in FIELDS
        )
        raise InvalidOperatingPoints(
            "Invalid operating points: need 0 <= NOT_A_DIGIT_BELOW <= UNCERTAIN_BELOW <= 1, "
            f"got {described}."
        ) from None


def _fitted_points(metadata: Mapping[str, Any]) -> dict[str, float] | None:
    """metadata.json's ``operating_points`` values, None when the model has none.

    A model that has them garbled (not an object, a missing key, not a number) is refused
    rather than served with defaults: its answers would silently change meaning. A number out
    of range is refused too, once the points are built from it.
    """
    points = metadata.get(METADATA_KEY)
    if points is None:
        return None
    if not isinstance(points, Mapping):
        raise InvalidOperatingPoints(
            f"metadata.json's {METADATA_KEY} is not an object; retrain the model or set "
            "NOT_A_DIGIT_BELOW and UNCERTAIN_BELOW."
        )
    values: dict[str, float] = {}
    for field in FIELDS:
        value = points.get(field)
        # bool is an int to Python, but `true` is no threshold.
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            raise InvalidOperatingPoints(
                f"metadata.json's {METADATA_KEY}.{field} is {value!r}, not a number; retrain the "
                "model or set NOT_A_DIGIT_BELOW and UNCERTAIN_BELOW."
            )
        values[field] = float(value)
    return values


class NumberVerdict(StrEnum):
    """How sure the service is of the whole number.

    - `number`: every digit was read with the verdict `digit`.
    - `uncertain`: a digit is `uncertain`, a digit-sized piece is not a digit (a letter, a
      blot: the number may miss a digit), or touching digits had to be cut apart (the cut
      may be in the wrong place): `number` is the best reading, check it.
    - `no_number`: no digit could be read; `number` is null.
    """

    number = "number"
    uncertain = "uncertain"
    no_number = "no_number"
