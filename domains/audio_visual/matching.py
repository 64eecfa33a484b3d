"""Audio-visual distribution matching: ``method.name: av_dm`` and ``method.name: avdd``.

The draw is the core :class:`~mmdd.core.matchers.distribution.DistributionMatcher`'s — a freshly
initialised paired network (:class:`~.networks.AVNet`, weights from the draw's generator) and, per
class, a real batch of ``batch_real`` pairs — with the loss of one class (``class_loss``) replaced. Each modality is augmented
with one siamese draw shared by its real and synthetic batch (the modalities draw independently).
With μ the mean embedding over a batch and Δa = μa_real − μa_syn, Δv = μv_real − μv_syn:

* ``av_dm``: ``audio_weight·‖Δa‖² + visual_weight·‖Δv‖²`` (DM on each modality);
* ``avdd`` (Kushwaha et al., TMLR 2024) adds implicit cross-matching
  ``icm_weight·‖(μa_real + μv_real) − (μa_syn + μv_syn)‖²`` = ``icm_weight·‖Δa + Δv‖²`` and
  cross-modal gap matching ``cgm_weight·‖(μa_real + μv_syn) − (μv_real + μa_syn)‖²`` =
  ``cgm_weight·‖Δa − Δv‖²`` (both 10 in the paper).

**A property of the published loss.** ‖Δa + Δv‖² + ‖Δa − Δv‖² = 2‖Δa‖² + 2‖Δv‖²: with
``icm_weight == cgm_weight == λ`` the two cross-modal terms cancel their cross products and AVDD's
loss is exactly (1 + 2λ) times AV-DM's (21× with the paper's λ = 10) — the same gradient direction,
a 21× larger step. Unequal weights keep a cross-modal term ((λ_icm − λ_cgm)·2⟨Δa, Δv⟩); the test
suite checks both. The loss is summed over classes and the set takes one step per iteration (the
public code steps once per class, which lets the momentum of the other classes' rows move them
C − 1 extra times per iteration).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mmdd.core.checks import at_least
from mmdd.core.matchers.base import MATCHERS, MatcherSpec
from mmdd.core.matchers.distribution import DistributionMatcher


@dataclass
class AVDMConfig:
    """Recipe section ``method`` for ``name: av_dm`` (per-modality distribution matching)."""

    name: str = "av_dm"
    iterations: int = 5000
    lr_audio: float = 0.2
    lr_frames: float = 0.2
    momentum: float = 0.5
    batch_real: int = 128
    audio_weight: float = 1.0
    visual_weight: float = 1.0

    def check(self, path: str) -> list[str]:
        problems = at_least(self, path, ("iterations", "batch_real"))
        for key in ("lr_audio", "lr_frames", "audio_weight", "visual_weight"):
            if getattr(self, key) < 0:
                problems.append(f"{path}.{key} must be ≥ 0, got {getattr(self, key)}")
        if self.lr_audio <= 0 and self.lr_frames <= 0:
            problems.append(f"{path}: lr_audio or lr_frames must be > 0 (else nothing learns)")
        if not 0 <= self.momentum < 1:
            problems.append(f"{path}.momentum must be in [0, 1), got {self.momentum}")
        return problems

    @property
    def icm(self) -> float:
        return 0.0

    @property
    def cgm(self) -> float:
        return 0.0


@dataclass
class AVDDConfig(AVDMConfig):
    """Recipe section ``method`` for ``name: avdd``: AV-DM plus implicit cross-matching and
    cross-modal gap matching."""

    name: str = "avdd"
    icm_weight: float = 10.0
    cgm_weight: float = 10.0

    def check(self, path: str) -> list[str]:
        problems = super().check(path)
        for key in ("icm_weight", "cgm_weight"):
            if getattr(self, key) < 0:
                problems.append(f"{path}.{key} must be ≥ 0, got {getattr(self, key)}")
        return problems

    @property
    def icm(self) -> float:
        return self.icm_weight

    @property
    def cgm(self) -> float:
        return self.cgm_weight


def avdd_terms(real_a: Tensor, syn_a: Tensor, real_v: Tensor, syn_v: Tensor) -> dict[str, Tensor]:
    """The four unweighted terms of one class from its embeddings (rows = samples)."""
    ma_r, ma_s, mv_r, mv_s = real_a.mean(0), syn_a.mean(0), real_v.mean(0), syn_v.mean(0)
    return {"audio": ((ma_r - ma_s) ** 2).sum(), "visual": ((mv_r - mv_s) ** 2).sum(),
            "icm": (((ma_r + mv_r) - (ma_s + mv_s)) ** 2).sum(),
            "cgm": (((ma_r + mv_s) - (mv_r + ma_s)) ** 2).sum()}


def weighted_loss(terms: dict[str, Tensor], cfg: AVDMConfig) -> Tensor:
    loss = cfg.audio_weight * terms["audio"] + cfg.visual_weight * terms["visual"]
    if cfg.icm:
        loss = loss + cfg.icm * terms["icm"]
    if cfg.cgm:
        loss = loss + cfg.cgm * terms["cgm"]
    return loss


class AVMatcher(DistributionMatcher):
    """Core distribution matching (a fresh frozen network per draw, per class a real batch and one
    siamese augmentation draw) with the audio-visual loss of one class."""

    def class_loss(self, net, real_batch, syn_batch) -> Tensor:
        with torch.no_grad():
            real_a, real_v = net.embed_audio(real_batch.audio), net.embed_visual(real_batch.frames)
        terms = avdd_terms(real_a, net.embed_audio(syn_batch.audio), real_v, net.embed_visual(syn_batch.frames))
        return weighted_loss(terms, self.cfg)


MATCHERS.add("av_dm", MatcherSpec(config=AVDMConfig, build=AVMatcher, multi_draw=True))
MATCHERS.add("avdd", MatcherSpec(config=AVDDConfig, build=AVMatcher, multi_draw=True))
