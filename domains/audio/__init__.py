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

from typing import Sequence

import torch
from torch import Tensor, nn

from mmdd.core.coresets import limit_train
from mmdd.core.distilled import DistilledDataset
from mmdd.core.domain import Domain, decoded, labelled_view
from mmdd.core.data import DataSplits, Split, denormalize, normalize
from mmdd.core.lazy import is_lazy
from mmdd.core.networks import create_network
from mmdd.core.registry import dataset_entry, import_submodules
from mmdd.core.store import StoreSource, build_store
from mmdd.core.synthetic import PixelSet
from mmdd.core.viewable import Viewable

from .augment import SpecAugment
from .configs import SpecAugmentConfig
from .datasets import AudioData  # importing .datasets registers the audio datasets
from .features import compute_features, feature_options
from .render import map_images, waveforms_of

MAX_SKIPPED_LISTED = 50


def load_clips(cfg) -> AudioData:
    """The waveforms of the dataset a config names (cropped / padded, at its sample rate), with the
    validation split it asks for (the registered loader of ``cfg.name``)."""
    return dataset_entry("audio", cfg.name).load(cfg)


def feature_rows(waveforms, opts: dict, items: list[int]) -> dict:
    """Features of consecutive rows of stored waveforms, for the feature store."""
    return {"features": compute_features(waveforms[items[0]:items[-1] + 1], opts).numpy()}


def stored_features(loader: str, split_name: str, split, opts: dict, store_dir: str) -> tuple[Split, dict]:
    """The features of a split whose waveforms are in the store, computed once into a store of their
    own (keyed by the rows' sources and the analysis options) and streamed from there; and that
    store's record."""
    import functools

    n = len(split)
    source = StoreSource(f"{loader}-features", {"features": opts, "waveforms": split.waveforms.describe},
                         items={split_name: list(range(n))}, labels={split_name: split.labels.tolist()},
                         ids={split_name: list(split.paths)},
                         decode_block=functools.partial(feature_rows, split.waveforms, opts))
    store = build_store(source, store_dir)
    stored = store.split(split_name)
    return Split(stored.fields["features"], stored.labels), store.record()


class DistilledAudio(DistilledDataset):
    """A distilled audio set: ``(map, target)`` items like any class-labelled set, plus waveforms."""

    def waveforms(self, indices=None, n_iter: int = 32) -> Tensor:
        """The samples rendered to sound (N×clip_samples at ``sample_rate``), as ``mmdd show`` does."""
        return waveforms_of(self.inputs if indices is None else self.inputs[indices], self.manifest["data"], n_iter)

    @property
    def sample_rate(self) -> int:
        return int(self.manifest["data"]["audio"]["sample_rate"])


class AudioDomain(Domain):
    name = "audio"
    metric = "accuracy"

    def augment_config(self) -> type:
        return SpecAugmentConfig

    def load_data(self, cfg) -> DataSplits:
        clips = load_clips(cfg)
        opts = feature_options(cfg)
        records: list[dict] = []  # the feature stores, when the clips are in the store

        def features(name: str, split) -> Split | None:  # an empty split (e.g. no validation entries) is no split
            if split is None or len(split) == 0:
                return None
            if is_lazy(split.waveforms):  # clips in the store: their features go to a store of their own
                features_split, record = stored_features(cfg.name, name, split, opts, cfg.store_dir)
                records.append(record)
                return features_split
            return Split(compute_features(split.waveforms, opts), split.labels)

        splits = DataSplits(train=features("train", clips.train), test=features("test", clips.test),
                            val=features("val", clips.val), num_classes=len(clips.class_names),
                            class_names=list(clips.class_names))
        splits.info["store"] = {"storage": "store", "stores": records} if records else {"storage": "memory"}
        splits.info.update({"audio": opts, "skipped_files": len(clips.skipped),
                            "skipped": clips.skipped[:MAX_SKIPPED_LISTED], "split_rule": clips.info["split_rule"]})
        return normalize(limit_train(splits, cfg.train_per_class, cfg.split_seed))

    def make_network(self, net_cfg, in_shape: Sequence[int], num_classes: int, gen: torch.Generator,
                     device: torch.device) -> nn.Module:
        return create_network(net_cfg, in_shape, num_classes, gen, spatial_dims=2, device=device)

    def make_augment(self, aug_cfg: SpecAugmentConfig) -> SpecAugment | None:
        if not aug_cfg.enabled:
            return None
        return SpecAugment(aug_cfg.transforms(), mode=aug_cfg.mode, max_shift=aug_cfg.max_shift,
                           time_mask=aug_cfg.time_mask, freq_mask=aug_cfg.freq_mask)

    def make_synthetic(self, ws, gen: torch.Generator) -> PixelSet:
        return PixelSet.from_real(ws.real, ws.cfg.budget.ipc, ws.cfg.synthetic, gen)

    def distilled_dataset(self, syn, manifest: dict) -> DistilledAudio:
        return DistilledAudio(syn, manifest)

    def viewable(self, syn, info: dict, load_real) -> Viewable:
        """The feature maps as pictures and the MFCC channel inverted to sound at the dataset's rate."""
        inputs, _ = decoded(syn)
        features = denormalize(inputs.float(), info)
        return labelled_view(syn, info, "audio", images=map_images(features), features=features,
                             waveforms=waveforms_of(features, info, normalized=False),
                             sample_rate=int(info["audio"]["sample_rate"]))


import_submodules(__name__)  # every format module registers its datasets; a new one needs no import line
