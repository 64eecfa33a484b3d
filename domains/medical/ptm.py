"""Progressive trajectory matching (PTM) with overlap mitigation, for medical images.

**Progressive schedule.** Every matching segment starts at the expert's epoch 0; the segment's
end moves later over the run, easy to hard. With ``I`` iterations, ``a = initial_end_epoch`` and
``b = final_end_epoch`` (default: the experts' last epoch), iteration ``i`` (0-based) matches
``0 → a + ⌊i·(b − a + 1) / I⌋`` (capped at ``b``): ``b − a + 1`` equal stages, the first ending at
``a``, the last at ``b``. Everything else — student steps, learnable lr, groups, solvers — is the
core trajectory matcher, which PTM drives through its ``schedule`` hook.

**Overlap mitigation.** Every ``overlap_every`` iterations (0: never) the synthetic samples are
compared with a Gaussian kernel ``k(x, y) = exp(−‖x − y‖² / (2σ²))`` on their flattened inputs,
``σ²`` the median pairwise squared distance of the synthetic set (the usual MMD bandwidth). For a
sample ``i`` of class ``c``:

* within-class redundancy ``w_i = max_{j ∈ c, j < i} k(x_i, x_j)`` — similarity to an *earlier*
  sample of its class, so of two near-duplicates only the later one counts as redundant;
* across-class overlap ``v_i = mean_{j ∉ c} k(x_i, x_j) − mean_{j ∈ c, j ≠ i} k(x_i, x_j)`` — minus
  the MMD witness of its class against the others at ``x_i``: positive when ``x_i`` sits closer
  to the other classes' samples than to its own. A class with a single synthetic sample has no
  other member to compare with; its own-class term is then the sample's self-similarity
  ``k(x_i, x_i) = 1``, which gives ``v_i = mean_{j ∉ c} k(x_i, x_j) − 1 ≤ 0``: the across rule
  never flags a lone sample at ``across_threshold ≥ 0`` (with a 0 own-class term instead, every
  sample at 1 per class was re-initialised at every check).

Exactly the samples with ``w_i > within_threshold`` or ``v_i > across_threshold`` are
re-initialised, each from a random real sample of its class (drawn from the run's generator; in a
multi-label task the sample's label row comes along), their rows of the optimizer's momentum are
cleared (a new sample does not inherit the old one's velocity), and training goes on; the count is
logged by the matcher (``overlap_resets``). The check runs once per iteration, before its draws
(``begin_iteration``); when an iteration is several draws (torchrun, ``distributed.draws_per_rank``)
its real samples come from the generator every process shares (``core/distributed.Draws``), so
every rank re-initialises the same rows identically.

**What is the paper's and what is mmdd's reading.** The paper (Yu et al., "Progressive trajectory
matching for medical dataset distillation") gives the progressive extension of the matched
segment and MMD-based overlap detection with re-initialisation. The schedule formula above (equal
stages from ``initial_end_epoch`` to ``final_end_epoch``), the kernel bandwidth, the two scores and
their thresholds, re-initialisation from a random real sample of the class and the cleared momentum
are mmdd's reading of it. PTM always starts a segment at epoch 0, so MTT's ``max_start_epoch`` and
``expert_epochs`` do not apply: a recipe that sets them gets a warning naming them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from mmdd.core.data import ClassIndex
from mmdd.core.errors import ConfigError
from mmdd.core.matchers.base import MATCHERS, MatcherSpec, MatchingContext
from mmdd.core.matchers.trajectory import TMConfig, TrajectoryMatcher
from mmdd.core.synthetic import SyntheticSet


@dataclass
class PTMConfig(TMConfig):
    """Recipe section ``method`` for ``name: ptm`` (every MTT option, plus the schedule and overlap)."""

    #: MTT options PTM does not read (segments start at epoch 0 and end where the schedule says):
    #: a recipe that sets one gets a warning naming it
    IGNORED_KEYS: ClassVar[tuple[str, ...]] = ("max_start_epoch", "min_start_epoch", "expert_epochs")

    name: str = "ptm"
    initial_end_epoch: int = 1
    final_end_epoch: int | None = None
    overlap_every: int = 0
    within_threshold: float = 0.95
    across_threshold: float = 0.0

    def check(self, path: str) -> list[str]:
        problems = super().check(path)
        if self.initial_end_epoch < 1:
            problems.append(f"{path}.initial_end_epoch must be ≥ 1, got {self.initial_end_epoch}")
        if self.final_end_epoch is not None and self.final_end_epoch < self.initial_end_epoch:
            problems.append(f"{path}.final_end_epoch must be ≥ initial_end_epoch ({self.initial_end_epoch}) or "
                            f"null (the experts' last epoch), got {self.final_end_epoch}")
        if self.overlap_every < 0:
            problems.append(f"{path}.overlap_every must be ≥ 0 (0 = never), got {self.overlap_every}")
        if not 0 < self.within_threshold <= 1:
            problems.append(f"{path}.within_threshold must be in (0, 1] (a kernel similarity), got "
                            f"{self.within_threshold}")
        if not -1 <= self.across_threshold <= 1:
            problems.append(f"{path}.across_threshold must be in [-1, 1], got {self.across_threshold}")
        return problems


def progressive_end(iteration: int, iterations: int, initial_end: int, final_end: int) -> int:
    """The segment end of ``iteration`` (0-based) under the progressive schedule (module docstring)."""
    stages = final_end - initial_end + 1
    return min(final_end, initial_end + iteration * stages // max(iterations, 1))


def overlap_scores(inputs: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """(within-class redundancy w, across-class overlap v) per sample, as in the module docstring."""
    flat = inputs.detach().flatten(1).float()
    d2 = torch.cdist(flat, flat).pow(2)
    n = flat.shape[0]
    off = ~torch.eye(n, dtype=torch.bool, device=flat.device)
    sigma2 = d2[off].median().clamp_min(1e-12) if n > 1 else torch.tensor(1.0)
    k = torch.exp(-d2 / (2 * sigma2))
    same = labels.view(-1, 1) == labels.view(1, -1)
    earlier = torch.ones(n, n, dtype=torch.bool, device=flat.device).tril(-1)
    within = torch.where(same & earlier, k, torch.zeros_like(k)).amax(dim=1)
    own = same & off
    other = ~same
    own_count = own.sum(1)
    own_mean = torch.where(own_count > 0, (k * own).sum(1) / own_count.clamp_min(1), torch.ones_like(k[:, 0]))
    other_mean = (k * other).sum(1) / other.sum(1).clamp_min(1)
    return within, other_mean - own_mean


@torch.no_grad()
def mitigate_overlap(syn: SyntheticSet, real: ClassIndex, gen: torch.Generator, within_threshold: float,
                     across_threshold: float, optimizer: torch.optim.Optimizer | None = None) -> Tensor:
    """Re-initialise from real data exactly the samples above a threshold, clearing their rows of the
    optimizer's state (momentum); return their indices."""
    inputs, _ = syn.decode()
    labels = syn.labels
    within, across = overlap_scores(inputs, labels)
    chosen = torch.nonzero((within > within_threshold) | (across > across_threshold)).flatten().cpu()
    multi_hot = getattr(syn, "multi_hot", None)
    for i in chosen.tolist():
        row = real.sample_indices(int(labels[i]), 1, gen)[0]
        syn.inputs[i].copy_(real.split.inputs[row].to(syn.inputs.device, syn.inputs.dtype))
        if multi_hot is not None:
            multi_hot[i].copy_(real.split.labels[row])
    if optimizer is not None and chosen.numel():
        for value in optimizer.state.get(syn.inputs, {}).values():  # SGD: momentum_buffer; Adam: both moments
            if torch.is_tensor(value) and value.shape == syn.inputs.shape:
                value[chosen.to(value.device)] = 0
    return chosen


class ProgressiveTrajectoryMatcher(TrajectoryMatcher):
    """The core trajectory matcher, driven by the progressive schedule, with overlap mitigation."""

    random_start = False

    def __init__(self, cfg: PTMConfig, context: MatchingContext):
        super().__init__(cfg, context)
        last = self.experts.num_epochs
        self.final_end = last if cfg.final_end_epoch is None else cfg.final_end_epoch
        if self.final_end > last:
            raise ConfigError(f"method.final_end_epoch={self.final_end} but the experts in {self.experts.root} have "
                              f"{last} epochs")
        self.schedule = self.progressive
        self.overlap_resets = 0
        self.last_segment = (0, cfg.initial_end_epoch)
        self.optimizer = None

    def bind_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer

    def progressive(self, iteration: int, gen: torch.Generator) -> tuple[int, int]:
        """The schedule hook: 0 → the progressive end of this iteration."""
        self.last_segment = (0, progressive_end(iteration, self.cfg.iterations, self.cfg.initial_end_epoch,
                                                self.final_end))
        return self.last_segment

    def log_fields(self) -> dict:
        start, end = self.last_segment
        return {"segment_end": end, "overlap_resets": self.overlap_resets}

    def state_dict(self) -> dict:
        return {**super().state_dict(), "overlap_resets": self.overlap_resets}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.overlap_resets = int(state.get("overlap_resets", 0))

    def begin_iteration(self, syn: SyntheticSet, real: ClassIndex, gen: torch.Generator) -> None:
        """Overlap mitigation, once per iteration before its draws: ``gen`` is the generator every
        process shares, and the set is identical on every rank, so all re-initialise the same rows
        from the same real samples (and clear the same momentum rows)."""
        every = self.cfg.overlap_every
        if every and self.iteration > 0 and self.iteration % every == 0:
            chosen = mitigate_overlap(syn, real, gen, self.cfg.within_threshold, self.cfg.across_threshold,
                                      self.optimizer)
            self.overlap_resets += int(chosen.numel())


SPEC = MATCHERS.add("ptm", MatcherSpec(config=PTMConfig, build=ProgressiveTrajectoryMatcher, needs_experts=True,
                                      multi_draw=True))
