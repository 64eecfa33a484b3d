"""Viewable synthetic videos: clips in [0, 1] with one still each (``VideoDomain.viewable``; the GIFs and the
grid are written by ``mmdd.core.media``)."""

from __future__ import annotations

from torch import Tensor

from mmdd.core.data import denormalize


def to_unit(clips: Tensor, info: dict) -> Tensor:
    """Normalised clips (N×C×T×H×W) or stills (N×C×H×W) → [0, 1] with the dataset's statistics (clipped)."""
    return denormalize(clips.detach().cpu().float(), info).clamp(0, 1)


def first_channels(images: Tensor) -> Tensor:
    """Images with a channel count a picture has (1 or 3): other counts keep their first channel."""
    return images if images.shape[1] in (1, 3) else images[:, :1]
