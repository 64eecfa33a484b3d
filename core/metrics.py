"""Metrics by name: ``metric(logits, labels) -> float`` (fractions in [0, 1])."""

from __future__ import annotations

from typing import Callable

import torch
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


def _binary_auc(truth: Tensor, score: Tensor) -> float:
    """Area under the ROC curve (rank statistic, ties counted half); 0.5 when one class is absent."""
    truth, score = truth.bool().flatten(), score.double().flatten()
    pos, neg = int(truth.sum()), int((~truth).sum())
    if pos == 0 or neg == 0:
        return 0.5
    order = torch.argsort(score)
    ranks = torch.empty_like(score)
    sorted_scores = score[order]
    ranks[order] = torch.arange(1, score.numel() + 1, dtype=torch.double)
    # average the ranks of tied scores
    unique, inverse, counts = torch.unique(sorted_scores, return_inverse=True, return_counts=True)
    if unique.numel() < score.numel():
        first = torch.cumsum(counts, 0) - counts + 1
        mean_rank = first.double() + (counts.double() - 1) / 2
        ranks[order] = mean_rank[inverse]
    return float((ranks[truth].sum() - pos * (pos + 1) / 2) / (pos * neg))


@METRICS.register("auc")
def auc(logits: Tensor, labels: Tensor) -> float:
    """ROC AUC as MedMNIST reports it: binary — the positive class's softmax score; multi-class —
    one-vs-rest per class, averaged; multi-label (labels N×L) — per label on sigmoid scores, averaged."""
    if is_multi_label(labels):  # multi-label
        scores = logits.sigmoid()
        return sum(_binary_auc(labels[:, j], scores[:, j]) for j in range(labels.shape[1])) / labels.shape[1]
    scores = logits.float().softmax(dim=-1)
    if scores.shape[1] == 2:
        return _binary_auc(labels == 1, scores[:, 1])
    return sum(_binary_auc(labels == c, scores[:, c]) for c in range(scores.shape[1])) / scores.shape[1]
