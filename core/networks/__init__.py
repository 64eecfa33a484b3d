"""Networks by name: ``create_network(config, in_shape, num_classes, gen)``."""

from __future__ import annotations

from dataclasses import asdict
from typing import Callable, Sequence

import torch
from torch import nn

from ..registry import Registry
from .convnet import ConvNet, ConvNetConfig

#: name → (config dataclass, builder(config, in_shape, num_classes, spatial_dims) -> nn.Module)
NETWORKS: Registry[tuple[type, Callable]] = Registry("network")


def _build_convnet(cfg: ConvNetConfig, in_shape: Sequence[int], num_classes: int, spatial_dims: int = 2) -> nn.Module:
    options = {k: v for k, v in asdict(cfg).items() if k != "name"}
    return ConvNet(in_shape, num_classes, spatial_dims=spatial_dims, **options)


NETWORKS.add("convnet", (ConvNetConfig, _build_convnet))


def seeded(build: Callable[[], nn.Module], gen: torch.Generator) -> nn.Module:
    """Build a module whose initial weights come from ``gen``, leaving the global RNG untouched."""
    seed = int(torch.randint(0, 2**62, (1,), generator=gen).item())
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)  # CPU only: CUDA generators stay untouched
        return build()


def create_network(cfg, in_shape: Sequence[int], num_classes: int, gen: torch.Generator,
                   spatial_dims: int = 2, device: str | torch.device = "cpu") -> nn.Module:
    _, build = NETWORKS.get(cfg.name, "network.name")
    net = seeded(lambda: build(cfg, in_shape, num_classes, spatial_dims), gen)
    return net.to(device)


def rank_network(cfg, in_shape: Sequence[int], num_classes: int, gen: torch.Generator,
                 device: str | torch.device = "cpu") -> nn.Module:
    """:func:`create_network` in 2D for C×H×W inputs and 3D for C×D×H×W (volumes, clips C×T×H×W)."""
    return create_network(cfg, in_shape, num_classes, gen, spatial_dims=len(in_shape) - 1, device=device)


def network_description(cfg) -> str:
    if isinstance(cfg, ConvNetConfig):
        pad = "" if cfg.first_padding == "reference" else f" first-pad {cfg.first_padding}"
        return f"ConvNet-{cfg.depth} w{cfg.width} {cfg.norm}/{cfg.pooling}/{cfg.activation}{pad}"
    options = ", ".join(f"{k}={v}" for k, v in asdict(cfg).items() if k != "name")
    return f"{cfg.name} ({options})" if options else cfg.name


__all__ = ["ConvNet", "ConvNetConfig", "NETWORKS", "create_network", "seeded", "network_description"]
