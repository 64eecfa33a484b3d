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
    lives inside it. The pipeline calls every method below; the defaults fit a stateless matcher.

    A matcher implements :meth:`draw`, the loss of one draw (a network, real batches, an expert
    segment — all from ``gen``). One iteration is :meth:`begin_iteration`, one or more draws (their
    losses averaged: ``distributed.draws_per_rank`` × torchrun processes), the update, then
    :meth:`end_iteration`, which advances per-iteration counters exactly once. Calling the matcher
    is a whole iteration of a single draw. A matcher that overrides ``__call__`` instead of
    ``draw`` runs only single-draw iterations.
    """

    def __call__(self, syn: SyntheticSet, real: ClassIndex, gen: torch.Generator) -> Tensor:
        """One whole iteration of a single draw from ``gen``: begin, draw, end."""
        self.begin_iteration(syn, real, gen)
        loss = self.draw(syn, real, gen)
        self.end_iteration()
        return loss

    def draw(self, syn: SyntheticSet, real: ClassIndex, gen: torch.Generator) -> Tensor:  # pragma: no cover
        """The loss of one draw, every random choice from ``gen``."""
        raise NotImplementedError(f"{type(self).__name__} implements neither draw(syn, real, gen) nor __call__")

    def begin_iteration(self, syn: SyntheticSet, real: ClassIndex, gen: torch.Generator) -> None:
        """Called once per iteration before its draws, with a generator every process shares (the
        run's own when the iteration is one draw): changes to the whole set go here (PTM's overlap
        mitigation), so they happen once and identically on every rank."""

    def end_iteration(self) -> None:
        """Called once per iteration after its draws: advance per-iteration counters (MTT's iteration)."""

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
    #: whether an iteration may average several independent draws (torchrun processes,
    #: ``distributed.draws_per_rank`` > 1): true for a matcher whose draws share no state beyond
    #: what :meth:`Matcher.begin_iteration` / :meth:`Matcher.end_iteration` keep
    multi_draw: bool = False
    #: why it may not, for the error that refuses such a run
    single_draw_reason: str = "the matcher does not declare that an iteration may average several draws"


def siamese(context: MatchingContext, batches: list[Tensor], gen: torch.Generator) -> list[Tensor]:
    """Apply one shared augmentation draw to every batch (no-op without an augmenter)."""
    if context.augment is None:
        return batches
    return context.augment.siamese(batches, gen)


#: method name → :class:`MatcherSpec`; each matcher module adds its own entries
MATCHERS: Registry[MatcherSpec] = Registry("method")
