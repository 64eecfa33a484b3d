"""The image domain: pixels as the distillation space, the ConvNet family, DSA augmentation.

Datasets: ``digits`` (scikit-learn's bundled 8×8 digits, offline), ``fashion_mnist`` (original IDX
files from a local root) and ``image_folder`` (your own class-per-folder images). Inputs are
normalised per channel with the training split's mean and std; the statistics travel with the
artifact so samples can be rendered and new data normalised the same way.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from mmdd.core.augment import ImageAugment
from mmdd.core.coresets import limit_train
from mmdd.core.domain import Domain, decoded, labelled_view
from mmdd.core.registry import import_submodules
from mmdd.core.data import DataSplits, denormalize, normalize, zca_whiten
from mmdd.core.networks import create_network
from mmdd.core.synthetic import PixelSet

from . import datasets  # noqa: F401  (registers the image datasets)
from mmdd.core.viewable import Viewable


class ImageDomain(Domain):
    name = "image"
    metric = "accuracy"

    def load_data(self, cfg) -> DataSplits:
        splits = self.read_dataset(cfg)  # the loader registered for cfg.name (see .datasets)
        splits = normalize(limit_train(splits, cfg.train_per_class, cfg.split_seed))
        return zca_whiten(splits, cfg.zca_epsilon) if cfg.zca else splits

    def make_network(self, net_cfg, in_shape: Sequence[int], num_classes: int, gen: torch.Generator,
                     device: torch.device) -> nn.Module:
        return create_network(net_cfg, in_shape, num_classes, gen, spatial_dims=2, device=device)

    def make_augment(self, aug_cfg) -> ImageAugment | None:
        if not aug_cfg.enabled:
            return None
        return ImageAugment(strategy=aug_cfg.strategy, mode=aug_cfg.mode)

    def make_synthetic(self, ws, gen: torch.Generator) -> PixelSet:
        return PixelSet.from_real(ws.real, ws.cfg.budget.ipc, ws.cfg.synthetic, gen)

    def viewable(self, syn, info: dict, load_real) -> Viewable:
        """The images in pixels: whitening undone (with the transform the real data went through), then
        the standardisation."""
        inputs, _ = decoded(syn)
        if info.get("zca"):
            inputs = load_real().transforms["zca"].invert(inputs)
        return labelled_view(syn, info, "image", images=denormalize(inputs.float(), info).clamp(0, 1))


import_submodules(__name__)  # every format module registers its datasets; a new one needs no import line
