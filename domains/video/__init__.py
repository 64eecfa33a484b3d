"""The video domain: clips distilled as full synthetic videos or as static + dynamic memories.

Data: decord loaders for UCF101, HMDB51, Kinetics-style CSVs, Something-Something V2 and frame
folders (:mod:`.datasets`), clips of ``frames`` frames at ``size``², decoded once and cached.
The distillation space is normalised clips N×C×T×H×W. Networks: the core ConvNet, 3D for clips
(ConvNet3D: 3×3×3 conv blocks pooling over time and space) and 2D for the frames of the static
stage. Augmentation: the image DSA applied in-plane, the same draw for every frame.

Synthetic sets (``synthetic.parameterisation``): ``full`` (every frame stored, a PixelSet of
clips) or ``static_dynamic`` (:mod:`.memory`): stage ``static`` learns one still frame per video
with an image matcher on real frames (``stages.static``), then stage ``main`` learns the dynamic
memories and the integrator with the recipe's ``method`` (DM or MTT) on whole clips.
Baselines beyond the core ones: ``slide_window`` (:mod:`.selection`) and ``static_only`` (the
run's still frames repeated over time, no motion).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from mmdd.core.augment import AugmentConfig, parse_strategy, volume_aware_augment
from mmdd.core.coresets import limit_train
from mmdd.core.data import ClassIndex, DataSplits, Split, normalize, stratified_split
from mmdd.core.errors import ConfigError
from mmdd.core.evaluation import BASELINES, train_model
from mmdd.core.networks import rank_network
from mmdd.core.registry import dataset_config
from mmdd.core.seeding import make_generator
from mmdd.core.synthetic import PixelSet

from .configs import DATASET_CONFIGS, VideoSyntheticConfig
from .datasets import (VideoData, VideoSplit, load_frame_folders, load_hmdb51, load_kinetics_csv,
                       load_something_something, load_ucf101)
from .memory import StaticDynamicSet, motion_of
from .render import render_clips
from .selection import best_windows, lowest_loss

BASELINES.update({"slide_window", "static_only"})
MAX_SKIPPED_LISTED = 50


@dataclass
class VideoAugmentConfig(AugmentConfig):
    """Recipe section ``augment`` for video: the image DSA applied to every frame alike (no ``color``)."""

    strategy: str = "crop_cutout_flip_scale_rotate"

    def check(self, path: str) -> list[str]:
        problems = super().check(path)
        if not problems and "color" in parse_strategy(self.strategy):
            problems.append(f"{path}.strategy: 'color' is not available for clips (it mixes channels across "
                            "frames); use crop, cutout, flip, scale, rotate")
        return problems


def load_videos(cfg, frames: int | None = None) -> VideoData:
    """The clips of the dataset a config names (``frames`` overrides the clip length)."""
    common = {"classes": cfg.classes, "frames": frames or cfg.frames, "stride": cfg.stride, "size": cfg.size,
              "on_error": cfg.on_error, "seed": cfg.clip_seed,
              "cache_dir": None if cfg.cache_dir is None else Path(cfg.cache_dir).expanduser()}
    root = Path(cfg.root).expanduser()
    if cfg.name == "ucf101":
        return load_ucf101(root, Path(cfg.split_dir).expanduser(), cfg.fold, **common)
    if cfg.name == "hmdb51":
        return load_hmdb51(root, Path(cfg.split_dir).expanduser(), cfg.fold, **common)
    if cfg.name == "kinetics_csv":
        return load_kinetics_csv(root, [Path(c).expanduser() for c in cfg.csv], **common)
    if cfg.name == "something_something":
        return load_something_something(root, Path(cfg.annotations_dir).expanduser(), **common)
    return load_frame_folders(root, **common)


def clips_to_inputs(split: VideoSplit, grayscale: bool) -> Tensor:
    """uint8 N×T×C×H×W → float N×C×T×H×W in [0, 1] (one channel with ``grayscale``)."""
    x = split.clips.permute(0, 2, 1, 3, 4).float().div_(255)
    return x.mean(dim=1, keepdim=True) if grayscale else x


def video_splits(cfg, frames: int | None = None) -> DataSplits:
    """Un-normalised splits, with the validation split and training subset the options ask for."""
    data = load_videos(cfg, frames)

    def split(part: VideoSplit | None) -> Split | None:
        return None if part is None or len(part) == 0 else Split(clips_to_inputs(part, cfg.grayscale), part.labels)

    splits = DataSplits(train=split(data.train), test=split(data.test), val=split(data.val),
                        num_classes=data.num_classes, class_names=list(data.class_names))
    if splits.val is None and cfg.val_fraction > 0:
        keep, held = stratified_split(splits.train.labels, cfg.val_fraction, make_generator(cfg.split_seed))
        splits.train, splits.val = splits.train.subset(keep), splits.train.subset(held)
    splits.info.update({"video": {"frames": frames or cfg.frames, "size": cfg.size, "stride": cfg.stride,
                                  "grayscale": cfg.grayscale},
                        "skipped_files": len(data.skipped), "skipped": data.skipped[:MAX_SKIPPED_LISTED]})
    return limit_train(splits, cfg.train_per_class, cfg.split_seed)


def frames_of(train: Split) -> Split:
    """Every frame of every clip as an image (N·T)×C×H×W, labelled with its clip's class."""
    n, c, t, h, w = train.inputs.shape
    return Split(train.inputs.permute(0, 2, 1, 3, 4).reshape(n * t, c, h, w), train.labels.repeat_interleave(t))


class VideoDomain:
    name = "video"
    metric = "accuracy"

    def __init__(self):
        self._selection: dict = {}
        self._last_normalization: dict | None = None

    # -- configuration
    def dataset_config(self, name: str) -> type:
        return dataset_config("video", DATASET_CONFIGS, name)

    def augment_config(self) -> type:
        return VideoAugmentConfig

    def synthetic_config(self) -> type:
        return VideoSyntheticConfig

    # -- data
    def load_data(self, cfg) -> DataSplits:
        splits = normalize(video_splits(cfg))
        self._last_normalization = splits.info["normalization"]  # slide-window init normalises longer reads alike
        return splits

    def stage_data(self, stage: str, train: Split) -> Split:
        if stage != "static":
            raise ConfigError(f"stages.{stage}: the video domain has one earlier stage, 'static'")
        return frames_of(train)

    make_network = staticmethod(rank_network)  # 2D for images, 3D for C×D×H×W
    make_augment = staticmethod(volume_aware_augment)  # image DSA, in-plane for 5-D inputs

    # -- slide-window selection
    def slide_window(self, recipe, train: Split, num_classes: int, normalization: dict,
                     device: torch.device) -> tuple[Tensor, Tensor]:
        """(windows N×C×T×H×W, loss N) for every training video, cached per recipe."""
        syn_cfg = recipe.synthetic
        key = (recipe.name, recipe.seed, recipe.dataset.name, getattr(recipe.dataset, "root", None), len(train))
        if key in self._selection:
            return self._selection[key]
        frames = recipe.dataset.frames
        long_frames = syn_cfg.selection_frames or 2 * frames
        long = video_splits(recipe.dataset, long_frames).train
        if len(long) != len(train) or not torch.equal(long.labels, train.labels):
            raise ConfigError("slide-window selection: reading the training videos at "
                              f"{long_frames} frames gave a different set of videos; check dataset.on_error")
        shape = [1, -1, 1, 1, 1]
        mean = torch.tensor(normalization["mean"]).view(shape)
        std = torch.tensor(normalization["std"]).view(shape)
        long_inputs = (long.inputs - mean) / std
        eval_cfg = recipe.evaluation
        net_cfg = eval_cfg.network or recipe.network
        gen = make_generator(recipe.seed)
        teacher = self.make_network(net_cfg, tuple(train.inputs.shape[1:]), num_classes, gen, device)
        augment = self.make_augment(recipe.augment) if eval_cfg.augment else None
        train_model(teacher, train.inputs, train.labels, eval_cfg, gen, augment, device,
                    epochs=syn_cfg.teacher_epochs, desc="slide-window teacher")
        windows, losses = best_windows(teacher, long_inputs, long.labels, frames, syn_cfg.selection_stride, device)
        self._selection[key] = (windows, losses)
        return windows, losses

    def selected(self, recipe, real: ClassIndex, normalization: dict, per_class: int) -> Split:
        windows, losses = self.slide_window(recipe, real.split, real.num_classes, normalization,
                                           torch.device(recipe.device))
        index = lowest_loss(losses, real.split.labels, real.num_classes, per_class)
        return Split(windows[index], real.split.labels[index])

    # -- synthetic sets and baselines
    def make_synthetic(self, recipe, real: ClassIndex, gen: torch.Generator):
        opts = recipe.synthetic
        ipc = recipe.budget.ipc
        if opts.parameterisation == "full":
            if opts.init == "slide_window":
                chosen = self.selected(recipe, real, self._normalization, ipc)
                return PixelSet(chosen.inputs, real.num_classes, ipc, soft_labels=opts.soft_labels,
                                learn_lr=opts.learn_lr, lr_init=opts.lr_init, lr_groups=opts.lr_groups)
            return PixelSet.from_real(real, ipc, opts, gen)
        if opts.soft_labels:
            raise ConfigError("synthetic.soft_labels is not available with parameterisation: static_dynamic (the "
                              "labels are per video); use hard labels or parameterisation: full")
        n_static = opts.static_per_class or ipc
        n_dynamic = opts.dynamic_per_class or ipc
        n, c, t, h, w = real.split.inputs.shape
        if opts.dynamic_scale > min(h, w):
            raise ConfigError(f"synthetic.dynamic_scale={opts.dynamic_scale} is larger than the frames ({h}×{w})")
        small = (t, max(1, h // opts.dynamic_scale), max(1, w // opts.dynamic_scale))
        if opts.init == "noise":
            static = torch.randn((real.num_classes * n_static, c, h, w), generator=gen)
            dynamic = torch.randn((real.num_classes * n_dynamic, opts.dynamic_channels, *small), generator=gen) * 0.1
        else:
            most = max(n_static, n_dynamic)
            if opts.init == "slide_window":
                clips = self.selected(recipe, real, self._normalization, most).inputs
            else:
                clips = torch.cat([real.sample(cls, most, gen) for cls in range(real.num_classes)])
            clips = clips.view(real.num_classes, most, c, t, h, w)
            static = clips[:, :n_static, :, t // 2].reshape(-1, c, h, w)
            dynamic = motion_of(clips[:, :n_dynamic].reshape(-1, c, t, h, w), opts.dynamic_channels,
                                opts.dynamic_scale)
        return StaticDynamicSet(static, dynamic, real.num_classes, ipc, integrator_width=opts.integrator_width,
                                learn_lr=opts.learn_lr, lr_init=opts.lr_init, lr_groups=opts.lr_groups,
                                integrator_lr=opts.integrator_lr, gen=gen)

    @property
    def _normalization(self) -> dict:
        if self._last_normalization is None:
            raise ConfigError("slide-window selection needs the data loaded first (domain.load_data)")
        return self._last_normalization

    def baseline_set(self, ws, name: str, syn=None):
        if name == "slide_window":
            chosen = self.selected(ws.cfg, ws.real, ws.splits.info["normalization"], ws.cfg.budget.ipc)
            return chosen.inputs, chosen.labels, None, None
        if name == "static_only":
            if not isinstance(syn, StaticDynamicSet):
                return None
            with torch.no_grad():
                clips = syn.videos(static_only=True).detach().cpu()
            return clips, syn.labels.cpu(), syn.learned_lr() if ws.cfg.evaluation.use_learned_lr else None, None
        return None

    # -- rendering
    def render(self, inputs: Tensor, labels: Tensor, info: dict, out_dir: Path) -> list[Path]:
        return render_clips(inputs, labels, info, out_dir)

    def render_run(self, run) -> list[Path]:
        syn = run.synthetic
        with torch.no_grad():
            clips, labels = syn.decode()
        stills = syn.static if isinstance(syn, StaticDynamicSet) else None
        return render_clips(clips, labels, {**run.manifest["data"]}, run.dir, stills=stills)
