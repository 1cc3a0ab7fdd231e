"""Calibration and operating points, fitted on held-out data only (never the test set).

Temperature scaling divides the network's log-probabilities by one scalar ``T`` chosen to
minimise the negative log-likelihood of the validation digits: it keeps every argmax (so the
accuracy is untouched) and only makes "0.99" mean 99%. The exported signature applies it, so
the service, ``training.evaluate`` and the TFLite copy all read the same calibrated numbers.

The operating points turn those probabilities into a verdict with one score, the calibrated
probability of the best digit ``c``: ``c < not_a_digit_below`` is "not a digit" (outlier
exposure taught the network to answer non-digits with flat probabilities), ``c <
uncertain_below`` is "a digit, but not sure", anything above is a digit. Both are fitted on
validation digits (clean and re-augmented) and on negatives drawn by held-out generators.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EPS = 1e-30
# Equal-width bins, as in Guo et al. (2017); the equal-mass variant puts as many predictions
# in every bin, which does not hide a badly calibrated sparse bin behind an empty one.
ECE_BINS = 15

# What the operating points are chosen for, on held-out data (recorded in metadata.json):
# at most this share of the re-augmented validation digits may be called "not a digit", and
# the threshold rises towards rejecting MIN_NEGATIVES_REJECTED of the held-out negatives only
# while no more than MAX_DIGITS_REJECTED_FOR_NEGATIVES of those digits are lost ...
MAX_DIGITS_REJECTED = 0.005
MIN_NEGATIVES_REJECTED = 0.95
MAX_DIGITS_REJECTED_FOR_NEGATIVES = 0.01
# ... and among the digits answered "digit", at most this share may be wrong (clean and
# re-augmented validation digits pooled; 99.85% right is the accuracy the service promises
# for a "digit" verdict): a confident wrong answer is the worst answer.
MAX_RISK_ACCEPTED = 0.0015
# A "digit" verdict never comes with less confidence than this, whatever the risk curve says:
# calibrated, 0.8 still means one answer in five is wrong.
MIN_UNCERTAIN_BELOW = 0.8


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T), row-wise, as the exported signature computes it."""
    logits = np.log(np.maximum(probs.astype(np.float64), EPS)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    picked = probs[np.arange(len(labels)), labels.astype(np.int64)]
    return float(-np.mean(np.log(np.maximum(picked, EPS))))


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """The T in [0.05, 20] with the least NLL: a log-spaced grid, then golden-section search."""
    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 61))
    losses = [nll(apply_temperature(probs, t), labels) for t in grid]
    best = int(np.argmin(losses))
    lo, hi = np.log(grid[max(0, best - 1)]), np.log(grid[min(len(grid) - 1, best + 1)])
    ratio = (np.sqrt(5) - 1) / 2
    for _ in range(40):
        a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        if nll(apply_temperature(probs, np.exp(a)), labels) < nll(
            apply_temperature(probs, np.exp(b)), labels
        ):
            hi = b
        else:
            lo = a
    return float(np.exp((lo + hi) / 2))


def _ece(confidence: np.ndarray, correct: np.ndarray, edges: np.ndarray) -> float:
    which = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, len(edges) - 2)
    total = 0.0
    for b in range(len(edges) - 1):
        members = which == b
        if members.any():
            gap = abs(float(correct[members].mean()) - float(confidence[members].mean()))
            total += members.mean() * gap
    return float(total)


def expected_calibration_error(
    probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS
) -> float:
    confidence, correct = probs.max(axis=1), probs.argmax(axis=1) == labels
    return _ece(confidence, correct, np.linspace(0.0, 1.0, bins + 1))


def equal_mass_ece(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    confidence, correct = probs.max(axis=1), probs.argmax(axis=1) == labels
    edges = np.quantile(confidence, np.linspace(0.0, 1.0, bins + 1))
    edges[0], edges[-1] = 0.0, 1.0 + 1e-9
    return _ece(confidence, correct, np.unique(edges))


def brier(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean over images of the squared distance to the one-hot truth (summed over classes)."""
    onehot = np.eye(probs.shape[1])[labels.astype(np.int64)]
    return float(np.mean(np.sum((probs - onehot) ** 2, axis=1)))


def calibration_metrics(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    return {
        "ece": expected_calibration_error(probs, labels),
        "ece_equal_mass": equal_mass_ece(probs, labels),
        "nll": nll(probs, labels),
        "brier": brier(probs, labels),
        "accuracy": float((probs.argmax(axis=1) == labels).mean()),
    }


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> dict[str, list]:
    """Per equal-width bin: mean confidence, accuracy, count (for the reliability diagram)."""
    confidence, correct = probs.max(axis=1), probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, bins - 1)
    out: dict[str, list] = {"confidence": [], "accuracy": [], "count": []}
    for b in range(bins):
        members = which == b
        out["count"].append(int(members.sum()))
        out["confidence"].append(float(confidence[members].mean()) if members.any() else None)
        out["accuracy"].append(float(correct[members].mean()) if members.any() else None)
    return out


@dataclass(frozen=True)
class OperatingPoints:
    not_a_digit_below: float
    uncertain_below: float


def verdicts(probs: np.ndarray, points: OperatingPoints) -> np.ndarray:
    """The service's rule, vectorised: "digit", "uncertain" or "not_a_digit" per row."""
    confidence = probs.max(axis=1)
    out = np.full(len(probs), "digit", dtype=object)
    out[confidence < points.uncertain_below] = "uncertain"
    out[confidence < points.not_a_digit_below] = "not_a_digit"
    return out


def risk_coverage(probs: np.ndarray, labels: np.ndarray) -> dict[str, list[float]]:
    """Error among accepted vs share accepted, accepting the most confident first."""
    order = np.argsort(-probs.max(axis=1), kind="stable")
    wrong = (probs.argmax(axis=1) != labels)[order]
    accepted = np.arange(1, len(order) + 1)
    risk = np.cumsum(wrong) / accepted
    coverage = accepted / len(order)
    threshold = probs.max(axis=1)[order]
    step = max(1, len(order) // 400)  # a few hundred points are plenty for a plot
    keep = np.unique(np.r_[np.arange(0, len(order), step), len(order) - 1])
    return {
        "coverage": coverage[keep].tolist(),
        "risk": risk[keep].tolist(),
        "threshold": threshold[keep].tolist(),
    }


def fit_operating_points(
    clean_probs: np.ndarray,
    clean_labels: np.ndarray,
    hard_probs: np.ndarray,
    hard_labels: np.ndarray,
    negative_probs: np.ndarray,
) -> tuple[OperatingPoints, dict[str, float]]:
    """Both thresholds from held-out data, and the rates they give on that data.

    ``not_a_digit_below``: the quantile of the hard (re-augmented) validation digits' confidence
    at MAX_DIGITS_REJECTED, so at most that share of real-looking digits is turned away; raised
    towards the threshold that rejects MIN_NEGATIVES_REJECTED of the held-out negatives, but
    never past the one that would turn away MAX_DIGITS_REJECTED_FOR_NEGATIVES of the digits.
    ``uncertain_below``: the lowest threshold at which the pooled validation digits accepted
    as "digit" are wrong at most MAX_RISK_ACCEPTED of the time, never below
    MIN_UNCERTAIN_BELOW.
    """
    hard_conf = hard_probs.max(axis=1)
    not_a_digit_below = float(np.quantile(hard_conf, MAX_DIGITS_REJECTED))
    if len(negative_probs):
        for_negatives = float(np.quantile(negative_probs.max(axis=1), MIN_NEGATIVES_REJECTED))
        ceiling = float(np.quantile(hard_conf, MAX_DIGITS_REJECTED_FOR_NEGATIVES))
        not_a_digit_below = max(not_a_digit_below, min(for_negatives, ceiling))

    probs = np.concatenate([clean_probs, hard_probs])
    labels = np.concatenate([clean_labels, hard_labels])
    uncertain_below = max(
        MIN_UNCERTAIN_BELOW, lowest_safe_threshold(probs, labels), not_a_digit_below
    )
    # Four decimals, rounded towards rejecting: what is written is what was checked.
    points = OperatingPoints(float(np.floor(not_a_digit_below * 1e4) / 1e4), float(uncertain_below))
    return points, operating_rates(
        points, clean_probs, clean_labels, hard_probs, hard_labels, negative_probs
    )


def lowest_safe_threshold(
    probs: np.ndarray, labels: np.ndarray, max_risk: float = MAX_RISK_ACCEPTED
) -> float:
    """The lowest t (four decimals) with error among {confidence >= t} at most ``max_risk``.

    Risk is not monotonic in t, so every candidate is checked, not only the first crossing.
    """
    conf = probs.max(axis=1)
    wrong = probs.argmax(axis=1) != labels
    order = np.argsort(-conf, kind="stable")
    cum_wrong = np.cumsum(wrong[order])
    candidates = np.unique(np.ceil(conf.astype(np.float64) * 1e4) / 1e4)
    # accepted(t) = how many have conf >= t; conf[order] is descending.
    accepted = np.searchsorted(-conf[order], -candidates, side="right")
    has_any = accepted > 0
    risk = np.where(has_any, cum_wrong[np.maximum(accepted, 1) - 1] / np.maximum(accepted, 1), 1)
    safe = candidates[has_any & (risk <= max_risk)]
    return float(safe.min()) if len(safe) else 1.0


def operating_rates(
    points: OperatingPoints,
    clean_probs: np.ndarray,
    clean_labels: np.ndarray,
    hard_probs: np.ndarray,
    hard_labels: np.ndarray,
    negative_probs: np.ndarray,
) -> dict[str, float]:
    """What the points do on each held-out set: the numbers they were chosen for."""
    rates: dict[str, float] = {}
    for name, probs, labels in (
        ("validation", clean_probs, clean_labels),
        ("validation_augmented", hard_probs, hard_labels),
    ):
        for key, value in verdict_rates(probs, labels, points).items():
            rates[f"{name}_{key}"] = value
    if len(negative_probs):
        v = verdicts(negative_probs, points)
        rates["negatives_not_a_digit"] = float((v == "not_a_digit").mean())
        rates["negatives_digit"] = float((v == "digit").mean())
    return rates


def verdict_rates(
    probs: np.ndarray, labels: np.ndarray, points: OperatingPoints
) -> dict[str, float]:
    """On real digits: how often each verdict comes, and how often a "digit" is wrong."""
    v = verdicts(probs, points)
    digit = v == "digit"
    right = probs.argmax(axis=1) == labels
    return {
        "digit": float(digit.mean()),
        "uncertain": float((v == "uncertain").mean()),
        "not_a_digit": float((v == "not_a_digit").mean()),
        "accuracy_among_digit": float(right[digit].mean()) if digit.any() else 1.0,
        "confidently_wrong": float((digit & ~right).mean()),
    }
