"""Metrics by name: ``metric(logits, labels) -> float`` (fractions in [0, 1])."""

from __future__ import annotations

from typing import Callable

from torch import Tensor

from .losses import is_multi_label
from .registry import Registry

METRICS: Registry[Callable[[Tensor, Tensor], float]] = Registry("metric")


@METRICS.register("accuracy")
def accuracy(logits: Tensor, labels: Tensor) -> float:
    """Top-1 accuracy; multi-label (labels N×L): each label thresholded at sigmoid 0.5 (logit 0), the
    accuracy of every label averaged — MedMNIST's ACC for ChestMNIST."""
    if is_multi_label(labels):
        return float(((logits > 0) == labels.bool()).float().mean().item())
    return float((logits.argmax(dim=-1) == labels).float().mean().item())


#: the AUC counted for a class (or label) absent from the truth, where ROC AUC is undefined: chance level,
#: so a validation split that lacks a rare class still gets a score (scikit-learn would raise or warn and
#: give nan; MedMNIST's evaluator never meets the case, its test splits have every class)
UNDEFINED_AUC = 0.5


def _binary_auc(truth: Tensor, score: Tensor) -> float:
    """scikit-learn's ROC AUC of one class (or label) against the rest; ``UNDEFINED_AUC`` when the truth
    is all one way."""
    from sklearn.metrics import roc_auc_score  # imported on use: scikit-learn is slow to import

    truth = truth.detach().bool().flatten().cpu()
    if bool(truth.all()) or not bool(truth.any()):
        return UNDEFINED_AUC
    return float(roc_auc_score(truth.numpy(), score.detach().double().flatten().cpu().numpy()))


@METRICS.register("auc")
def auc(logits: Tensor, labels: Tensor) -> float:
    """ROC AUC as MedMNIST's evaluator (``medmnist.evaluator.getAUC``) reports it, from
    ``sklearn.metrics.roc_auc_score``: binary — the positive class's softmax score; multi-class —
    one-vs-rest per class on softmax scores, averaged over classes; multi-label (labels N×L) — per label
    on sigmoid scores, averaged. A class or label absent from ``labels`` counts ``UNDEFINED_AUC`` (0.5)."""
    if is_multi_label(labels):  # multi-label
        scores = logits.sigmoid()
        return sum(_binary_auc(labels[:, j], scores[:, j]) for j in range(labels.shape[1])) / labels.shape[1]
    scores = logits.float().softmax(dim=-1)
    if scores.shape[1] == 2:
        return _binary_auc(labels == 1, scores[:, 1])
    return sum(_binary_auc(labels == c, scores[:, c]) for c in range(scores.shape[1])) / scores.shape[1]
