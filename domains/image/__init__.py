"""The image domain: pixels as the distillation space, the ConvNet family, DSA augmentation.

Datasets: ``digits`` (scikit-learn's bundled 8×8 digits, offline), ``fashion_mnist`` (original IDX
files from a local root) and ``image_folder`` (your own class-per-folder images). Inputs are
normalised per channel with the training split's mean and std; the statistics travel with the
artifact so samples can be rendered and new data normalised the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor, nn

from mmdd.core.augment import ImageAugment
from mmdd.core.coresets import limit_train
from mmdd.core.data import ClassIndex, DataSplits, denormalize, normalize
from mmdd.core.networks import create_network
from mmdd.core.registry import dataset_config
from mmdd.core.synthetic import PixelSet

from .configs import DATASET_CONFIGS
from .datasets import load_digits, load_fashion_mnist, load_image_folder
from mmdd.core.grid import save_grid


class ImageDomain:
    name = "image"
    metric = "accuracy"

    def dataset_config(self, name: str) -> type:
        return dataset_config("image", DATASET_CONFIGS, name)

    def load_data(self, cfg) -> DataSplits:
        if cfg.name == "digits":
            splits = load_digits(val_fraction=cfg.val_fraction, seed=cfg.split_seed)
        elif cfg.name == "fashion_mnist":
            splits = load_fashion_mnist(Path(cfg.root).expanduser(), val_fraction=cfg.val_fraction, seed=cfg.split_seed)
        else:
            splits = load_image_folder(Path(cfg.root).expanduser(), image_size=cfg.image_size, channels=cfg.channels,
                                       val_fraction=cfg.val_fraction, seed=cfg.split_seed)
        return normalize(limit_train(splits, cfg.train_per_class, cfg.split_seed))

    def make_network(self, net_cfg, in_shape: Sequence[int], num_classes: int, gen: torch.Generator,
                     device: torch.device) -> nn.Module:
        return create_network(net_cfg, in_shape, num_classes, gen, spatial_dims=2, device=device)

    def make_augment(self, aug_cfg) -> ImageAugment | None:
        if not aug_cfg.enabled:
            return None
        return ImageAugment(strategy=aug_cfg.strategy, mode=aug_cfg.mode)

    def make_synthetic(self, recipe, real: ClassIndex, gen: torch.Generator) -> PixelSet:
        return PixelSet.from_real(real, recipe.budget.ipc, recipe.synthetic, gen)

    def render(self, inputs: Tensor, labels: Tensor, info: dict, out_dir: Path) -> list[Path]:
        images = denormalize(inputs.detach().cpu().float(), info).clamp(0, 1)
        return [save_grid(images, labels, Path(out_dir) / "samples.png")]
