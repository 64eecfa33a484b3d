"""The audio domain: clips distilled as FD-MFCC maps (DDFAD), rendered back to listenable WAV.

Loaders read audio with ``soundfile`` and resample with torchaudio (Free Spoken Digit Dataset,
Speech Commands v2, ESC-50, and a class-per-folder layout); every clip is cropped or zero-padded
to ``clip_seconds`` and turned into FD-MFCC (MFCC, Δ, ΔΔ as three channels) or plain MFCC maps.
Maps are standardised per channel with the training split's statistics, which travel with the
artifact together with the analysis options, so ``mmdd show`` can invert samples to sound.
Matching runs through the core matchers on the maps with the core ConvNet and siamese
spectrogram augmentation (time shift, time and frequency masks).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor, nn

from mmdd.core.coresets import limit_train
from mmdd.core.data import ClassIndex, DataSplits, Split, normalize, stratified_split
from mmdd.core.networks import create_network
from mmdd.core.registry import dataset_config
from mmdd.core.seeding import make_generator
from mmdd.core.synthetic import PixelSet

from .augment import SpecAugment
from .configs import DATASET_CONFIGS, SpecAugmentConfig
from .datasets import AudioData, load_audio_folder, load_esc50, load_fsdd, load_speech_commands
from .features import compute_features, feature_options
from .render import render_audio

MAX_SKIPPED_LISTED = 50


def load_clips(cfg) -> AudioData:
    """The waveforms of the dataset a config names (cropped / padded, at its sample rate)."""
    root = Path(cfg.root).expanduser()
    common = {"sample_rate": cfg.sample_rate, "clip_samples": cfg.clip_samples, "on_error": cfg.on_error}
    if cfg.name == "fsdd":
        return load_fsdd(root, **common)
    if cfg.name == "speech_commands":
        return load_speech_commands(root, task=cfg.task, split_seed=cfg.split_seed, **common)
    if cfg.name == "esc50":
        return load_esc50(root, test_fold=cfg.test_fold, val_fold=cfg.val_fold, **common)
    return load_audio_folder(root, test_fraction=cfg.test_fraction, split_seed=cfg.split_seed, **common)


class AudioDomain:
    name = "audio"
    metric = "accuracy"

    def dataset_config(self, name: str) -> type:
        return dataset_config("audio", DATASET_CONFIGS, name)

    def augment_config(self) -> type:
        return SpecAugmentConfig

    def load_data(self, cfg) -> DataSplits:
        clips = load_clips(cfg)
        opts = feature_options(cfg)

        def features(split) -> Split | None:  # an empty split (e.g. no validation list entries) is no split
            return None if split is None or len(split) == 0 else Split(compute_features(split.waveforms, opts),
                                                                      split.labels)

        splits = DataSplits(train=features(clips.train), test=features(clips.test), val=features(clips.val),
                            num_classes=len(clips.class_names), class_names=list(clips.class_names))
        if splits.val is None and cfg.val_fraction > 0:
            keep, held = stratified_split(splits.train.labels, cfg.val_fraction, make_generator(cfg.split_seed))
            splits.train, splits.val = splits.train.subset(keep), splits.train.subset(held)
        splits.info.update({"audio": opts, "skipped_files": len(clips.skipped),
                            "skipped": clips.skipped[:MAX_SKIPPED_LISTED]})
        return normalize(limit_train(splits, cfg.train_per_class, cfg.split_seed))

    def make_network(self, net_cfg, in_shape: Sequence[int], num_classes: int, gen: torch.Generator,
                     device: torch.device) -> nn.Module:
        return create_network(net_cfg, in_shape, num_classes, gen, spatial_dims=2, device=device)

    def make_augment(self, aug_cfg: SpecAugmentConfig) -> SpecAugment | None:
        if not aug_cfg.enabled:
            return None
        return SpecAugment(aug_cfg.transforms(), mode=aug_cfg.mode, max_shift=aug_cfg.max_shift,
                           time_mask=aug_cfg.time_mask, freq_mask=aug_cfg.freq_mask)

    def make_synthetic(self, recipe, real: ClassIndex, gen: torch.Generator) -> PixelSet:
        return PixelSet.from_real(real, recipe.budget.ipc, recipe.synthetic, gen)

    def render(self, inputs: Tensor, labels: Tensor, info: dict, out_dir: Path) -> list[Path]:
        return render_audio(inputs, labels, info, out_dir, class_names=info.get("class_names"))
