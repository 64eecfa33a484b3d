"""What every matcher shares: its registry entry and the context it is built with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from ..data import ClassIndex
from ..registry import Registry
from ..synthetic import SyntheticSet


@dataclass
class MatchingContext:
    """What a domain hands a matcher: how to make networks and augment, and where to compute."""

    make_network: Callable[[torch.Generator], nn.Module]
    augment: object | None  # an augmenter with .siamese(list_of_batches, gen), or None
    device: torch.device
    experts: object | None = None  # an ExpertBuffer, for matchers whose spec needs_experts


class Matcher:
    """Base of every matcher: a loss between real and synthetic data; state between iterations
    lives inside it. The pipeline calls every method below; the defaults fit a stateless matcher."""

    def __call__(self, syn: SyntheticSet, real: ClassIndex, gen: torch.Generator) -> Tensor:  # pragma: no cover
        raise NotImplementedError

    def state_dict(self) -> dict:
        """What the checkpoint keeps so a resumed run continues exactly (DC's network, MTT's iteration)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` (an empty mapping from an older checkpoint leaves the start state)."""

    def initial_label_logits(self, inputs: Tensor, labels: Tensor | None = None) -> Tensor | None:
        """Logits to start learned soft labels from (MTT: an expert's), or None for one-hot starts;
        ``labels`` are the samples' classes."""
        return None

    def log_fields(self) -> dict:
        """The matcher's own counters, added to each ``metrics.jsonl`` record (PTM's resets)."""
        return {}

    def bind_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """Hear of the optimizer that steps the synthetic set (PTM clears a re-initialised row's momentum)."""


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


#: method name → :class:`MatcherSpec`; each matcher module adds its own entries
MATCHERS: Registry[MatcherSpec] = Registry("method")
