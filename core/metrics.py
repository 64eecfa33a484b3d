"""Metrics by name: ``metric(logits, labels) -> float`` (fractions in [0, 1])."""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from .registry import Registry

METRICS: Registry[Callable[[Tensor, Tensor], float]] = Registry("metric")


@METRICS.register("accuracy")
def accuracy(logits: Tensor, labels: Tensor) -> float:
    return float((logits.argmax(dim=-1) == labels).float().mean().item())
