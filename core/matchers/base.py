"""What every matcher shares: its registry entry and the context it is built with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import torch
from torch import Tensor, nn

from ..data import ClassIndex
from ..synthetic import SyntheticSet


@dataclass
class MatchingContext:
    """What a domain hands a matcher: how to make networks and augment, and where to compute."""

    make_network: Callable[[torch.Generator], nn.Module]
    augment: object | None  # an augmenter with .siamese(list_of_batches, gen), or None
    device: torch.device
    experts: object | None = None  # an ExpertBuffer, for matchers whose spec needs_experts


class Matcher(Protocol):
    """A loss between real and synthetic data; state between iterations lives inside it."""

    def __call__(self, syn: SyntheticSet, real: ClassIndex, gen: torch.Generator) -> Tensor: ...


@dataclass
class MatcherSpec:
    """Registry entry: the method's typed options and how to build the matcher from them."""

    config: type
    build: Callable[[object, MatchingContext], Matcher]
    needs_experts: bool = False


def siamese(context: MatchingContext, batches: list[Tensor], gen: torch.Generator) -> list[Tensor]:
    """Apply one shared augmentation draw to every batch (no-op without an augmenter)."""
    if context.augment is None:
        return batches
    return context.augment.siamese(batches, gen)
