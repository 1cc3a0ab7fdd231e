"""PNG plots a person would rather look at than read: curves, confusion matrix, the mistakes,
calibration, risk against coverage, and how often each kind of non-digit is turned away."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: training runs on servers and in containers

import matplotlib.pyplot as plt
import numpy as np

from training.calibrate import OperatingPoints, reliability

LEARNING_CURVES = "learning_curves.png"
CONFUSION_MATRIX = "confusion_matrix.png"
MISCLASSIFIED = "misclassified.png"
RELIABILITY = "reliability.png"
RISK_COVERAGE = "risk_coverage.png"
REJECTION = "negatives_rejection.png"


def plot_learning_curves(history: dict[str, list[float]], path: Path) -> None:
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = np.arange(1, len(history.get("loss", [])) + 1)
    for key, ax in (("loss", ax_loss), ("accuracy", ax_acc)):
        if key in history:
            ax.plot(epochs, history[key], marker="o", label="train (augmented)")
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], marker="o", label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend()
    if "val_accuracy" in history:
        best = max(history["val_accuracy"])
        ax_acc.set_ylim(max(0.9, min(history["val_accuracy"]) - 0.005), 1.0)
        ax_acc.set_title(
            f"accuracy (validation, last {history['val_accuracy'][-1]:.4f}, best {best:.4f})"
        )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_confusion_matrix(cm: np.ndarray, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    # Log colour scale: the interesting cells are the off-diagonal handful, not the ~1000s.
    shown = np.log10(cm + 1)
    ax.imshow(shown, cmap="Blues")
    for i in range(10):
        for j in range(10):
            if cm[i, j]:
                colour = "white" if shown[i, j] > shown.max() * 0.6 else "black"
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8, color=colour)
    ax.set_xticks(range(10))
    ax.set_yticks(range(10))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    errors = int(cm.sum() - np.trace(cm))
    ax.set_title(f"confusion matrix ({errors} errors of {int(cm.sum())})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_misclassified(
    images: np.ndarray, labels: np.ndarray, probs: np.ndarray, path: Path, limit: int = 60
) -> None:
    predicted = probs.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)[:limit]
    cols = 10
    rows = max(1, int(np.ceil(len(wrong) / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.1, rows * 1.3), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, wrong, strict=False):
        ax.imshow(images[i], cmap="gray_r")
        ax.set_title(f"{labels[i]}→{predicted[i]} ({probs[i].max():.2f})", fontsize=8)
    fig.suptitle(f"misclassified test digits: true→predicted (confidence), {len(wrong)} shown")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_reliability(
    uncalibrated: np.ndarray, calibrated: np.ndarray, labels: np.ndarray, path: Path
) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    for ax, probs, title in ((axes[0], uncalibrated, "before"), (axes[1], calibrated, "after")):
        bins = reliability(probs, labels)
        shown = [(c, a, n) for c, a, n in zip(*bins.values(), strict=True) if n]
        conf = [c for c, _, _ in shown]
        acc = [a for _, a, _ in shown]
        ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
        ax.plot(conf, acc, marker="o")
        for c, a, n in shown:
            ax.annotate(str(n), (c, a), fontsize=7, xytext=(3, -9), textcoords="offset points")
        ax.set_xlabel("mean confidence in bin")
        ax.set_ylabel("accuracy in bin")
        ax.set_title(f"test set, {title} temperature scaling (15 bins, counts)")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_risk_coverage(
    curves: dict[str, dict[str, list[float]]], points: OperatingPoints, path: Path
) -> None:
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for name, curve in curves.items():
        ax.plot(curve["coverage"], np.array(curve["risk"]) * 100, label=name)
        threshold = np.array(curve["threshold"])
        at = int(np.searchsorted(-threshold, -points.uncertain_below, side="right")) - 1
        if at >= 0:
            ax.plot(curve["coverage"][at], curve["risk"][at] * 100, "ko")
    ax.set_xlabel("share of digits answered 'digit' (coverage)")
    ax.set_ylabel("error among them, %")
    ax.set_xlim(0.8, 1.0)
    ax.set_title(f"risk against coverage (dot: uncertain below {points.uncertain_below})")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_rejection(rejection: dict[str, dict[str, float]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6.5, 4))
    kinds = list(rejection)
    shares = [rejection[k]["not_a_digit"] * 100 for k in kinds]
    ax.bar(kinds, shares, color="tab:green")
    for i, share in enumerate(shares):
        ax.text(i, share + 1, f"{share:.1f}", ha="center", fontsize=8)
    ax.axhline(95, color="grey", linestyle="--", linewidth=1)
    ax.set_ylim(0, 105)
    ax.set_ylabel("answered not_a_digit, %")
    ax.set_title("negatives from held-out generators (never trained on)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(
    directory: Path,
    *,
    history: dict[str, list[float]],
    cm: np.ndarray,
    images: np.ndarray,
    labels: np.ndarray,
    probs: np.ndarray,
    uncalibrated: np.ndarray,
    validation_risk: dict[str, list[float]],
    test_risk: dict[str, list[float]],
    points: OperatingPoints,
    rejection: dict[str, dict[str, float]],
) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    plot_learning_curves(history, directory / LEARNING_CURVES)
    plot_confusion_matrix(cm, directory / CONFUSION_MATRIX)
    plot_misclassified(images, labels, probs, directory / MISCLASSIFIED)
    plot_reliability(uncalibrated, probs, labels, directory / RELIABILITY)
    plot_risk_coverage(
        {"validation (clean + re-augmented)": validation_risk, "test": test_risk},
        points,
        directory / RISK_COVERAGE,
    )
    files = [LEARNING_CURVES, CONFUSION_MATRIX, MISCLASSIFIED, RELIABILITY, RISK_COVERAGE]
    if rejection:
        plot_rejection(rejection, directory / REJECTION)
        files.append(REJECTION)
    return files
