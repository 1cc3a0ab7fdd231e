"""training/metrics.py: test-set metrics from probabilities, without a model or TensorFlow."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from tests.servers import REPO
from training.metrics import evaluate_probabilities, format_evaluation


def test_metrics_import_neither_tensorflow_nor_app() -> None:
    probe = (
        "import sys, training.metrics\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('app', 'tensorflow', 'keras')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[]"]


def test_metrics_of_a_hand_counted_example() -> None:
    labels = np.array([0, 0, 1, 1])
    probabilities = np.zeros((4, 10), np.float32)
    probabilities[[0, 1, 2, 3], [0, 1, 1, 1]] = 1.0  # the second 0 is read as a 1
    ev = evaluate_probabilities(probabilities, labels)
    assert ev.accuracy == 0.75
    assert ev.num_examples == 4
    assert ev.confusion_matrix[0][:2] == [1, 1]
    assert ev.confusion_matrix[1][:2] == [0, 2]
    zero, one = ev.per_class[0], ev.per_class[1]
    assert (zero["precision"], zero["recall"], zero["support"]) == (1.0, 0.5, 2)
    assert (one["precision"], one["recall"]) == (pytest.approx(2 / 3), 1.0)
    assert ev.per_class[5] == {"digit": 5, "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert ev.loss == pytest.approx(-np.log(1e-7) / 4)  # the one wrong answer gave its label 0
    text = format_evaluation(ev)
    assert text.startswith("test accuracy 0.7500  loss ")
    assert "(4 digits)" in text
