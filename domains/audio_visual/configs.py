"""Typed options of the audio-visual domain: the reading and analysis options every dataset shares,
the synthetic set (initialisation, multi-formation), the augmentation of each modality and the
paired network."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from mmdd.core.checks import at_least, positive, subset_problems
from mmdd.core.store import StorageOptions
from mmdd.core.augment import AugmentConfig
from mmdd.core.synthetic import SyntheticConfig

#: the AVDD authors' frame normalisation (per RGB channel, on pixels in [0, 1])
FRAME_MEAN = [0.425, 0.396, 0.370]
FRAME_STD = [0.229, 0.224, 0.221]


@dataclass
class AVOptions(StorageOptions):
    """What every audio-visual dataset shares: which second of a clip, how it is read and analysed.

    Audio: ``sample_rate`` (the authors: 11 kHz), then a log-mel map — ``MelSpectrogram(n_fft,
    hop_length, n_mels)`` at that same rate, in dB — 1×128×56 for one second with the defaults —
    standardised with the training split's mean and std (one number each) when ``standardize_audio``
    (mmdd's default; the authors feed raw dB). Frames: resized to
    ``size``², normalised per channel with ``frame_mean`` / ``frame_std``.
    """

    second: int = 4
    sample_rate: int = 11000
    n_fft: int = 400
    hop_length: int = 200
    n_mels: int = 128
    size: int = 224
    frame_mean: list[float] = field(default_factory=lambda: list(FRAME_MEAN))
    frame_std: list[float] = field(default_factory=lambda: list(FRAME_STD))
    standardize_audio: bool = True
    on_error: Literal["fail", "skip"] = "fail"
    cache_dir: str | None = "~/.cache/mmdd/audio_visual"
    val_fraction: float = 0.0
    split_seed: int = 0
    train_per_class: int | None = None

    def av_problems(self, path: str) -> list[str]:
        problems = at_least(self, path, ("sample_rate", "n_fft", "hop_length", "n_mels", "size", "train_per_class"))
        problems += at_least(self, path, ("second",), minimum=0)
        if len(self.frame_mean) != 3 or len(self.frame_std) != 3:
            problems.append(f"{path}.frame_mean and frame_std: expected 3 numbers each (R, G, B)")
        elif min(self.frame_std) <= 0:
            problems.append(f"{path}.frame_std must be > 0 per channel, got {self.frame_std}")
        if self.hop_length >= self.n_fft:
            problems.append(f"{path}.hop_length={self.hop_length} must be < n_fft={self.n_fft}: windows that do not "
                            "overlap cannot be inverted to sound (Griffin-Lim) for the renders")
        if self.n_fft > self.sample_rate:
            problems.append(f"{path}.n_fft={self.n_fft} is longer than one second at sample_rate={self.sample_rate}")
        return problems + subset_problems(path, self.train_per_class, self.val_fraction) + self.storage_problems(path)


def read_options(cfg):
    """The :class:`~.clips.AVRead` of a dataset config."""
    from .clips import AVRead

    return AVRead(sample_rate=cfg.sample_rate, size=cfg.size, on_error=cfg.on_error, cache_dir=cfg.cache_dir,
                  storage=cfg)


@dataclass
class AVSyntheticConfig(SyntheticConfig):
    """Recipe section ``synthetic`` for audio-visual pairs.

    ``init``: ``herding`` (the authors' default: per class, the real pairs herding picks on a
    randomly initialised paired network's joint embedding), ``real`` (random real pairs) or
    ``noise``. ``multi_formation``: a factor f ≥ 1; each stored sample holds f×f tiles at 1/f of
    the resolution, unpacked to f² samples (each tile upsampled to full size) for matching and
    evaluation — the stored bytes stay those of ``ipc`` samples per class (the authors: f = 2).
    """

    init: Literal["real", "noise", "herding"] = "herding"
    multi_formation: int = 1

    def check(self, path: str) -> list[str]:
        problems = super().check(path)
        if self.multi_formation < 1:
            problems.append(f"{path}.multi_formation must be ≥ 1 (1: off; the authors use 2), got {self.multi_formation}")
        if self.soft_labels or self.learn_lr:
            problems.append(f"{path}: soft_labels and learn_lr are not offered for audio-visual pairs (the method "
                            "learns the pairs only); set them to false")
        return problems


@dataclass
class AVAugmentConfig:
    """Recipe section ``augment``: one siamese augmenter per modality (the same draw for the real and
    the synthetic batch of a modality; the two modalities draw independently), also used per sample
    in evaluation. Both take the differentiable DSA transforms: on a log-mel map, flip reverses
    time, crop shifts bands and frames, brightness adds a level (the AVDD authors apply DSA to
    spectrograms the same way, with one draw shared by both modalities)."""

    enabled: bool = True
    frames: AugmentConfig = field(default_factory=AugmentConfig)
    audio: AugmentConfig = field(default_factory=AugmentConfig)

    def check(self, path: str) -> list[str]:
        return []


@dataclass
class AVNetConfig:
    """``network.name: av_convnet`` — an audio ConvNet and a visual ConvNet, each with its own linear
    head, whose embeddings have the same size (each feature map is average-pooled to ``embed_grid``²
    cells of ``width`` channels), so the cross-modal terms can add them. ``depth`` blocks for frames,
    ``audio_depth`` for log-mel maps (null: ``depth``; the authors: 5 at 224² and 3). ``visual_lr_scale``
    multiplies the evaluation lr of the visual encoder (the authors: 1e-4 vs 1e-3)."""

    name: str = "av_convnet"
    depth: int = 4
    width: int = 128
    norm: Literal["instancenorm", "batchnorm", "layernorm", "groupnorm", "none"] = "instancenorm"
    pooling: Literal["avgpool", "maxpool", "none"] = "avgpool"
    activation: Literal["relu", "leakyrelu", "sigmoid", "gelu"] = "relu"
    audio_depth: int | None = None
    embed_grid: int = 2
    visual_lr_scale: float = 1.0

    def check(self, path: str) -> list[str]:
        return (at_least(self, path, ("depth", "audio_depth", "width", "embed_grid"))
                + positive(self, path, ("visual_lr_scale",)))
