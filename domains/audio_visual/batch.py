"""Paired audio-visual inputs that index like one tensor.

A real split and a synthetic set of the audio-visual domain hold two aligned tensors: log-mel maps
(N×1×M×T) and frames (N×3×H×W), row ``i`` of one paired with row ``i`` of the other. Wrapping them
in :class:`AVBatch` lets the core's per-class index, splits, random and coreset baselines, and
training loops pick rows (``batch[index]``) without knowing there are two modalities.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from mmdd.core.errors import DataError
from mmdd.core.lazy import LazyRows


@dataclass
class AVBatch:
    """``audio`` N×1×M×T and ``frames`` N×3×H×W, aligned by row."""

    audio: Tensor
    frames: Tensor

    def __post_init__(self) -> None:
        if self.audio.shape[0] != self.frames.shape[0]:
            raise DataError(f"{self.audio.shape[0]} audio maps but {self.frames.shape[0]} frames; expected one "
                            "frame per audio map (pairs)")

    # -- what the core asks of an inputs tensor
    @property
    def shape(self) -> torch.Size:
        """``(N,)``: the core reads only the row count; the per-modality shapes are ``audio_shape`` / ``frame_shape``."""
        return torch.Size([int(self.audio.shape[0])])

    def __len__(self) -> int:
        return int(self.audio.shape[0])

    def __getitem__(self, index) -> "AVBatch":
        if isinstance(index, int):
            index = slice(index, index + 1)
        return AVBatch(self.audio[index], self.frames[index])

    def to(self, *args, **kwargs) -> "AVBatch":
        return AVBatch(self.audio.to(*args, **kwargs), self.frames.to(*args, **kwargs))

    def clone(self) -> "AVBatch":
        return AVBatch(self.audio.clone(), self.frames.clone())

    def detach(self) -> "AVBatch":
        return AVBatch(self.audio.detach(), self.frames.detach())

    def pin_memory(self) -> "AVBatch":
        """Both modalities in page-locked memory (a DataLoader's ``pin_memory`` calls this)."""
        return AVBatch(self.audio.pin_memory(), self.frames.pin_memory())

    def cpu(self) -> "AVBatch":
        return self.to("cpu")

    def float(self) -> "AVBatch":
        return AVBatch(self.audio.float(), self.frames.float())

    def flatten(self, start_dim: int = 1) -> Tensor:
        """Both modalities' values of each row side by side (the ``pixels`` features of herding / k-center)."""
        return torch.cat([self.audio.flatten(start_dim), self.frames.flatten(start_dim)], dim=1)

    # -- the two modalities
    @property
    def audio_shape(self) -> tuple[int, ...]:
        return tuple(self.audio.shape[1:])

    @property
    def frame_shape(self) -> tuple[int, ...]:
        return tuple(self.frames.shape[1:])

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.audio, self.frames))

    @staticmethod
    def cat(batches: list["AVBatch"]) -> "AVBatch":
        return AVBatch(torch.cat([b.audio for b in batches]), torch.cat([b.frames for b in batches]))


class LazyAVRows(LazyRows):
    """Pairs read from the decoded store a batch at a time: indexing returns an :class:`AVBatch`;
    ``audio_shape``, ``frame_shape`` and ``nbytes`` answer like an AVBatch's."""

    def __init__(self, fetch, length: int, audio_shape, frame_shape, describe: str = "stored pairs"):
        super().__init__(fetch, length, (), torch.float32, describe)
        self.audio_shape, self.frame_shape = tuple(audio_shape), tuple(frame_shape)

    @property
    def row_bytes(self) -> int:
        return 4 * (math.prod(self.audio_shape) + math.prod(self.frame_shape))

    def nbytes(self) -> int:
        return len(self) * self.row_bytes

    def rows(self, key) -> "LazyAVRows":
        view = super().rows(key)
        return LazyAVRows(view._fetch, len(view), self.audio_shape, self.frame_shape, self.describe)
