"""Augmentation of audio-visual pairs: one differentiable DSA augmenter per modality.

:meth:`AVAugment.siamese` applies one draw per modality to every batch given (real and synthetic
alike), the two modalities drawing independently; calling it augments one batch per sample
(evaluation). Log-mel maps are augmented as one-channel images (see :class:`~.configs.AVAugmentConfig`).
"""

from __future__ import annotations

from typing import Sequence

import torch

from mmdd.core.augment import ImageAugment

from .batch import AVBatch


class AVAugment:
    def __init__(self, audio: ImageAugment | None, frames: ImageAugment | None):
        self.audio, self.frames = audio, frames

    def __repr__(self) -> str:
        return f"AVAugment(audio={self.audio!r}, frames={self.frames!r})"

    def __call__(self, x: AVBatch, gen: torch.Generator) -> AVBatch:
        audio = x.audio if self.audio is None else self.audio(x.audio, gen)
        frames = x.frames if self.frames is None else self.frames(x.frames, gen)
        return AVBatch(audio, frames)

    def siamese(self, xs: Sequence[AVBatch], gen: torch.Generator) -> list[AVBatch]:
        audio = [x.audio for x in xs] if self.audio is None else self.audio.siamese([x.audio for x in xs], gen)
        frames = [x.frames for x in xs] if self.frames is None else self.frames.siamese([x.frames for x in xs], gen)
        return [AVBatch(a, f) for a, f in zip(audio, frames)]



def make_av_augment(cfg) -> AVAugment | None:
    if not cfg.enabled:
        return None

    def one(section) -> ImageAugment | None:
        if not section.enabled or section.strategy.strip().lower() in ("", "none"):
            return None
        return ImageAugment(strategy=section.strategy, mode=section.mode)

    audio, frames = one(cfg.audio), one(cfg.frames)
    return None if audio is None and frames is None else AVAugment(audio, frames)


def describe_av_augment(cfg) -> str:
    """How protocol strings name the ``augment`` section: each modality's DSA strategy."""
    def one(section) -> str:
        off = not section.enabled or section.strategy.strip().lower() in ("", "none")
        return "none" if off else f"DSA {section.strategy} ({section.mode})"

    return f"audio {one(cfg.audio)}, frames {one(cfg.frames)}"
