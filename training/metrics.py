"""Test-set metrics from class probabilities: accuracy, loss, per-class scores, confusion matrix.

Pure functions of arrays (no TensorFlow), so they are tested without a model and shared by the
pipeline's final evaluation and ``python -m training.evaluate``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Evaluation:
    accuracy: float
    loss: float
    confusion_matrix: list[list[int]]  # rows: true digit, columns: predicted digit
    per_class: list[dict[str, float]]  # digit, precision, recall, f1, support
    num_examples: int

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def evaluate_probabilities(probs: np.ndarray, labels: np.ndarray) -> Evaluation:
    """Metrics from class probabilities; pure, so it is tested without a model."""
    labels = labels.astype(np.int64)
    predicted = probs.argmax(axis=1)
    cm = np.zeros((10, 10), dtype=np.int64)
    np.add.at(cm, (labels, predicted), 1)
    per_class = []
    for d in range(10):
        tp = float(cm[d, d])
        precision = tp / cm[:, d].sum() if cm[:, d].sum() else 0.0
        recall = tp / cm[d, :].sum() if cm[d, :].sum() else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class.append(
            {
                "digit": d,
                "precision": precision,
                "recall": recall,
                "f1": f1,
                "support": int(cm[d, :].sum()),
            }
        )
    picked = probs[np.arange(len(labels)), labels]
    loss = float(-np.mean(np.log(np.clip(picked, 1e-7, 1.0))))
    return Evaluation(
        accuracy=float(np.trace(cm) / max(1, len(labels))),
        loss=loss,
        confusion_matrix=cm.tolist(),
        per_class=per_class,
        num_examples=len(labels),
    )


def format_evaluation(ev: Evaluation) -> str:
    lines = [f"test accuracy {ev.accuracy:.4f}  loss {ev.loss:.4f}  ({ev.num_examples} digits)", ""]
    lines.append("digit  precision  recall   f1      support")
    for row in ev.per_class:
        lines.append(
            f"{row['digit']:>5}  {row['precision']:>9.4f}  {row['recall']:.4f}   "
            f"{row['f1']:.4f}  {row['support']:>7}"
        )
    lines += ["", "confusion matrix (rows: true, columns: predicted)"]
    lines.append("     " + "".join(f"{d:>6}" for d in range(10)))
    for d, counts in enumerate(ev.confusion_matrix):
        lines.append(f"{d:>4} " + "".join(f"{v:>6}" for v in counts))
    return "\n".join(lines)
