"""Siamese, differentiable augmentation of spectrogram-like maps ``[N, C, F, T]``.

Three transforms, each differentiable with respect to the map (masks multiply, shifts gather):

* ``shift`` — circular shift along time by up to ``max_shift`` of the frames, either way;
* ``timemask`` — zero a band of up to ``time_mask`` of the frames;
* ``freqmask`` — zero a band of up to ``freq_mask`` of the coefficient rows.

As with image DSA, a draw holds uniforms in [0, 1); frame and row counts are derived from the
map's size when the draw is applied. A siamese draw (``batch_size=None``) is shared by every batch
it is applied to — the real and the synthetic batch of a matching step get the same transform.
``mode: single`` applies one transform chosen per draw, ``all`` applies each in order. Every random
number comes from the generator passed in.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from mmdd.core.augment import AugmentDraw

_PARAMS = {"shift": ("amount",), "timemask": ("width", "start"), "freqmask": ("width", "start")}


class SpecAugment:
    def __init__(self, transforms: Sequence[str], mode: str = "all", max_shift: float = 0.1,
                 time_mask: float = 0.15, freq_mask: float = 0.15) -> None:
        unknown = [t for t in transforms if t not in _PARAMS]
        if unknown:
            raise ValueError(f"unknown spectrogram augmentation {unknown}; expected some of {sorted(_PARAMS)}")
        if mode not in ("single", "all"):
            raise ValueError(f"mode must be 'single' or 'all', got {mode!r}")
        self.transforms, self.mode = tuple(transforms), mode
        self.max_shift, self.time_mask, self.freq_mask = max_shift, time_mask, freq_mask

    def __repr__(self) -> str:
        return f"SpecAugment({'_'.join(self.transforms) or 'none'}, mode={self.mode!r})"

    def sample(self, gen: torch.Generator, batch_size: int | None = None) -> AugmentDraw:
        if not self.transforms:
            return AugmentDraw(ops=(), batch_size=batch_size)
        if self.mode == "single":
            ops = (self.transforms[int(torch.randint(len(self.transforms), (1,), generator=gen))],)
        else:
            ops = self.transforms
        n = 1 if batch_size is None else batch_size
        params = {op: {name: torch.rand(n, generator=gen) for name in _PARAMS[op]} for op in ops}
        return AugmentDraw(ops=ops, params=params, batch_size=batch_size)

    def apply(self, x: Tensor, draw: AugmentDraw) -> Tensor:
        for op in draw.ops:
            p = {k: v.to(x.device) for k, v in draw.params[op].items()}
            if op == "shift":
                x = self._shift(x, p["amount"])
            elif op == "timemask":
                x = self._mask(x, p, self.time_mask, dim=-1)
            else:
                x = self._mask(x, p, self.freq_mask, dim=-2)
        return x

    def __call__(self, x: Tensor, gen: torch.Generator) -> Tensor:
        """Per-sample augmentation (evaluation training)."""
        return self.apply(x, self.sample(gen, batch_size=x.shape[0]))

    def siamese(self, xs: Sequence[Tensor], gen: torch.Generator) -> list[Tensor]:
        draw = self.sample(gen)
        return [self.apply(x, draw) for x in xs]

    def _shift(self, x: Tensor, u: Tensor) -> Tensor:
        n, c, f, t = x.shape
        limit = int(self.max_shift * t)
        if limit == 0:
            return x
        shift = (u * (2 * limit + 1)).long().clamp(max=2 * limit) - limit  # uniform in [-limit, limit]
        index = (torch.arange(t, device=x.device).view(1, t) - shift.view(-1, 1)) % t  # [m, t]
        index = index.expand(n, t) if index.shape[0] == 1 else index
        return x.gather(3, index.view(n, 1, 1, t).expand(n, c, f, t))

    @staticmethod
    def _mask(x: Tensor, p: dict[str, Tensor], fraction: float, dim: int) -> Tensor:
        size = x.shape[dim]
        widest = int(fraction * size)
        if widest == 0:
            return x
        width = (p["width"] * (widest + 1)).long().clamp(max=widest)  # 0..widest
        start = (p["start"] * (size - width + 1).float()).long()
        pos = torch.arange(size, device=x.device).view(1, size)
        keep = ~((pos >= start.view(-1, 1)) & (pos < (start + width).view(-1, 1)))  # [m, size]
        shape = [keep.shape[0], 1, 1, 1]
        shape[dim] = size
        return x * keep.to(x.dtype).view(shape)
