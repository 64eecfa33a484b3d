"""The shape of a domain plug-in (DESIGN §4). Domains implement it; core never imports one."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, Sequence

import torch
from torch import Tensor, nn

from .data import ClassIndex, DataSplits
from .synthetic import SyntheticSet


class Domain(Protocol):
    name: str
    metric: str  # a name in mmdd.core.metrics.METRICS: the reported (and, with select: best_val, selecting) one
    # optional: extra_metrics: tuple[str, ...] — further METRICS names reported beside it (medical: auc)
    # optional: augment_config() -> type — the typed ``augment`` section, when not the image DSA one

    def dataset_config(self, name: str) -> type:
        """The typed options of dataset ``name`` (raises ConfigError for an unknown name)."""

    def load_data(self, cfg) -> DataSplits:
        """Real data in the distillation space, ready for matching and evaluation."""

    def make_network(self, net_cfg, in_shape: Sequence[int], num_classes: int, gen: torch.Generator,
                     device: torch.device) -> nn.Module: ...

    def make_augment(self, aug_cfg): ...

    def make_synthetic(self, recipe, real: ClassIndex, gen: torch.Generator) -> SyntheticSet: ...

    def render(self, inputs: Tensor, labels: Tensor, info: dict, out_dir: Path) -> list[Path]:
        """Write viewable samples (PNG grid, GIF, WAV...) and return their paths."""
