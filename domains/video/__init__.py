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

import torch
from torch import Tensor

from mmdd.core.augment import AugmentConfig, parse_strategy, volume_aware_augment
from mmdd.core.coresets import limit_train
from mmdd.core.data import DataSplits, Split, normalize
from mmdd.core.errors import ConfigError
from mmdd.core.lazy import LazyRows, is_lazy
from mmdd.core.domain import Domain, decoded, labelled_view
from mmdd.core.evaluation import BASELINES, SYNTHETIC_BASELINES, EpochDraws, EvalSet, Samples, train_model
from mmdd.core.networks import rank_network
from mmdd.core.registry import dataset_entry, import_submodules
from mmdd.core.seeding import child_seed, make_generator
from mmdd.core.synthetic import PixelSet
from mmdd.core.viewable import Viewable

from .configs import VideoSyntheticConfig
from .datasets import VideoData, VideoSplit  # importing .datasets registers the video datasets
from .memory import StaticDynamicSet, motion_of
from .render import first_channels, to_unit
from .selection import gather_windows, lowest_loss, window_losses

BASELINES.update({"slide_window", "static_only"})
SYNTHETIC_BASELINES.add("static_only")
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
    """The clips of the dataset a config names (``frames`` overrides the clip length), with the
    validation split it asks for (the registered loader of ``cfg.name``)."""
    from dataclasses import replace

    if frames:
        cfg = replace(cfg, frames=frames)
    return dataset_entry("video", cfg.name).load(cfg)


def clips_to_inputs(split: VideoSplit, grayscale: bool) -> Tensor | LazyRows:
    """uint8 N×T×C×H×W → float N×C×T×H×W in [0, 1] (one channel with ``grayscale``); clips held in
    the decoded store stay there and are converted a batch at a time."""
    def convert(clips: Tensor) -> Tensor:
        x = clips.permute(0, 2, 1, 3, 4).float().div_(255)
        return x.mean(dim=1, keepdim=True) if grayscale else x

    if is_lazy(split.clips):
        t, c, h, w = split.clips.row_shape
        return split.clips.map(convert, (1 if grayscale else c, t, h, w), torch.float32,
                               stats_tag="cthw-unit" + ("-gray" if grayscale else ""))
    return convert(split.clips)


def video_splits(cfg, frames: int | None = None) -> DataSplits:
    """Un-normalised splits, with the validation split and training subset the options ask for."""
    data = load_videos(cfg, frames)

    def split(part: VideoSplit | None) -> Split | None:
        return None if part is None or len(part) == 0 else Split(clips_to_inputs(part, cfg.grayscale), part.labels)

    splits = DataSplits(train=split(data.train), test=split(data.test), val=split(data.val),
                        num_classes=data.num_classes, class_names=list(data.class_names))
    splits.info.update({"video": {"frames": frames or cfg.frames, "size": cfg.size, "stride": cfg.stride,
                                  "grayscale": cfg.grayscale},
                        "skipped_files": len(data.skipped), "skipped": data.skipped[:MAX_SKIPPED_LISTED],
                        "split_rule": data.info["split_rule"],
                        "store": data.info.get("store", {"storage": "memory"})})
    return limit_train(splits, cfg.train_per_class, cfg.split_seed)


def frames_of(train: Split) -> Split:
    """Every frame of every clip as an image (N·T)×C×H×W, labelled with its clip's class (frame
    ``k`` of clip ``i`` is row ``i·T + k``; stored clips are read a batch of frames at a time)."""
    n, c, t, h, w = train.inputs.shape
    labels = train.labels.repeat_interleave(t)
    if is_lazy(train.inputs):
        clips = train.inputs

        def fetch(rows):
            rows = torch.as_tensor(rows)
            return clips[rows // t][torch.arange(len(rows)), :, rows % t]

        return Split(LazyRows(fetch, n * t, (c, h, w), clips.dtype, "frames of stored clips"), labels)
    return Split(train.inputs.permute(0, 2, 1, 3, 4).reshape(n * t, c, h, w), labels)


class VideoDomain(Domain):
    name = "video"
    metric = "accuracy"
    budget_unit = "videos per class"

    # -- configuration
    def augment_config(self) -> type:
        return VideoAugmentConfig

    def synthetic_config(self) -> type:
        return VideoSyntheticConfig

    # -- data
    def load_data(self, cfg) -> DataSplits:
        return normalize(video_splits(cfg))

    def stage_data(self, stage: str, train: Split) -> Split:
        if stage != "static":
            raise ConfigError(f"stages.{stage}: the video domain has one earlier stage, 'static'")
        return frames_of(train)

    make_network = staticmethod(rank_network)  # 2D for images, 3D for C×D×H×W
    make_augment = staticmethod(volume_aware_augment)  # image DSA, in-plane for 5-D inputs

    # -- slide-window selection
    def slide_window(self, ws) -> tuple[Tensor | LazyRows, Tensor, Tensor]:
        """(the longer clips N×C×L×H×W, each one's best window start N, its loss N) for every training
        video, computed once per workspace (kept in ``ws.cache``: the initialisation and the
        ``slide_window`` baseline share it); only the windows chosen are ever gathered."""
        if "slide_window" in ws.cache:
            return ws.cache["slide_window"]
        recipe, train = ws.cfg, ws.data.train
        syn_cfg = recipe.synthetic
        frames = recipe.dataset.frames
        long_frames = syn_cfg.selection_frames or 2 * frames
        long = video_splits(recipe.dataset, long_frames).train
        if len(long) != len(train) or not torch.equal(long.labels, train.labels):
            raise ConfigError("slide-window selection: reading the training videos at "
                              f"{long_frames} frames gave a different set of videos; check dataset.on_error")
        normalization = ws.data.info["normalization"]  # longer reads are normalised like the clips
        shape = [1, -1, 1, 1, 1]
        mean = torch.tensor(normalization["mean"]).view(shape)
        std = torch.tensor(normalization["std"]).view(shape)
        long_inputs = (long.inputs.map(lambda x: (x - mean) / std) if is_lazy(long.inputs)
                       else (long.inputs - mean) / std)
        gen = make_generator(recipe.seed)
        teacher = ws.network(ws.eval_network_cfg, gen)
        augment = self.make_augment(recipe.augment) if recipe.evaluation.augment else None
        train_model(teacher, train.inputs, train.labels, recipe.evaluation, gen, augment, ws.device,
                    epochs=syn_cfg.teacher_epochs, desc="slide-window teacher" if ws.progress else None)
        starts, losses = window_losses(teacher, long_inputs, long.labels, frames, syn_cfg.selection_stride, ws.device)
        ws.cache["slide_window"] = long_inputs, starts, losses
        return ws.cache["slide_window"]

    def selected(self, ws, per_class: int) -> Split:
        long_inputs, starts, losses = self.slide_window(ws)
        real = ws.real
        index = lowest_loss(losses, real.split.labels, real.num_classes, per_class)
        return Split(gather_windows(long_inputs, starts, index, ws.cfg.dataset.frames), real.split.labels[index])

    # -- synthetic sets and baselines
    def make_synthetic(self, ws, gen: torch.Generator):
        recipe, real = ws.cfg, ws.real
        opts = recipe.synthetic
        ipc = recipe.budget.ipc
        if opts.parameterisation == "full":
            if opts.init == "slide_window":
                chosen = self.selected(ws, ipc)
                return PixelSet(chosen.inputs, real.num_classes, ipc, soft_labels=opts.soft_labels,
                                learn_lr=opts.learn_lr, lr_init=opts.lr_init, lr_groups=opts.lr_groups)
            return PixelSet.from_real(real, ipc, opts, gen)
        if opts.soft_labels:
            raise ConfigError("synthetic.soft_labels is not available with parameterisation: static_dynamic (the "
                              "labels are per video); use hard labels or parameterisation: full")
        group = 2 if opts.pairing == "random" else 1  # random pairing: each slot draws from 2 of each (the authors)
        n_static = opts.static_per_class or group * ipc
        n_dynamic = opts.dynamic_per_class or group * ipc
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
                clips = self.selected(ws, most).inputs
            else:
                clips = torch.cat([real.sample(cls, most, gen) for cls in range(real.num_classes)])
            clips = clips.view(real.num_classes, most, c, t, h, w)
            static = clips[:, :n_static, :, t // 2].reshape(-1, c, h, w)
            dynamic = motion_of(clips[:, :n_dynamic].reshape(-1, c, t, h, w), opts.dynamic_channels,
                                opts.dynamic_scale)
        if opts.dynamic_init == "noise":  # as published: unit Gaussian noise, whatever the stills start from
            dynamic = torch.randn((real.num_classes * n_dynamic, opts.dynamic_channels, *small), generator=gen)
        draw_seed = child_seed(gen) if opts.pairing == "random" else 0
        return StaticDynamicSet(static, dynamic, real.num_classes, ipc, integrator_width=opts.integrator_width,
                                learn_lr=opts.learn_lr, lr_init=opts.lr_init, lr_groups=opts.lr_groups,
                                integrator_lr=opts.integrator_lr, integrator=opts.integrator, pairing=opts.pairing,
                                draw_seed=draw_seed, gen=gen)

    def distilled_set(self, ws, syn) -> EvalSet:
        """A static/dynamic set with random pairing trains each evaluation epoch on a fresh draw of
        every slot's pairing (as the authors' evaluation does); any other set on its decoded clips."""
        if not (isinstance(syn, StaticDynamicSet) and syn.pairing == "random"):
            return super().distilled_set(ws, syn)
        lr = syn.learned_lr() if ws.cfg.evaluation.use_learned_lr else None
        first = Samples(*decoded(syn))
        return EvalSet(EpochDraws(first.inputs, first.targets, draw=lambda gen: Samples(*syn.pairing_draw(gen))), lr)

    def baseline_set(self, ws, name: str, syn=None) -> EvalSet | None:
        if name == "slide_window":
            return EvalSet(self.selected(ws, ws.cfg.budget.ipc))
        if name == "static_only":
            if not isinstance(syn, StaticDynamicSet):
                return None
            with torch.no_grad():
                clips = syn.videos(static_only=True).detach().cpu()
            return EvalSet(Samples(clips, syn.labels.cpu()),
                           syn.learned_lr() if ws.cfg.evaluation.use_learned_lr else None)
        return None

    # -- rendering
    def viewable(self, syn, info: dict, load_real) -> Viewable:
        """Each clip, and as its still the static memory it was built from (static/dynamic sets) or its
        middle frame."""
        clips, _ = decoded(syn)
        videos = to_unit(clips, info)
        if isinstance(syn, StaticDynamicSet):
            stills = to_unit(syn.static[syn.static_index], info)
        else:
            stills = videos[:, :, videos.shape[2] // 2]
        return labelled_view(syn, info, "video", images=first_channels(stills), videos=videos)


import_submodules(__name__)  # every format module registers its datasets; a new one needs no import line
