"""Distribution matching (DM, Zhao & Bilen 2023) and its Gaussian-kernel MMD variant.

Every draw takes a freshly initialised network (weights from the draw's generator: the run's, or
each draw's own when an iteration averages several) and, for each class, compares the embeddings
of a real batch and of that class's synthetic samples after one shared (siamese) augmentation draw:

* ``kernel: linear`` — ‖mean φ(real) − mean φ(syn)‖², the original DM loss (linear-kernel MMD);
* ``kernel: gaussian`` — biased MMD² with k(a, b) = exp(−‖a − b‖² / (2σ²)); σ is
  ``bandwidth``, or the median pairwise distance of the real embeddings when it is null.

The loss is summed over classes. Only the synthetic inputs receive gradients; the network is
frozen and the real embeddings are computed without a graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from ..checks import at_least, positive
from ..data import ClassIndex
from ..synthetic import SyntheticSet
from .base import MATCHERS, Matcher, MatcherSpec, MatchingContext, siamese


@dataclass
class DMConfig:
    """Recipe section ``method`` for ``name: dm``."""

    name: str = "dm"
    iterations: int = 20000
    lr_inputs: float = 1.0
    lr_labels: float = 0.0
    lr_lr: float = 0.0
    momentum: float = 0.5
    batch_real: int = 256
    kernel: Literal["linear", "gaussian"] = "linear"
    bandwidth: float | None = None

    def check(self, path: str) -> list[str]:
        problems = at_least(self, path, ("iterations", "batch_real")) + positive(self, path, ("lr_inputs",))
        if not 0 <= self.momentum < 1:
            problems.append(f"{path}.momentum must be in [0, 1), got {self.momentum}")
        if self.bandwidth is not None and self.bandwidth <= 0:
            problems.append(f"{path}.bandwidth must be > 0 or null (median heuristic), got {self.bandwidth}")
        return problems


def linear_mmd(a: Tensor, b: Tensor) -> Tensor:
    return ((a.mean(0) - b.mean(0)) ** 2).sum()


def gaussian_mmd(a: Tensor, b: Tensor, bandwidth: float | Tensor) -> Tensor:
    gamma = 1.0 / (2.0 * bandwidth**2)
    k_aa = torch.exp(-gamma * torch.cdist(a, a).pow(2)).mean()
    k_bb = torch.exp(-gamma * torch.cdist(b, b).pow(2)).mean()
    k_ab = torch.exp(-gamma * torch.cdist(a, b).pow(2)).mean()
    return k_aa + k_bb - 2 * k_ab


def median_bandwidth(x: Tensor) -> Tensor:
    dist = torch.cdist(x, x)
    off = dist[~torch.eye(len(x), dtype=torch.bool, device=x.device)]
    return off.median().clamp_min(1e-6) if off.numel() else torch.tensor(1.0, device=x.device)


class DistributionMatcher(Matcher):
    def __init__(self, cfg: DMConfig, context: MatchingContext):
        self.cfg = cfg
        self.context = context

    def distance(self, real_emb: Tensor, syn_emb: Tensor) -> Tensor:
        if self.cfg.kernel == "linear":
            return linear_mmd(real_emb, syn_emb)
        bandwidth = self.cfg.bandwidth if self.cfg.bandwidth is not None else median_bandwidth(real_emb)
        return gaussian_mmd(real_emb, syn_emb, bandwidth)

    def draw(self, syn: SyntheticSet, real: ClassIndex, gen: torch.Generator) -> Tensor:
        net = self.context.make_network(gen)
        net.train()
        for p in net.parameters():
            p.requires_grad_(False)
        inputs, _ = syn.decode()
        device = self.context.device
        loss = torch.zeros((), device=device)
        for cls, rows in enumerate(syn.class_slices()):
            real_batch = real.sample(cls, self.cfg.batch_real, gen).to(device)
            real_batch, syn_batch = siamese(self.context, [real_batch, inputs[rows]], gen)
            loss = loss + self.class_loss(net, real_batch, syn_batch)
        return loss

    def class_loss(self, net, real_batch, syn_batch) -> Tensor:
        """One class's loss on the frozen ``net`` from its (augmented) real and synthetic batches: the
        distance of their embeddings; a matcher over other embeddings (audio-visual) overrides this."""
        with torch.no_grad():
            real_emb = net.embed(real_batch)
        return self.distance(real_emb, net.embed(syn_batch))


SPEC = MATCHERS.add("dm", MatcherSpec(config=DMConfig, build=DistributionMatcher, multi_draw=True))
