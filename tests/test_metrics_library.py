"""``auc`` (scikit-learn's ``roc_auc_score`` underneath) agrees with MedMNIST's evaluator.

The fixture is small and fixed: binary (with ties, one across the classes), three classes, three labels.
``EXPECTED`` holds what ``medmnist.evaluator.getAUC`` (medmnist 3.0.2, scikit-learn 1.9) returned on it,
computed once with float64 scores — softmax for binary/multi-class, sigmoid for multi-label — so the check
runs without medmnist; where medmnist is installed (the ``test`` extra) it is asked live as well.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from mmdd.core.metrics import UNDEFINED_AUC, auc

FIXTURES = {
    "binary-class": (  # flag pneumoniamnist; scores: softmax column 1
        [[0.2, 1.1], [1.5, -0.3], [0.0, 0.0], [-0.7, 0.9], [0.4, 0.4], [2.0, 0.1], [-1.2, 0.5], [0.3, 0.3]],
        [1, 0, 1, 0, 1, 0, 1, 0]),
    "multi-class": (  # flag bloodmnist (getAUC reads only the task); one-vs-rest on softmax scores
        [[2.0, 0.1, -1.0], [0.3, 1.7, 0.2], [-0.5, 0.4, 1.1], [1.2, 1.1, -0.3], [0.0, -0.2, 0.9],
         [0.6, 0.8, 0.7], [-1.0, 2.2, 0.1], [1.4, -0.6, 0.3], [0.2, 0.2, 0.2]],
        [0, 1, 2, 1, 2, 0, 1, 2, 0]),
    "multi-label, binary-class": (  # flag chestmnist; per label on sigmoid scores
        [[1.0, -0.5, 0.3], [-1.2, 0.8, 0.0], [-0.4, 0.4, 0.7], [2.1, -0.1, 1.5], [-0.3, 1.9, -0.7],
         [0.0, -1.4, 0.9], [1.3, 0.2, -0.2], [-0.8, 0.6, 0.6]],
        [[1, 0, 1], [0, 1, 0], [1, 1, 0], [1, 0, 1], [0, 1, 0], [0, 0, 1], [1, 0, 0], [0, 1, 1]]),
}
FLAGS = {"binary-class": "pneumoniamnist", "multi-class": "bloodmnist", "multi-label, binary-class": "chestmnist"}
EXPECTED = {"binary-class": 0.75, "multi-class": 0.888888888888889, "multi-label, binary-class": 0.9166666666666666}


def _scores(task: str, logits: torch.Tensor) -> np.ndarray:
    """The scores MedMNIST's evaluator is given: softmax, or sigmoid per label."""
    logits = logits.double()
    return (logits.sigmoid() if task.startswith("multi-label") else logits.softmax(-1)).numpy()


@pytest.mark.parametrize("task", list(FIXTURES))
def test_auc_equals_the_values_medmnist_getauc_gave(task):
    logits, labels = FIXTURES[task]
    assert auc(torch.tensor(logits), torch.tensor(labels)) == pytest.approx(EXPECTED[task], abs=1e-12)


@pytest.mark.parametrize("task", list(FIXTURES))
def test_auc_agrees_with_the_medmnist_evaluator(task, tmp_path):
    medmnist_evaluator = pytest.importorskip("medmnist.evaluator")
    logits, labels = FIXTURES[task]
    truth = np.array(labels)
    truth = truth if truth.ndim == 2 else truth[:, None]  # MedMNIST stores labels N×1 (or N×L)
    scores = _scores(task, torch.tensor(logits))
    ours = auc(torch.tensor(logits), torch.tensor(labels))
    assert ours == pytest.approx(medmnist_evaluator.getAUC(truth, scores, task), abs=1e-12)
    flag = FLAGS[task]
    np.savez(tmp_path / f"{flag}.npz", test_labels=truth)  # the evaluator reads a split's labels from the npz
    evaluator = medmnist_evaluator.Evaluator(flag, "test", root=str(tmp_path))
    assert ours == pytest.approx(evaluator.evaluate(scores).AUC, abs=1e-12)


def test_a_class_absent_from_the_truth_counts_half():
    logits, labels = FIXTURES["multi-class"]
    logits, labels = torch.tensor(logits)[:6], torch.tensor(labels)[:6].clamp(max=1)  # classes 0 and 1 only
    probs = logits.softmax(-1).numpy()
    present = [roc_auc_score((labels == c).numpy(), probs[:, c]) for c in (0, 1)]
    assert auc(logits, labels) == pytest.approx((sum(present) + UNDEFINED_AUC) / 3)
    ml_logits, ml_labels = FIXTURES["multi-label, binary-class"]
    ml_labels = torch.tensor(ml_labels)
    ml_labels[:, 2] = 1  # label 2 positive everywhere: undefined
    sig = torch.tensor(ml_logits).sigmoid().numpy()
    present = [roc_auc_score(ml_labels[:, j].numpy(), sig[:, j]) for j in (0, 1)]
    assert auc(torch.tensor(ml_logits), ml_labels) == pytest.approx((sum(present) + UNDEFINED_AUC) / 3)
    assert auc(torch.zeros(4, 2), torch.zeros(4, dtype=torch.long)) == UNDEFINED_AUC  # binary, no positive
