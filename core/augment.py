"""Differentiable Siamese Augmentation (DSA) for image batches.

DSA (Zhao & Bilen, 2021) applies the *same* random transform to the real and the
synthetic batch at each matching step, and every transform is differentiable with
respect to the pixels, so gradients reach the synthetic images through it.

Design:

* :meth:`ImageAugment.sample` draws an :class:`AugmentDraw`: the chosen transform(s)
  and their parameters, stored as raw uniforms in ``[0, 1)``. Pixel quantities
  (shift, cutout position) are derived from the uniforms at :meth:`ImageAugment.apply`
  time from the image size, so a draw does not depend on the batch it is applied to.
* A *siamese* draw (``batch_size=None``) holds tensors of shape ``[1]`` that
  broadcast to any batch size: ``apply(real, d)`` and ``apply(syn, d)`` apply exactly
  the same transform even when the two batches have different sizes.
* A per-sample draw (``batch_size=n``) holds tensors of shape ``[n]``.
* Every random number comes from the ``torch.Generator`` passed in (drawn on the
  generator's device, normally the CPU, then moved to the images' device); the
  global RNG is never used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import ConfigError

__all__ = ["AUGMENT_TRANSFORMS", "AUGMENT_MODES", "AugmentDraw", "ImageAugment", "parse_strategy"]

#: Transform names accepted in a strategy string, in canonical order.
AUGMENT_TRANSFORMS: tuple[str, ...] = ("color", "crop", "cutout", "flip", "scale", "rotate")
#: ``single``: one transform of the strategy per draw (DSA "S" mode); ``all``: every one, in order.
AUGMENT_MODES: tuple[str, ...] = ("single", "all")

# Names of the uniforms each transform draws (one value per sample, or one for a siamese draw).
_PARAM_NAMES: dict[str, tuple[str, ...]] = {
    "color": ("brightness", "saturation", "contrast"),
    "crop": ("dy", "dx"),
    "cutout": ("cy", "cx"),
    "flip": ("u",),
    "scale": ("sy", "sx"),
    "rotate": ("theta",),
}


def parse_strategy(strategy: str) -> tuple[str, ...]:
    """Split ``"color_crop_flip"`` into ``("color", "crop", "flip")``; ``""``/``"none"`` → ``()``.

    Raises :class:`ConfigError` naming any unknown transform and listing the valid ones.
    """
    if not isinstance(strategy, str):
        raise ConfigError(
            f"augmentation strategy must be a string such as 'color_crop_cutout_flip_scale_rotate', "
            f"got {type(strategy).__name__} {strategy!r}"
        )
    text = strategy.strip().lower()
    if text in ("", "none"):
        return ()
    names = tuple(part.strip() for part in text.split("_"))
    bad = [name for name in names if name not in AUGMENT_TRANSFORMS]
    if bad:
        shown = ", ".join(repr(b) for b in bad)
        raise ConfigError(
            f"unknown augmentation transform {shown} in strategy {strategy!r}; valid transforms are "
            f"{', '.join(AUGMENT_TRANSFORMS)} joined by '_' (or 'none' for no augmentation)"
        )
    return names


@dataclass(frozen=True)
class AugmentDraw:
    """One random draw of :class:`ImageAugment`.

    ``ops``: the transforms to apply, in order. ``params[op][name]``: a 1-D tensor of
    uniforms in ``[0, 1)`` of length ``batch_size`` (per-sample draw) or 1 (siamese
    draw, ``batch_size is None``, broadcast to any batch).
    """

    ops: tuple[str, ...]
    params: dict[str, dict[str, Tensor]] = field(default_factory=dict)
    batch_size: int | None = None

    @property
    def siamese(self) -> bool:
        return self.batch_size is None


def _check_range(name: str, value: float, low: float, high: float) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"augmentation {name} must be a number in [{low}, {high}], got {value!r}") from None
    if not (low <= value <= high) or math.isnan(value):
        raise ConfigError(f"augmentation {name} must be in [{low}, {high}], got {value}")
    return value


class ImageAugment:
    """Differentiable augmentation for image batches (DSA).

    ``strategy``: underscore-separated transforms from :data:`AUGMENT_TRANSFORMS`
    (``""`` or ``"none"``: identity). ``mode="single"`` picks one of them uniformly per
    draw (the whole batch gets that transform, with per-sample parameters when the
    draw is per-sample); ``mode="all"`` applies all of them in the listed order.
    """

    def __init__(
        self,
        strategy: str = "color_crop_cutout_flip_scale_rotate",
        mode: str = "single",
        crop_ratio: float = 0.125,
        cutout_ratio: float = 0.5,
        scale_ratio: float = 1.2,
        rotate_degrees: float = 15.0,
        brightness: float = 1.0,
        saturation: float = 2.0,
        contrast: float = 0.5,
    ) -> None:
        self.transforms = parse_strategy(strategy)
        self.strategy = "_".join(self.transforms) if self.transforms else "none"
        if not isinstance(mode, str) or mode.strip().lower() not in AUGMENT_MODES:
            raise ConfigError(
                f"unknown augmentation mode {mode!r}; valid modes are {', '.join(AUGMENT_MODES)} "
                "('single' applies one transform of the strategy per draw, 'all' applies every one)"
            )
        self.mode = mode.strip().lower()
        self.crop_ratio = _check_range("crop_ratio", crop_ratio, 0.0, 0.5)
        self.cutout_ratio = _check_range("cutout_ratio", cutout_ratio, 0.0, 1.0)
        self.scale_ratio = _check_range("scale_ratio", scale_ratio, 1.0, math.inf)
        self.rotate_degrees = _check_range("rotate_degrees", rotate_degrees, 0.0, 180.0)
        self.brightness = _check_range("brightness", brightness, 0.0, math.inf)
        self.saturation = _check_range("saturation", saturation, 0.0, math.inf)
        self.contrast = _check_range("contrast", contrast, 0.0, math.inf)

    def __repr__(self) -> str:
        return f"ImageAugment(strategy={self.strategy!r}, mode={self.mode!r})"

    # ------------------------------------------------------------------ drawing
    def sample(self, gen: torch.Generator, batch_size: int | None = None) -> AugmentDraw:
        """Draw the transform(s) and their parameters from ``gen``.

        ``batch_size=None``: a siamese draw (parameters of shape ``[1]``, shared by every
        batch it is applied to). An int: per-sample parameters of shape ``[batch_size]``.
        """
        if batch_size is not None:
            if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
                raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}")
        if not self.transforms:
            return AugmentDraw(ops=(), params={}, batch_size=batch_size)
        device = gen.device
        if self.mode == "single":
            index = int(torch.randint(len(self.transforms), (1,), generator=gen, device=device).item())
            ops: tuple[str, ...] = (self.transforms[index],)
        else:
            ops = self.transforms
        n = 1 if batch_size is None else batch_size
        params: dict[str, dict[str, Tensor]] = {}
        for op in dict.fromkeys(ops):  # unique ops, first-seen order
            params[op] = {
                name: torch.rand((n,), generator=gen, device=device) for name in _PARAM_NAMES[op]
            }
        return AugmentDraw(ops=ops, params=params, batch_size=batch_size)

    # ----------------------------------------------------------------- applying
    def apply(self, x: Tensor, draw: AugmentDraw) -> Tensor:
        """Apply ``draw`` to the batch ``x`` (N×C×H×W float); differentiable w.r.t. ``x``."""
        if not isinstance(x, Tensor) or x.dim() != 4:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"ImageAugment expects an N×C×H×W tensor, got {shape}")
        if not x.is_floating_point():
            raise ValueError(f"ImageAugment expects a floating-point tensor, got {x.dtype}")
        if draw.batch_size is not None and draw.batch_size != x.shape[0]:
            raise ValueError(
                f"per-sample augmentation draw was made for {draw.batch_size} samples but the batch has "
                f"{x.shape[0]}; use sample(gen) (siamese draw) to share one draw across batches"
            )
        for op in draw.ops:
            # Uniforms stay float32 (pixel indices then do not depend on x's dtype);
            # transforms that mix them with pixels cast them to x's dtype.
            p = {k: v.to(device=x.device, dtype=torch.float32) for k, v in draw.params[op].items()}
            x = getattr(self, f"_{op}")(x, p)
        return x

    def __call__(self, x: Tensor, gen: torch.Generator) -> Tensor:
        """Augment one batch with independent per-sample parameters."""
        return self.apply(x, self.sample(gen, x.shape[0]))

    def siamese(self, xs: Sequence[Tensor], gen: torch.Generator) -> list[Tensor]:
        """Apply ONE draw, shared by every batch in ``xs`` (e.g. real and synthetic)."""
        draw = self.sample(gen)
        return [self.apply(x, draw) for x in xs]

    # --------------------------------------------------------------- transforms
    @staticmethod
    def _col(u: Tensor, like: Tensor) -> Tensor:
        return u.to(like.dtype).view(-1, 1, 1, 1)

    def _color(self, x: Tensor, p: dict[str, Tensor]) -> Tensor:
        x = x + (self._col(p["brightness"], x) - 0.5) * self.brightness
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (self._col(p["saturation"], x) * self.saturation) + mean
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * (self._col(p["contrast"], x) + self.contrast) + mean
        return x

    @staticmethod
    def _pixels(u: Tensor, count: int) -> Tensor:
        """Map uniforms in [0, 1) to integers in [0, count)."""
        return torch.floor(u * count).long().clamp_(0, count - 1)

    def _crop(self, x: Tensor, p: dict[str, Tensor]) -> Tensor:
        n, c, h, w = x.shape
        sh = int(h * self.crop_ratio + 0.5)
        sw = int(w * self.crop_ratio + 0.5)
        if sh == 0 and sw == 0:
            return x
        dy = (self._pixels(p["dy"], 2 * sh + 1) - sh).expand(n)
        dx = (self._pixels(p["dx"], 2 * sw + 1) - sw).expand(n)
        padded = F.pad(x, (sw, sw, sh, sh))  # zero padding
        rows = torch.arange(h, device=x.device).view(1, h) + sh + dy.view(n, 1)  # [n, h]
        cols = torch.arange(w, device=x.device).view(1, w) + sw + dx.view(n, 1)  # [n, w]
        out = padded.gather(2, rows.view(n, 1, h, 1).expand(n, c, h, w + 2 * sw))
        return out.gather(3, cols.view(n, 1, 1, w).expand(n, c, h, w))

    def _cutout(self, x: Tensor, p: dict[str, Tensor]) -> Tensor:
        _, _, h, w = x.shape
        ch = int(h * self.cutout_ratio + 0.5)
        cw = int(w * self.cutout_ratio + 0.5)
        if ch == 0 or cw == 0:
            return x
        # The square lies wholly inside the image: exactly ch*cw pixels are zeroed.
        top = self._pixels(p["cy"], h - ch + 1).view(-1, 1)
        left = self._pixels(p["cx"], w - cw + 1).view(-1, 1)
        r = torch.arange(h, device=x.device).view(1, h)
        k = torch.arange(w, device=x.device).view(1, w)
        in_rows = (r >= top) & (r < top + ch)  # [m, h]
        in_cols = (k >= left) & (k < left + cw)  # [m, w]
        hole = in_rows.unsqueeze(2) & in_cols.unsqueeze(1)  # [m, h, w]
        mask = (~hole).to(x.dtype).unsqueeze(1)  # [m, 1, h, w]
        return x * mask

    def _flip(self, x: Tensor, p: dict[str, Tensor]) -> Tensor:
        chosen = p["u"].view(-1, 1, 1, 1) < 0.5
        return torch.where(chosen, x.flip(-1), x)

    def _affine(self, x: Tensor, theta: Tensor) -> Tensor:
        n = x.shape[0]
        theta = theta.to(x.dtype).expand(n, 2, 3)
        grid = F.affine_grid(theta, list(x.shape), align_corners=True)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)

    def _scale(self, x: Tensor, p: dict[str, Tensor]) -> Tensor:
        low, high = 1.0 / self.scale_ratio, self.scale_ratio
        sy = p["sy"] * (high - low) + low
        sx = p["sx"] * (high - low) + low
        zero = torch.zeros_like(sx)
        theta = torch.stack(
            [torch.stack([sx, zero, zero], dim=1), torch.stack([zero, sy, zero], dim=1)], dim=1
        )
        return self._affine(x, theta)

    def _rotate(self, x: Tensor, p: dict[str, Tensor]) -> Tensor:
        _, _, h, w = x.shape
        angle = (p["theta"] * 2.0 - 1.0) * (self.rotate_degrees * math.pi / 180.0)
        cos, sin = torch.cos(angle), torch.sin(angle)
        # A rotation in pixel space, written in affine_grid's normalised coordinates
        # (align_corners=True: x_norm = 2x/(W-1) - 1), so non-square images are not sheared.
        ax = max(w - 1, 1)
        ay = max(h - 1, 1)
        zero = torch.zeros_like(cos)
        theta = torch.stack(
            [
                torch.stack([cos, -sin * (ay / ax), zero], dim=1),
                torch.stack([sin * (ax / ay), cos, zero], dim=1),
            ],
            dim=1,
        )
        return self._affine(x, theta)


@dataclass
class AugmentConfig:
    """Recipe section ``augment``: the siamese augmentation used while matching and evaluating."""

    strategy: str = "color_crop_cutout_flip_scale_rotate"
    mode: Literal["single", "all"] = "single"
    enabled: bool = True

    def check(self, path: str) -> list[str]:
        try:
            parse_strategy(self.strategy)
        except ConfigError as exc:
            return [f"{path}.strategy: {exc}"]
        return []


class VolumeAwareAugment:
    """DSA for 2D images and for 5-D inputs N×C×D×H×W (volumes, clips C×T×H×W): the image transforms
    are applied in-plane, the same for every slice or frame (depth/time is folded into the channels
    while a transform is applied). ``color`` mixes channels, so it is refused for 5-D inputs."""

    def __init__(self, image: ImageAugment):
        if "color" in image.transforms:
            self.volume_error = ("augment.strategy: 'color' is not defined for 3D volumes and clips (it mixes "
                                 "channels); use crop, cutout, flip, scale, rotate")
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


def volume_aware_augment(aug_cfg) -> VolumeAwareAugment | None:
    """The recipe's ``augment`` section as a :class:`VolumeAwareAugment` (None when disabled)."""
    if not aug_cfg.enabled:
        return None
    return VolumeAwareAugment(ImageAugment(strategy=aug_cfg.strategy, mode=aug_cfg.mode))
