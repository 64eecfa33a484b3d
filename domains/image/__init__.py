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
from mmdd.core.coresets import random_subset
from mmdd.core.data import ClassIndex, DataSplits, Split
from mmdd.core.errors import ConfigError
from mmdd.core.networks import create_network
from mmdd.core.registry import closest
from mmdd.core.seeding import make_generator
from mmdd.core.synthetic import PixelSet

from .configs import DATASET_CONFIGS
from .datasets import load_digits, load_fashion_mnist, load_image_folder
from .render import save_grid


def normalize(splits: DataSplits) -> DataSplits:
    x = splits.train.inputs
    dims = [0] + list(range(2, x.dim()))
    mean = x.mean(dim=dims, keepdim=True)
    std = x.std(dim=dims, keepdim=True).clamp_min(1e-6)

    def apply(split: Split | None) -> Split | None:
        return None if split is None else Split((split.inputs - mean) / std, split.labels)

    splits.train, splits.val, splits.test = apply(splits.train), apply(splits.val), apply(splits.test)
    splits.info["normalization"] = {"mean": mean.flatten().tolist(), "std": std.flatten().tolist()}
    return splits


def denormalize(inputs: Tensor, info: dict) -> Tensor:
    norm = info.get("normalization")
    if not norm:
        return inputs
    shape = [1, -1] + [1] * (inputs.dim() - 2)
    return inputs * torch.tensor(norm["std"]).view(shape) + torch.tensor(norm["mean"]).view(shape)


class ImageDomain:
    name = "image"
    metric = "accuracy"

    def dataset_config(self, name: str) -> type:
        if name not in DATASET_CONFIGS:
            hint = closest(name, DATASET_CONFIGS)
            extra = f" (did you mean {hint!r}?)" if hint else ""
            raise ConfigError(f"dataset.name: unknown image dataset {name!r}; expected one of "
                              f"{sorted(DATASET_CONFIGS)}{extra}")
        return DATASET_CONFIGS[name]

    def load_data(self, cfg) -> DataSplits:
        if cfg.name == "digits":
            splits = load_digits(val_fraction=cfg.val_fraction, seed=cfg.split_seed)
        elif cfg.name == "fashion_mnist":
            splits = load_fashion_mnist(Path(cfg.root).expanduser(), val_fraction=cfg.val_fraction, seed=cfg.split_seed)
        else:
            splits = load_image_folder(Path(cfg.root).expanduser(), image_size=cfg.image_size, channels=cfg.channels,
                                       val_fraction=cfg.val_fraction, seed=cfg.split_seed)
        if cfg.train_per_class is not None:  # a seeded subset, at most that many per class, for small profiles
            index = random_subset(splits.train.labels, splits.num_classes, cfg.train_per_class,
                                  make_generator(cfg.split_seed), at_most=True)
            splits.train = splits.train.subset(index.sort().values)
            splits.info["train_per_class"] = cfg.train_per_class
        return normalize(splits)

    def make_network(self, net_cfg, in_shape: Sequence[int], num_classes: int, gen: torch.Generator,
                     device: torch.device) -> nn.Module:
        return create_network(net_cfg, in_shape, num_classes, gen, spatial_dims=2, device=device)

    def make_augment(self, aug_cfg) -> ImageAugment | None:
        if not aug_cfg.enabled:
            return None
        return ImageAugment(strategy=aug_cfg.strategy, mode=aug_cfg.mode)

    def make_synthetic(self, recipe, real: ClassIndex, gen: torch.Generator) -> PixelSet:
        ipc = recipe.budget.ipc
        shape = tuple(real.split.inputs.shape[1:])
        if recipe.synthetic.init == "real":
            rows = [real.sample_indices(c, ipc, gen) for c in range(real.num_classes)]
            inputs = real.split.inputs[torch.cat(rows)].clone()
        else:
            inputs = torch.randn((real.num_classes * ipc, *shape), generator=gen)
        return PixelSet(inputs, real.num_classes, ipc, soft_labels=recipe.synthetic.soft_labels,
                        learn_lr=recipe.synthetic.learn_lr, lr_init=recipe.synthetic.lr_init)

    def render(self, inputs: Tensor, labels: Tensor, info: dict, out_dir: Path) -> list[Path]:
        images = denormalize(inputs.detach().cpu().float(), info).clamp(0, 1)
        return [save_grid(images, labels, Path(out_dir) / "samples.png")]
