"""Containers for real data, shared by every domain.

A loader returns :class:`DataSplits` whose tensors are already in the distillation space of the
domain (for images: float pixels in [0, 1], shape N×C×H×W). :class:`ClassIndex` answers the one
question the matchers ask of real data: "give me n samples of class c", drawn with a seeded
generator.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from .errors import DataError


@dataclass
class Split:
    """One split of a dataset: inputs (N×...) and integer labels (N)."""

    inputs: Tensor
    labels: Tensor

    def __post_init__(self) -> None:
        if self.inputs.shape[0] != self.labels.shape[0]:
            raise DataError(
                f"split has {self.inputs.shape[0]} inputs but {self.labels.shape[0]} labels; "
                "expected one label per input"
            )
        self.labels = self.labels.long()

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def subset(self, index: Tensor) -> "Split":
        return Split(self.inputs[index], self.labels[index])


@dataclass
class DataSplits:
    """Train / optional validation / test splits of one dataset."""

    train: Split
    test: Split
    num_classes: int
    class_names: list[str]
    val: Split | None = None
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.class_names) != self.num_classes:
            raise DataError(
                f"{len(self.class_names)} class names for {self.num_classes} classes"
            )


class ClassIndex:
    """Per-class view of a split, for class-conditional sampling.

    >>> real = ClassIndex(split, num_classes)
    >>> real.sample(3, 64, gen)   # 64 inputs of class 3, drawn without replacement
    """

    def __init__(self, split: Split, num_classes: int):
        self.split = split
        self.num_classes = num_classes
        self.indices = [
            torch.nonzero(split.labels == c, as_tuple=False).flatten() for c in range(num_classes)
        ]

    def count(self, cls: int) -> int:
        return int(self.indices[cls].numel())

    def counts(self) -> list[int]:
        return [self.count(c) for c in range(self.num_classes)]

    def sample_indices(self, cls: int, n: int, gen: torch.Generator) -> Tensor:
        pool = self.indices[cls]
        if pool.numel() == 0:
            raise DataError(f"class {cls} has no samples in this split")
        n = min(n, pool.numel())
        perm = torch.randperm(pool.numel(), generator=gen)[:n]
        return pool[perm]

    def sample(self, cls: int, n: int, gen: torch.Generator) -> Tensor:
        """Up to ``n`` inputs of class ``cls`` (all of them if the class has fewer)."""
        return self.split.inputs[self.sample_indices(cls, n, gen)]

    def of_class(self, cls: int) -> Tensor:
        return self.split.inputs[self.indices[cls]]
