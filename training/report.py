"""PNG plots a person would rather look at than read: curves, confusion matrix, the mistakes."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: training runs on servers and in containers

import matplotlib.pyplot as plt
import numpy as np

LEARNING_CURVES = "learning_curves.png"
CONFUSION_MATRIX = "confusion_matrix.png"
MISCLASSIFIED = "misclassified.png"


def plot_learning_curves(history: dict[str, list[float]], path: Path) -> None:
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = np.arange(1, len(history.get("loss", [])) + 1)
    for key, ax in (("loss", ax_loss), ("accuracy", ax_acc)):
        if key in history:
            ax.plot(epochs, history[key], marker="o", label="train (augmented)")
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], marker="o", label="test")
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend()
    if "val_accuracy" in history:
        best = max(history["val_accuracy"])
        ax_acc.set_ylim(max(0.9, min(history["val_accuracy"]) - 0.005), 1.0)
        ax_acc.set_title(
            f"accuracy (test, last {history['val_accuracy'][-1]:.4f}, best {best:.4f})"
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


def write_report(
    directory: Path,
    history: dict[str, list[float]],
    cm: np.ndarray,
    images: np.ndarray,
    labels: np.ndarray,
    probs: np.ndarray,
) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    plot_learning_curves(history, directory / LEARNING_CURVES)
    plot_confusion_matrix(cm, directory / CONFUSION_MATRIX)
    plot_misclassified(images, labels, probs, directory / MISCLASSIFIED)
    return [LEARNING_CURVES, CONFUSION_MATRIX, MISCLASSIFIED]
