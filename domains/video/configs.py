"""Typed options of the video domain: datasets (recipe section ``dataset``) and the synthetic set.

Every dataset shares the clip options: ``frames`` sampled at ``stride`` (random start for
training clips, from ``clip_seed``; centred for test clips, or ``test_clips`` evenly spaced clips
per test video, each its own test row, so the accuracy averages over them), brought to ``size``²
by ``resize`` (``square``: resized, aspect not kept; ``short_side_crop``: short side resized to
``size``, then the centre crop, as the static/dynamic-memory authors' frames), decoded once and
cached under ``cache_dir`` (``null``: no cache); ``grayscale`` averages the colour channels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mmdd.core.checks import at_least, folder_problems, positive, root_problems, subset_problems
from mmdd.core.store import StorageOptions
from mmdd.core.synthetic import SyntheticConfig


@dataclass
class ClipOptions(StorageOptions):
    frames: int = 16
    stride: int = 1
    size: int = 112
    resize: Literal["square", "short_side_crop"] = "square"
    test_clips: int = 1
    grayscale: bool = False
    on_error: Literal["fail", "skip"] = "fail"
    clip_seed: int = 0
    cache_dir: str | None = "~/.cache/mmdd/video"
    classes: list[str] | None = None
    val_fraction: float = 0.0
    split_seed: int = 0
    train_per_class: int | None = None

    def clip_problems(self, path: str) -> list[str]:
        problems = at_least(self, path, ("frames", "stride", "size", "train_per_class", "test_clips"))
        if self.classes is not None and not self.classes:
            problems.append(f"{path}.classes: expected a non-empty list of class names or null (all classes)")
        return problems + subset_problems(path, self.train_per_class, self.val_fraction) + self.storage_problems(path)


@dataclass
class OfficialSplitConfig(ClipOptions):
    """A layout with class folders of videos under ``root`` and official split files under
    ``split_dir`` (``fold`` 1–3); subclasses say what each folder holds."""

    root: str | None = None
    split_dir: str | None = None
    fold: int = 1
    ROOT_HOLDS = ""
    SPLITS_HOLD = ""

    def check(self, path: str) -> list[str]:
        problems = root_problems(path, self.root, self.ROOT_HOLDS)
        problems += folder_problems(path, "split_dir", self.split_dir, self.SPLITS_HOLD)
        if self.fold not in (1, 2, 3):
            problems.append(f"{path}.fold must be 1, 2 or 3 (the official splits), got {self.fold}")
        return problems + self.clip_problems(path)


@dataclass
class UCF101Config(OfficialSplitConfig):
    """UCF101 (or a set in its layout, e.g. the generated action set): class folders of ``.avi``
    under ``root``; ``classInd.txt`` and ``trainlist0{fold}.txt`` / ``testlist0{fold}.txt`` under
    ``split_dir``. ``classes`` keeps a subset (miniUCF: 50 classes)."""

    name: str = "ucf101"
    ROOT_HOLDS = "one folder of .avi videos per class (UCF-101)"
    SPLITS_HOLD = "classInd.txt, trainlist0N.txt and testlist0N.txt"


@dataclass
class HMDB51Config(OfficialSplitConfig):
    """HMDB51: class folders of ``.avi`` under ``root``; ``<class>_test_split{fold}.txt`` under ``split_dir``."""

    name: str = "hmdb51"
    ROOT_HOLDS = "one folder of .avi videos per class (hmdb51_org)"
    SPLITS_HOLD = "the <class>_test_split<fold>.txt files"


@dataclass
class KineticsConfig(ClipOptions):
    """Kinetics-style trimmed clips: ``root/<split>/<label>/<youtube_id>_<start>_<end>.mp4`` listed in
    CSV files (``label,youtube_id,time_start,time_end,split``)."""

    name: str = "kinetics_csv"
    root: str | None = None
    csv: list[str] | None = None

    def check(self, path: str) -> list[str]:
        problems = root_problems(path, self.root, "<split>/<label>/<youtube_id>_<start>_<end>.mp4 clips")
        if not self.csv:
            problems.append(f"{path}.csv is required: the annotation CSV file(s) (e.g. [train.csv, validate.csv])")
        return problems + self.clip_problems(path)


@dataclass
class SomethingSomethingConfig(ClipOptions):
    """Something-Something V2: ``root/<id>.webm`` and the JSON annotations under ``annotations_dir``."""

    name: str = "something_something"
    root: str | None = None
    annotations_dir: str | None = None

    def check(self, path: str) -> list[str]:
        problems = root_problems(path, self.root, "the <id>.webm videos")
        if not self.annotations_dir:
            problems.append(f"{path}.annotations_dir is required: the folder holding labels.json, "
                            "train.json and validation.json")
        return problems + self.clip_problems(path)


@dataclass
class FrameFoldersConfig(ClipOptions):
    """Pre-extracted frames: ``root/{train,test[,val]}/<class>/<video>/<frame images>``."""

    name: str = "frame_folders"
    root: str | None = None

    def check(self, path: str) -> list[str]:
        return root_problems(path, self.root, "train/ and test/ with <class>/<video>/frame images") + \
            self.clip_problems(path)


@dataclass
class VideoSyntheticConfig(SyntheticConfig):
    """Recipe section ``synthetic`` for video: how synthetic clips are stored.

    ``parameterisation: full`` stores every frame of every synthetic clip (a PixelSet of clips).
    ``static_dynamic`` stores, per class, ``static_per_class`` still frames (default: the budget,
    one per video) and ``dynamic_per_class`` dynamic memories (``dynamic_channels`` × frames ×
    (size / ``dynamic_scale``)²), combined by a small integrator network (``integrator_width``
    hidden channels, learned with ``integrator_lr``). ``init: slide_window`` starts from the
    slide-window selection instead of random real clips.

    The published form (Wang et al., CVPR 2024) and mmdd's variant differ in three options:

    * ``integrator``: ``residual`` (mmdd: still + motion + a two-layer conv correction) or
      ``conv3d`` (as published: one 3×3×3 conv of [still, dynamic] is the video);
    * ``pairing``: ``fixed`` (mmdd: video ``j`` pairs still ``j mod static_per_class`` with dynamic
      memory ``j mod dynamic_per_class``) or ``random`` (as published: each video slot owns
      ``static_per_class / budget`` stills and ``dynamic_per_class / budget`` dynamic memories and
      draws one of each on every use; both default to 2 × the budget);
    * ``dynamic_init``: ``null`` (follows ``init``: a real clip's motion, downsampled, or small
      noise), ``motion``, or ``noise`` (as published: unit Gaussian noise), with ``dynamic_scale``
      (mmdd: 2; as published: 1, the full frame size).

    Slide-window selection (the ``slide_window`` baseline and init): a teacher network trained
    ``teacher_epochs`` on the real clips scores every window of ``frames`` frames, ``selection_stride``
    apart, of each training video read at ``selection_frames`` frames (default 2 × frames); the
    lowest-loss window of each video, then the lowest-loss videos of each class, are kept.
    """

    init: Literal["real", "noise", "slide_window"] = "real"
    parameterisation: Literal["full", "static_dynamic"] = "static_dynamic"
    static_per_class: int | None = None
    dynamic_per_class: int | None = None
    dynamic_channels: int = 1
    dynamic_scale: int = 2
    integrator_width: int = 16
    integrator_lr: float = 0.01
    integrator: Literal["residual", "conv3d"] = "residual"
    pairing: Literal["fixed", "random"] = "fixed"
    dynamic_init: Literal["motion", "noise"] | None = None
    selection_frames: int | None = None
    selection_stride: int = 2
    teacher_epochs: int = 20

    def check(self, path: str) -> list[str]:
        problems = super().check(path)
        problems += at_least(self, path, ("static_per_class", "dynamic_per_class", "dynamic_channels",
                                          "dynamic_scale", "integrator_width", "selection_frames",
                                          "selection_stride", "teacher_epochs"))
        problems += positive(self, path, ("integrator_lr",))
        if self.dynamic_init == "motion" and self.init == "noise":
            problems.append(f"{path}.dynamic_init: 'motion' takes a real clip's motion, but init is 'noise'; use "
                            "init: real or slide_window, or dynamic_init: noise")
        return problems
