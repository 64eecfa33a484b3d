"""The training loss for every kind of classification target in the library.

Targets come in three forms, told apart by shape and dtype:

* class indices — integer, shape ``[N]``: softmax cross-entropy;
* class probabilities — floating, shape ``[N, C]`` (learned soft labels): cross-entropy against
  the distribution;
* multi-hot labels — integer 0/1, shape ``[N, L]`` (multi-label tasks such as ChestMNIST): one
  sigmoid binary cross-entropy per label, averaged over labels and samples.

Every trainer (experts, evaluation, the matchers' networks and students) calls
:func:`classification_loss`, so a multi-label dataset needs no option of its own.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def is_multi_label(targets: Tensor) -> bool:
    """True for multi-hot targets: integer 0/1, one row of L labels per sample."""
    return targets.dim() == 2 and not targets.is_floating_point()


def classification_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean loss of ``logits`` (N×C) against class indices, class probabilities or multi-hot rows."""
    if is_multi_label(targets):
        return F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype))
    return F.cross_entropy(logits, targets)
