"""The static/dynamic-memory authors' ConvNet3D (Wang et al., CVPR 2024), as ``network.name: s2d_convnet3d``.

Their evaluation (and matching) network for clips, C×T×H×W:

* ``depth`` blocks of Conv3d (kernel 3×7×7, padding 1×3×3, stride 1×2×2; ``first_width`` channels
  in the first block, ``width`` after) → ReLU → max-pool (1×2×2 in the first block, 2×2×2 after);
  no normalisation layer;
* a head: average pool (2×2×2, stride 1, for frames larger than 64 px; else 2×1×1), dropout,
  a 1×1×1 convolution to the classes, then the maximum over the remaining time steps.

Their code squeezes the spatial axes, so it runs only where they end at 1×1 (64 px at depth 3,
and 112 px); here the head averages whatever spatial positions remain, which is the same at those
sizes and lets the net run on smaller clips at a smaller ``depth`` (the 32 px action set: depth 2).
``embed`` is the flattened features (what distribution matching compares), as theirs.

Dropout draws its masks from a generator of the network's own, seeded when the network is built
(from the run's seeded generator), so evaluation stays reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor, nn

from mmdd.core.errors import ConfigError
from mmdd.core.networks import NETWORKS


@dataclass
class S2DConvNet3DConfig:
    """Options of the authors' ConvNet3D (recipe section ``network`` with ``name: s2d_convnet3d``)."""

    name: str = "s2d_convnet3d"
    depth: int = 3
    width: int = 128
    first_width: int = 64
    dropout: float = 0.5

    def check(self, path: str) -> list[str]:
        problems = [f"{path}.{key} must be ≥ 1, got {getattr(self, key)}"
                    for key in ("depth", "width", "first_width") if getattr(self, key) < 1]
        if not 0 <= self.dropout < 1:
            problems.append(f"{path}.dropout must be in [0, 1), got {self.dropout}")
        return problems


def _conv_out(side: int) -> int:
    return (side + 2 * 3 - 7) // 2 + 1


class SeededDropout(nn.Module):
    """Dropout whose masks come from a generator of its own (one per device), seeded at build time."""

    draws_random = True  # batched seeds (core/stacked.py) cannot share one module's generator

    def __init__(self, p: float, seed: int):
        super().__init__()
        self.p, self.seed = p, int(seed)
        self._gens: dict[str, torch.Generator] = {}

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0:
            return x
        key = str(x.device)
        if key not in self._gens:
            self._gens[key] = torch.Generator(device=x.device).manual_seed(self.seed)
        keep = torch.rand(x.shape, generator=self._gens[key], device=x.device, dtype=x.dtype) >= self.p
        return x * keep / (1 - self.p)


class S2DConvNet3D(nn.Module):
    def __init__(self, cfg: S2DConvNet3DConfig, in_shape: Sequence[int], num_classes: int):
        super().__init__()
        if len(in_shape) != 4:
            raise ConfigError(f"network s2d_convnet3d takes clips C×T×H×W; the inputs are {tuple(in_shape)} (the "
                              "frames of a 'static' stage need a 2-D network: set stages.static.network, e.g. convnet)")
        channels, t, h, w = (int(s) for s in in_shape)
        layers: list[nn.Module] = []
        for d in range(cfg.depth):
            out = cfg.first_width if d == 0 else cfg.width
            layers += [nn.Conv3d(channels, out, kernel_size=(3, 7, 7), padding=(1, 3, 3), stride=(1, 2, 2)),
                       nn.ReLU(inplace=True),
                       nn.MaxPool3d((1, 2, 2)) if d == 0 else nn.MaxPool3d(2)]
            channels = out
            h, w = _conv_out(h) // 2, _conv_out(w) // 2
            t = t if d == 0 else t // 2
            if min(t, h, w) < 1:
                raise ConfigError(f"network s2d_convnet3d: clips {tuple(in_shape)} shrink to nothing by block {d + 1} "
                                  f"of {cfg.depth} (each block halves the frames twice, and the time from the second "
                                  "block on); use a smaller network.depth or larger frames")
        self.features = nn.Sequential(*layers)
        large = int(in_shape[2]) > 64
        if t < 2 or (large and min(h, w) < 2):
            raise ConfigError(f"network s2d_convnet3d: the head pools 2 time steps{' and 2×2 positions' if large else ''}, "
                              f"but clips {tuple(in_shape)} leave {t}×{h}×{w} after {cfg.depth} blocks; use more "
                              "frames or a smaller network.depth")
        self.head_pool = nn.AvgPool3d((2, 2, 2) if large else (2, 1, 1), stride=1)
        self.dropout = SeededDropout(cfg.dropout, int(torch.randint(0, 2**62, (1,)).item()))
        self.logit = nn.Conv3d(channels, num_classes, kernel_size=1)
        self.feature_dim = channels * t * h * w
        self.num_classes = num_classes

    def embed(self, x: Tensor) -> Tensor:
        return self.features(x).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        scores = self.logit(self.dropout(self.head_pool(self.features(x))))  # N×K×T'×H'×W'
        return scores.mean(dim=(3, 4)).amax(dim=2)


def _build(cfg: S2DConvNet3DConfig, in_shape: Sequence[int], num_classes: int, spatial_dims: int = 3) -> nn.Module:
    return S2DConvNet3D(cfg, in_shape, num_classes)


NETWORKS.add("s2d_convnet3d", (S2DConvNet3DConfig, _build))
