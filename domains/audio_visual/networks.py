"""The paired network of the audio-visual domain (``network.name: av_convnet``).

Two core ConvNets — one on log-mel maps, one on frames — whose feature maps are average-pooled to
``embed_grid``² cells, so both embeddings have ``width · embed_grid²`` values (the AVDD authors pool
the audio map adaptively to the visual net's 7×7 grid). Each has its own linear head. Matching reads
:meth:`AVNet.embed_audio` / :meth:`AVNet.embed_visual`; evaluation trains both heads with
CE(audio) + CE(visual) and predicts with the mean of the two softmaxes (late fusion).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from mmdd.core.errors import ConfigError
from mmdd.core.networks import NETWORKS
from mmdd.core.networks.convnet import ConvNet

from .batch import AVBatch
from .configs import AVNetConfig


class _Tower(nn.Module):
    """A ConvNet's feature stack pooled to ``grid``×``grid`` and flattened, then a linear head."""

    def __init__(self, in_shape: Sequence[int], num_classes: int, cfg: AVNetConfig, depth: int):
        super().__init__()
        net = ConvNet(in_shape, num_classes, depth=depth, width=cfg.width, norm=cfg.norm, pooling=cfg.pooling,
                      activation=cfg.activation, spatial_dims=2)
        self.features = net.features
        self.pool = nn.AdaptiveAvgPool2d(cfg.embed_grid)
        self.feature_dim = cfg.width * cfg.embed_grid ** 2
        self.head = nn.Linear(self.feature_dim, num_classes)

    def embed(self, x: Tensor) -> Tensor:
        return self.pool(self.features(x)).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.embed(x))


class AVNet(nn.Module):
    """``audio`` and ``visual`` towers; ``forward`` gives the late-fusion log-probabilities."""

    def __init__(self, audio_shape: Sequence[int], frame_shape: Sequence[int], num_classes: int, cfg: AVNetConfig):
        super().__init__()
        self.audio = _Tower(audio_shape, num_classes, cfg, cfg.audio_depth or cfg.depth)
        self.visual = _Tower(frame_shape, num_classes, cfg, cfg.depth)
        self.feature_dim = self.audio.feature_dim
        self.visual_lr_scale = cfg.visual_lr_scale

    def embed_audio(self, audio: Tensor) -> Tensor:
        return self.audio.embed(audio)

    def embed_visual(self, frames: Tensor) -> Tensor:
        return self.visual.embed(frames)

    def embed(self, x: AVBatch) -> Tensor:
        """Both embeddings side by side (what herding / k-center compare)."""
        return torch.cat([self.embed_audio(x.audio), self.embed_visual(x.frames)], dim=1)

    def logits(self, x: AVBatch) -> tuple[Tensor, Tensor]:
        return self.audio(x.audio), self.visual(x.frames)

    def forward(self, x: AVBatch) -> Tensor:
        """log of the mean of the two softmaxes (the late-fusion prediction, a valid logit vector)."""
        la, lv = self.logits(x)
        return torch.logaddexp(la.log_softmax(-1), lv.log_softmax(-1)) - torch.log(torch.tensor(2.0, device=la.device))

    def param_groups(self, lr: float) -> list[dict]:
        """Evaluation's optimiser groups: the audio tower and both heads at ``lr``, the visual encoder at
        ``lr · visual_lr_scale``."""
        visual = list(self.visual.features.parameters())
        rest = [p for n, p in self.named_parameters() if not n.startswith("visual.features.")]
        return [{"params": rest, "lr": lr}, {"params": visual, "lr": lr * self.visual_lr_scale}]


def _build(cfg: AVNetConfig, in_shape, num_classes: int, spatial_dims: int = 2) -> AVNet:
    if not (isinstance(in_shape, tuple) and len(in_shape) == 2 and all(isinstance(s, tuple) for s in in_shape)):
        raise ConfigError("network.name: av_convnet needs paired inputs (the audio_visual domain); got inputs of "
                          f"shape {in_shape}")
    audio_shape, frame_shape = in_shape
    return AVNet(audio_shape, frame_shape, num_classes, cfg)


NETWORKS.add("av_convnet", (AVNetConfig, _build))


def describe(cfg: AVNetConfig) -> str:
    scale = f", visual lr ×{cfg.visual_lr_scale:g}" if cfg.visual_lr_scale != 1 else ""
    depth = f"{cfg.depth}" if not cfg.audio_depth or cfg.audio_depth == cfg.depth else f"{cfg.depth}/audio {cfg.audio_depth}"
    return (f"AV ConvNet-{depth} w{cfg.width} {cfg.norm}/{cfg.pooling} (audio + visual towers pooled to "
            f"{cfg.embed_grid}×{cfg.embed_grid}, late fusion{scale})")
