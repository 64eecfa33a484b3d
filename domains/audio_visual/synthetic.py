"""The learnable audio-visual set: per class, ``ipc`` stored (log-mel map, frame) pairs.

With ``multi_formation`` f > 1 each stored map and frame is an f×f mosaic of tiles at 1/f of the
resolution; :meth:`AVPairSet.decode` cuts the tiles and upsamples each (bilinear) to full size, so
one stored pair gives f² training pairs — tile k of the map goes with tile k of the frame. The
stored bytes are those of ``ipc`` full-size pairs per class, which is what the budget counts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmdd.core.errors import RunError
from mmdd.core.synthetic import SYNTHETIC_SETS, SyntheticSet

from .batch import AVBatch


def unpack_tiles(x: Tensor, factor: int) -> Tensor:
    """N×C×H×W mosaics → (N·f²)×C×H×W, sample-major: mosaic 0's f² tiles (row-major), then mosaic
    1's, …, each tile upsampled (bilinear) to H×W — so class-major mosaics give class-major samples."""
    if factor == 1:
        return x
    n, c, h, w = x.shape
    th, tw = h // factor, w // factor
    tiles = [x[:, :, i * th:(i + 1) * th, j * tw:(j + 1) * tw] for i in range(factor) for j in range(factor)]
    up = [F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False) for t in tiles]
    return torch.stack(up, dim=1).reshape(n * factor * factor, c, h, w)  # sample-major: mosaic 0's tiles, …


def pack_tiles(x: Tensor, factor: int) -> Tensor:
    """(N·f²)×C×H×W samples → N×C×H×W mosaics of f×f downscaled tiles (the inverse layout of
    :func:`unpack_tiles`; used to start a multi-formation set from real samples)."""
    if factor == 1:
        return x
    m, c, h, w = x.shape
    n = m // (factor * factor)
    th, tw = h // factor, w // factor
    small = F.interpolate(x, size=(th, tw), mode="bilinear", align_corners=False, antialias=True)
    small = small.reshape(n, factor * factor, c, th, tw)
    out = x.new_zeros(n, c, h, w)
    for k in range(factor * factor):
        i, j = divmod(k, factor)
        out[:, :, i * th:(i + 1) * th, j * tw:(j + 1) * tw] = small[:, k]
    return out


@SYNTHETIC_SETS.register("av_pairs")
class AVPairSet(SyntheticSet):
    """``audio`` (N×1×M×T) and ``frames`` (N×3×H×W) parameters, ``ipc`` per class, class-major."""

    kind = "av_pairs"

    def __init__(self, audio: Tensor, frames: Tensor, num_classes: int, ipc: int, multi_formation: int = 1):
        super().__init__()
        if audio.shape[0] != num_classes * ipc or frames.shape[0] != num_classes * ipc:
            raise RunError(f"expected {num_classes}×{ipc} stored pairs, got {audio.shape[0]} maps and "
                           f"{frames.shape[0]} frames")
        self.num_classes, self.ipc, self.multi_formation = num_classes, ipc, multi_formation
        self.audio = nn.Parameter(audio.detach().clone().float())
        self.frames = nn.Parameter(frames.detach().clone().float())
        self.register_buffer("labels", torch.arange(num_classes).repeat_interleave(ipc))

    @property
    def per_class(self) -> int:
        """Training pairs per class after unpacking."""
        return self.ipc * self.multi_formation ** 2

    def decode(self) -> tuple[AVBatch, Tensor]:
        f = self.multi_formation
        audio, frames = unpack_tiles(self.audio, f), unpack_tiles(self.frames, f)
        labels = self.labels.repeat_interleave(f * f)  # sample-major unpacking keeps classes contiguous
        return AVBatch(audio, frames), labels

    def class_slices(self) -> list[slice]:
        k = self.per_class
        return [slice(c * k, (c + 1) * k) for c in range(self.num_classes)]

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"audio": [self.audio], "frames": [self.frames]}

    def full_equivalent_bytes(self) -> int | None:
        if self.multi_formation == 1:
            return None
        return self.storage_bytes() * self.multi_formation ** 2

    def metadata(self) -> dict:
        return {"num_classes": self.num_classes, "ipc": self.ipc, "multi_formation": self.multi_formation}

    @classmethod
    def from_tensors(cls, tensors: dict[str, Tensor], metadata: dict) -> "AVPairSet":
        try:
            syn = cls(tensors["audio"], tensors["frames"], metadata["num_classes"], metadata["ipc"],
                      metadata.get("multi_formation", 1))
            syn.load_state_dict(tensors)
        except (KeyError, RuntimeError) as exc:
            raise RunError(f"distilled tensors do not match an 'av_pairs' set: {exc}") from None
        return syn

    @classmethod
    def from_samples(cls, samples: AVBatch, num_classes: int, ipc: int, multi_formation: int) -> "AVPairSet":
        """A set started from real samples, class-major with ``ipc · f²`` per class (packed into mosaics)."""
        f = multi_formation
        return cls(pack_tiles(samples.audio, f), pack_tiles(samples.frames, f), num_classes, ipc, f)
