"""ZCA whitening of images, as MTT (and TESLA, DATM) distil CIFAR at low IPC.

Fitted on the training split after the per-channel standardisation: with ``X`` the N×D flattened
images, ``μ`` their mean and ``C = (X − μ)ᵀ(X − μ) / (N − 1) = U S Uᵀ``, an image ``x`` maps to
``(x − μ) U (S + ε)^{-1/2} Uᵀ`` and back with ``U (S + ε)^{1/2} Uᵀ`` (ε regularises the small
eigenvalues; MTT uses 0.1). Every split goes through the same transform, so real batches,
synthetic images, evaluation and the test split all live in the whitened space; renders and
exports invert it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class ZCA:
    mean: Tensor  # D
    whiten: Tensor  # D×D
    unwhiten: Tensor  # D×D
    epsilon: float

    @classmethod
    def fit(cls, images: Tensor, epsilon: float = 0.1) -> "ZCA":
        x = images.flatten(1).double()
        mean = x.mean(dim=0)
        centred = x - mean
        cov = centred.T @ centred / max(1, x.shape[0] - 1)
        eigvals, eigvecs = torch.linalg.eigh(cov)
        eigvals = eigvals.clamp_min(0.0)
        whiten = eigvecs @ torch.diag((eigvals + epsilon).rsqrt()) @ eigvecs.T
        unwhiten = eigvecs @ torch.diag((eigvals + epsilon).sqrt()) @ eigvecs.T
        return cls(mean.float(), whiten.float(), unwhiten.float(), float(epsilon))

    def apply(self, images: Tensor) -> Tensor:
        flat = images.flatten(1).float()
        return ((flat - self.mean) @ self.whiten).view_as(images)

    def invert(self, images: Tensor) -> Tensor:
        flat = images.flatten(1).float()
        return (flat @ self.unwhiten + self.mean).view_as(images)
