"""MONAI networks in the core network registry (``network.name: monai``, ``arch``: resnet10 /
resnet18 / densenet121), 2D or 3D following the data, for cross-architecture evaluation."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from mmdd.core.networks import NETWORKS

from .configs import MonaiNetConfig


class MonaiClassifier(nn.Module):
    """A MONAI network with the ``embed()`` every mmdd network offers (its pooled features)."""

    def __init__(self, cfg: MonaiNetConfig, in_shape: Sequence[int], num_classes: int, spatial_dims: int):
        super().__init__()
        from monai.networks import nets

        channels = int(in_shape[0])
        if cfg.arch == "densenet121":
            self.net = nets.DenseNet121(spatial_dims=spatial_dims, in_channels=channels, out_channels=num_classes)
            self.head_name = "class_layers.out"
        else:
            build = nets.resnet10 if cfg.arch == "resnet10" else nets.resnet18
            self.net = build(spatial_dims=spatial_dims, n_input_channels=channels, num_classes=num_classes,
                             conv1_t_stride=1, no_max_pool=min(in_shape[1:]) < 64)
            self.head_name = "fc"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        features = {}
        head = self.net.get_submodule(self.head_name)
        handle = head.register_forward_hook(lambda m, inp, out: features.setdefault("x", inp[0]))
        try:
            self.net(x)
        finally:
            handle.remove()
        return features["x"]


def _build(cfg: MonaiNetConfig, in_shape: Sequence[int], num_classes: int, spatial_dims: int = 2) -> nn.Module:
    return MonaiClassifier(cfg, in_shape, num_classes, spatial_dims)


NETWORKS.add("monai", (MonaiNetConfig, _build))
