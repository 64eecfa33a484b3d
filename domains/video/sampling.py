"""Clip sampling and the spatial transform shared by every video loader.

* :func:`clip_indices` picks the ``frames`` frame indices of one clip: evenly ``stride`` apart
  from a start that is drawn (``mode="random"``, training), centred (``mode="center"``, test) or
  the ``i``-th of ``k`` evenly spaced starts (``mode="window"``, several test clips per video).
* :func:`resize_and_flip` resizes every frame of a clip to ``size`` and optionally mirrors it
  left-right (the flip is an augmentation: the loaders never apply it); :func:`fit_frames` is the
  loaders' spatial rule: ``square`` (resize to size², aspect not kept) or ``short_side_crop``
  (resize the short side to ``size``, keeping the aspect, then take the centre size×size).

Every random draw comes from the ``torch.Generator`` passed in; nothing here touches the global
random state.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mmdd.core.errors import ConfigError

__all__ = ["CLIP_MODES", "RESIZES", "clip_indices", "clip_span", "fit_frames", "resize_and_flip"]

CLIP_MODES = ("random", "center", "window")
RESIZES = ("square", "short_side_crop")


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def clip_span(frames: int, stride: int) -> int:
    """Number of source frames one clip covers: ``(frames - 1) * stride + 1``."""
    return (_positive_int(frames, "frames") - 1) * _positive_int(stride, "stride") + 1


def clip_indices(
    num_frames: int,
    frames: int = 16,
    stride: int = 1,
    mode: str = "random",
    gen: torch.Generator | None = None,
    window: tuple[int, int] | None = None,
) -> Tensor:
    """The ``frames`` frame indices (int64, ascending) of one clip of a ``num_frames``-frame video.

    The clip is ``start + stride * [0, 1, ..., frames - 1]`` and covers
    ``span = (frames - 1) * stride + 1`` source frames.

    * ``mode="random"`` (training): ``start = torch.randint(max(num_frames - span, 0) + 1, (1,),
      generator=gen)``, i.e. uniform over every start that keeps the clip inside the video. Exactly
      one draw is made from ``gen`` per call, also for a short video (where it is always 0), so the
      generator's stream never depends on video lengths. ``gen`` is required.
    * ``mode="center"`` (test): ``start = (num_frames - span) // 2`` (floor; 0 for a short video);
      no draw, ``gen`` is ignored.
    * ``mode="window"`` with ``window=(i, k)`` (``k`` test clips per video): the ``i``-th of ``k``
      starts spread evenly from the first to the last start, ``round(i · slack / (k − 1))`` (the
      centre for ``k = 1``); no draw.

    A video shorter than ``span`` frames starts at 0 and its indices are **clamped** to the last
    frame: ``min(stride * k, num_frames - 1)``, so its last frame repeats (e.g. 5 frames,
    ``frames=8, stride=1`` -> ``[0, 1, 2, 3, 4, 4, 4, 4]``).
    """
    num_frames = _positive_int(num_frames, "num_frames")
    frames = _positive_int(frames, "frames")
    stride = _positive_int(stride, "stride")
    if mode not in CLIP_MODES:
        raise ConfigError(f"clip mode must be one of {CLIP_MODES}, got {mode!r}")
    span = (frames - 1) * stride + 1
    slack = num_frames - span
    if mode == "random":
        if not isinstance(gen, torch.Generator):
            raise ConfigError(
                "clip_indices(mode='random') needs a torch.Generator (gen=...): every random draw "
                "in mmdd comes from a seeded generator passed down"
            )
        start = int(torch.randint(max(slack, 0) + 1, (1,), generator=gen).item())
    elif mode == "window":
        if window is None or not (0 <= window[0] < window[1]):
            raise ConfigError(f"clip_indices(mode='window') needs window=(i, k) with 0 <= i < k, got {window!r}")
        i, k = window
        start = round(i * max(slack, 0) / (k - 1)) if k > 1 else max(slack, 0) // 2
    else:
        start = max(slack, 0) // 2
    offsets = torch.arange(frames, dtype=torch.long) * stride
    return (start + offsets).clamp_max(num_frames - 1)


def _size_pair(size) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        s = _positive_int(size, "size")
        return s, s
    if isinstance(size, Sequence) and len(size) == 2:
        return _positive_int(size[0], "size[0] (height)"), _positive_int(size[1], "size[1] (width)")
    raise ConfigError(f"size must be a positive integer or a (height, width) pair, got {size!r}")


def resize_and_flip(clip: Tensor, size, flip: bool = False, *, channels_last: bool | None = None) -> Tensor:
    """Resize every frame of ``clip`` to ``size`` and mirror it left-right when ``flip``.

    ``clip`` is a tensor of frames with any leading dimensions (a clip ``T×...`` or a batch
    ``N×T×...``). Its layout follows its dtype unless ``channels_last`` says otherwise:
    ``uint8`` is the decoder layout ``...×H×W×C`` and a floating tensor is ``...×C×H×W``.
    The result has the **same layout and dtype** as the input.

    ``size`` is an int (a square ``size×size``, aspect ratio not kept) or ``(height, width)``;
    ``None`` keeps the frame size (flip only). Resizing is bilinear with ``align_corners=False``
    and antialiasing (``F.interpolate(..., antialias=True)``), computed in float32; ``uint8``
    results are rounded and clamped to 0..255. A frame already at the target size is not
    resampled (copied exactly).
    """
    if not isinstance(clip, Tensor) or clip.dim() < 3:
        raise ConfigError(
            f"resize_and_flip expects a tensor of frames (...×H×W×C uint8 or ...×C×H×W float), "
            f"got {type(clip).__name__} {tuple(getattr(clip, 'shape', ()))}"
        )
    if channels_last is None:
        if clip.dtype == torch.uint8:
            channels_last = True
        elif clip.is_floating_point():
            channels_last = False
        else:
            raise ConfigError(
                f"resize_and_flip: cannot tell the layout of a {clip.dtype} clip; expected uint8 "
                "(...×H×W×C) or floating point (...×C×H×W), or pass channels_last="
            )
    x = clip.movedim(-1, -3) if channels_last else clip  # ...×C×H×W
    lead = x.shape[:-3]
    c, h, w = x.shape[-3:]
    if size is not None:
        th, tw = _size_pair(size)
        if (th, tw) != (h, w):
            flat = x.reshape(-1, c, h, w)
            out = F.interpolate(
                flat.float(), size=(th, tw), mode="bilinear", align_corners=False, antialias=True
            )
            if clip.dtype == torch.uint8:
                out = out.round_().clamp_(0, 255).to(torch.uint8)
            else:
                out = out.to(clip.dtype)
            x = out.reshape(*lead, c, th, tw)
    if flip:
        x = x.flip(-1)
    x = x.movedim(-3, -1) if channels_last else x
    return x.contiguous()


def fit_frames(clip: Tensor, size: int, resize: str = "square") -> Tensor:
    """Frames ``T×H×W×C`` uint8 to ``T×size×size×C``: ``square`` resizes to size² (aspect not kept);
    ``short_side_crop`` resizes the short side to ``size`` (aspect kept) and takes the centre crop."""
    if resize not in RESIZES:
        raise ConfigError(f"resize must be one of {RESIZES}, got {resize!r}")
    if resize == "square":
        return resize_and_flip(clip, size, flip=False, channels_last=True)
    h, w = int(clip.shape[-3]), int(clip.shape[-2])
    scale = size / min(h, w)
    th, tw = max(size, round(h * scale)), max(size, round(w * scale))
    x = resize_and_flip(clip, (th, tw), flip=False, channels_last=True)
    top, left = (th - size) // 2, (tw - size) // 2
    return x[..., top:top + size, left:left + size, :].contiguous()
