"""DSA for 2D images and 3D volumes: volumes get the image transforms in-plane, the same for every
slice (the depth axis is folded into the channels while a transform is applied). ``color`` mixes
channels, so it is refused for volumes; use crop, cutout, flip, scale and rotate."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from mmdd.core.augment import AugmentDraw, ImageAugment
from mmdd.core.errors import ConfigError


class VolumeAwareAugment:
    def __init__(self, image: ImageAugment):
        if "color" in image.transforms:
            self.volume_error = ("augment.strategy: 'color' is not defined for 3D volumes (it mixes channels); "
                                 "use crop, cutout, flip, scale, rotate")
        else:
            self.volume_error = None
        self.image = image
        self.strategy, self.mode = image.strategy, image.mode

    def __repr__(self) -> str:
        return f"VolumeAwareAugment({self.image!r})"

    def sample(self, gen: torch.Generator, batch_size: int | None = None) -> AugmentDraw:
        return self.image.sample(gen, batch_size)

    def apply(self, x: Tensor, draw: AugmentDraw) -> Tensor:
        if x.dim() != 5:
            return self.image.apply(x, draw)
        if self.volume_error:
            raise ConfigError(self.volume_error)
        n, c, d, h, w = x.shape
        return self.image.apply(x.reshape(n, c * d, h, w), draw).reshape(n, c, d, h, w)

    def __call__(self, x: Tensor, gen: torch.Generator) -> Tensor:
        return self.apply(x, self.sample(gen, batch_size=x.shape[0]))

    def siamese(self, xs: Sequence[Tensor], gen: torch.Generator) -> list[Tensor]:
        draw = self.sample(gen)
        return [self.apply(x, draw) for x in xs]
