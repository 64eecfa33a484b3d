"""The audio-visual domain: paired sound and picture distilled by AVDD (Kushwaha et al., TMLR 2024).

Each sample is one second of audio as a log-mel map (1×128×56 at 11 kHz) and one RGB frame of the
same second, with a class label (:mod:`.clips`, :mod:`.features`). Loaders read video files with an
audio track (class folders, a VGGSound-style CSV, AVE, MUSIC-21), paired sound and image files, and
the AVDD authors' preprocessed tensors; every one returns :class:`~.clips.AVData`, decoded once and
cached.

The domain fills the hooks of :class:`mmdd.core.domain.Domain`; inputs are :class:`~.batch.AVBatch`
pairs that index like one tensor, so the core's class index, splits, random and coreset baselines,
expert-free matching loop, checkpoints, evaluation and artifact are the one pipeline's:

* method ``avdd`` / ``av_dm`` (:mod:`.matching`): per-modality distribution matching plus implicit
  cross-matching and cross-modal gap matching, on a fresh paired network per draw;
* network ``av_convnet`` (:mod:`.networks`): audio and visual ConvNets with equal-size embeddings;
* synthetic set ``av_pairs`` (:mod:`.synthetic`): herding / real / noise start, multi-formation;
* evaluation (:mod:`.training`): CE(audio) + CE(visual), late fusion, and the audio-only and
  visual-only accuracies of the same networks.
"""

from __future__ import annotations


import functools

import torch
from torch import nn

from mmdd.core.coresets import limit_train, select
from mmdd.core.batch_reader import read_batches, slices
from mmdd.core.data import DataSplits, Split, channel_stats
from mmdd.core.distilled import DistilledDataset
from mmdd.core.domain import Domain, decoded, labelled_view
from mmdd.core.errors import ConfigError
from mmdd.core.evaluation import EvalSet, Samples
from mmdd.core.networks import create_network
from mmdd.core.lazy import is_lazy
from mmdd.core.registry import dataset_entry, import_submodules
from mmdd.core.store import StoreSource, build_store
from mmdd.core.seeding import make_generator
from mmdd.core.viewable import Viewable

from . import matching, networks  # noqa: F401  (register av_dm / avdd and av_convnet)
from .augment import describe_av_augment, make_av_augment
from .batch import AVBatch, LazyAVRows
from .clips import AVData
from .configs import AVAugmentConfig, AVNetConfig, AVSyntheticConfig
from .features import analysis_options, log_mel, normalize_frames, waveforms_of
from .render import side_by_side
from .synthetic import AVPairSet
from .training import MODALITY_METRICS, LateFusionTask

MAX_SKIPPED_LISTED = 50


def read_pairs(cfg) -> AVData | DataSplits:
    """The decoded pairs of the dataset a config names (the registered loader of ``cfg.name``), or —
    for a loader of data already in the distillation space (``avdd_tensors``) — its DataSplits."""
    return dataset_entry("audio_visual", cfg.name).load(cfg)


def to_distillation_space(pairs: AVData, cfg) -> DataSplits:
    """Log-mel maps (standardised with train's statistics when ``standardize_audio``) and normalised
    frames; pairs in the decoded store get their maps computed once into a store of their own and
    stay there, read and normalised a batch at a time."""
    opts = analysis_options(cfg)
    parts = {name: split for name, split in (("train", pairs.train), ("val", pairs.val), ("test", pairs.test))
             if split is not None and len(split)}
    maps = {name: stored_maps(cfg.name, name, split, opts, cfg.store_dir) if is_lazy(split.waveforms)
            else log_mel(split.waveforms, opts) for name, split in parts.items()}
    if cfg.standardize_audio:
        if is_lazy(maps["train"]):
            m, sd = channel_stats(maps["train"])  # the maps have one channel: the statistics of every value
            mean, std = float(m), max(float(sd), 1e-6)
        else:
            mean, std = float(maps["train"].mean()), float(maps["train"].std().clamp_min(1e-6))
    else:
        mean, std = 0.0, 1.0
    opts["audio_normalization"] = {"mean": mean, "std": std}

    def split_of(name: str, split) -> Split | None:
        if name not in maps:
            return None
        if is_lazy(split.frames):
            audio, frames = maps[name], split.frames

            def fetch(rows):
                return AVBatch((audio[rows] - mean) / std,
                               normalize_frames(frames[rows], cfg.frame_mean, cfg.frame_std))

            return Split(LazyAVRows(fetch, len(split), audio.row_shape, frames.row_shape, frames.describe),
                         split.labels)
        frames = normalize_frames(split.frames, cfg.frame_mean, cfg.frame_std)
        return Split(AVBatch((maps[name] - mean) / std, frames), split.labels)

    data = DataSplits(train=split_of("train", pairs.train), test=split_of("test", pairs.test),
                      val=split_of("val", pairs.val), num_classes=pairs.num_classes,
                      class_names=list(pairs.class_names))
    data.info.update({"audio_visual": opts, "skipped_files": len(pairs.skipped),
                      "skipped": pairs.skipped[:MAX_SKIPPED_LISTED], "split_rule": pairs.info.get("split_rule", ""),
                      "loader": {k: v for k, v in pairs.info.items() if k not in ("split_rule", "store")},
                      "store": pairs.info.get("store", {"storage": "memory"})})
    return data


def map_rows(waveforms, opts: dict, items: list[int]) -> dict:
    """Log-mel maps of consecutive rows of stored waveforms, for the map store."""
    return {"maps": log_mel(waveforms[items[0]:items[-1] + 1], opts).numpy()}


def stored_maps(loader: str, split_name: str, split, opts: dict, store_dir: str):
    """The log-mel maps of a split whose waveforms are in the store, computed once into a store of
    their own (keyed by the rows' sources and the analysis options); lazy rows of it."""
    source = StoreSource(f"av-{loader}-maps", {"analysis": opts, "waveforms": split.waveforms.describe},
                         items={split_name: list(range(len(split)))}, labels={split_name: split.labels.tolist()},
                         ids={split_name: list(split.sources)},
                         decode_block=functools.partial(map_rows, split.waveforms, opts))
    return build_store(source, store_dir).split(split_name).fields["maps"]


def herding_rows(ws, per_class: int) -> torch.Tensor:
    """``per_class`` rows per class picked by herding on a randomly initialised paired network's joint
    embedding (the network ``make_generator(seed)`` builds: the same as the ``herding`` baseline with
    ``coreset.embedding: random_net``)."""
    train = ws.data.train
    net = ws.network(ws.eval_network_cfg, make_generator(ws.cfg.seed))
    net.eval()
    with torch.no_grad():
        feats = torch.cat([net.embed(x).cpu() for x in read_batches(train.inputs, slices(len(train), 512), ws.device)])
    return select("herding", train.labels, ws.data.num_classes, per_class, make_generator(ws.cfg.seed), feats)


class DistilledAV(DistilledDataset):
    """A distilled audio-visual set: ``dataset[i]`` is ``(log-mel map, frame, label)``."""

    def __getitem__(self, index: int):
        return self.inputs.audio[index], self.inputs.frames[index], self.targets[index]

    def waveforms(self, indices=None, n_iter: int = 32) -> torch.Tensor:
        audio = self.inputs.audio if indices is None else self.inputs.audio[indices]
        return waveforms_of(audio, self.manifest["data"], n_iter)

    @property
    def sample_rate(self) -> int:
        return int(self.manifest["data"]["audio_visual"]["sample_rate"])


class AudioVisualDomain(Domain):
    name = "audio_visual"
    metric = "accuracy"
    extra_metrics = MODALITY_METRICS

    def augment_config(self) -> type:
        return AVAugmentConfig

    def synthetic_config(self) -> type:
        return AVSyntheticConfig

    # -- data
    def load_data(self, cfg) -> DataSplits:
        pairs = read_pairs(cfg)
        data = pairs if isinstance(pairs, DataSplits) else to_distillation_space(pairs, cfg)
        return limit_train(data, cfg.train_per_class, cfg.split_seed)

    def network_io(self, data: DataSplits):
        inputs = data.train.inputs
        return (inputs.audio_shape, inputs.frame_shape), data.num_classes

    def data_manifest(self, data: DataSplits) -> dict:
        inputs = data.train.inputs
        return {"num_classes": data.num_classes, "class_names": data.class_names, "train_size": len(data.train),
                "test_size": len(data.test), "val_size": len(data.val) if data.val is not None else 0,
                "input_shape": {"audio": list(inputs.audio_shape), "frames": list(inputs.frame_shape)}, **data.info}

    def real_bytes(self, data: DataSplits) -> int:
        train = data.train
        return train.inputs.nbytes() + train.labels.numel() * train.labels.element_size()

    # -- the parts
    def make_network(self, net_cfg, in_shape, num_classes: int, gen: torch.Generator, device: torch.device) -> nn.Module:
        if not isinstance(net_cfg, AVNetConfig):
            raise ConfigError(f"network.name: the audio_visual domain needs network.name: av_convnet, got "
                              f"{getattr(net_cfg, 'name', net_cfg)!r}")
        return create_network(net_cfg, in_shape, num_classes, gen, device=device)

    def make_augment(self, aug_cfg):
        return make_av_augment(aug_cfg)

    def make_synthetic(self, ws, gen: torch.Generator) -> AVPairSet:
        cfg, data = ws.cfg, ws.data
        f, ipc, k = cfg.synthetic.multi_formation, cfg.budget.ipc, data.num_classes
        per_class = ipc * f * f
        if cfg.synthetic.init == "noise":
            shape = data.train.inputs
            return AVPairSet(torch.randn((k * ipc, *shape.audio_shape), generator=gen),
                             torch.randn((k * ipc, *shape.frame_shape), generator=gen), k, ipc, f)
        counts = ws.real.counts()
        if min(counts) < per_class:
            raise ConfigError(f"budget.ipc={ipc} with synthetic.multi_formation={f} starts each class from "
                              f"{per_class} real pairs, but a class has only {min(counts)}; lower ipc or "
                              "multi_formation, or use synthetic.init: noise")
        if cfg.synthetic.init == "herding":
            rows = herding_rows(ws, per_class)
        else:
            rows = torch.cat([ws.real.sample_indices(c, per_class, gen) for c in range(k)])
        return AVPairSet.from_samples(data.train.inputs[rows].clone(), k, ipc, f)

    def describe_network(self, net_cfg) -> str:
        return networks.describe(net_cfg) if isinstance(net_cfg, AVNetConfig) else super().describe_network(net_cfg)

    def describe_augment(self, aug_cfg) -> str:
        return describe_av_augment(aug_cfg)

    # -- evaluation
    def task(self, data) -> LateFusionTask:
        return LateFusionTask()

    def distilled_set(self, ws, syn: AVPairSet) -> EvalSet:
        inputs, targets = decoded(syn)
        return EvalSet(Samples(inputs, targets))

    def distilled_dataset(self, syn, manifest: dict) -> DistilledAV:
        return DistilledAV(syn, manifest)

    # -- the run record
    def manifest_extras(self, ws, syn: AVPairSet) -> dict:
        return {"budget_note": f"{syn.ipc} stored pairs per class"
                               + (f", each unpacked to {syn.multi_formation ** 2} (multi-formation)"
                                  if syn.multi_formation > 1 else "")}

    def report_lines(self, manifest: dict) -> list[str]:
        return [f"- {manifest['budget_note']}"] if manifest.get("budget_note") else []

    def viewable(self, syn: AVPairSet, info: dict, load_real) -> Viewable:
        """Each stored pair (as evaluation sees it) as frame + spectrogram, and its sound."""
        inputs, _ = decoded(syn)
        return labelled_view(syn, info, "audio", images=side_by_side(inputs.frames, inputs.audio, info),
                             features=inputs.audio, waveforms=waveforms_of(inputs.audio, info),
                             sample_rate=int(info["audio_visual"]["sample_rate"]))


import_submodules(__name__)  # every format module registers its datasets; a new one needs no import line
