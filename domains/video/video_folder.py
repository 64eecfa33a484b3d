"""Your own videos: one folder of video files per class, ``root/<class>/*.mp4``, no split files.

The test split (and, with ``val_fraction``, the validation split) is drawn here, seeded and
stratified per class, by :func:`mmdd.core.loading.plan_splits` — over the file list, before any
video is decoded, so a skipped (corrupt) file never moves another video to another split.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Unpack

import torch

from mmdd.core.checks import root_problems
from mmdd.core.data import class_folders, scan_class_folders
from mmdd.core.errors import DataError
from mmdd.core.loading import check_fraction, check_root, is_visible, name_some, plan_splits
from mmdd.core.registry import register_dataset

from .clips import (ClipKeywords, LoadPlan, VideoData, apply_restriction, chosen_classes, clip_keywords,
                    clip_request, finish_load, natural_key, restrict_classes, sorted_entries)
from .configs import ClipOptions

#: File endings (any case) read as videos: containers FFmpeg, and so decord, opens. Other files
#: (notes, thumbnails, subtitles) and hidden files are ignored.
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".avi", ".mkv", ".webm", ".mov", ".mpg", ".mpeg", ".wmv", ".flv",
                    ".3gp", ".ogv")


@dataclass
class VideoFolderConfig(ClipOptions):
    """Your own videos: ``root/<class>/<video>.mp4`` (or .avi, .mkv, .webm, .mov, ...), no split
    files; ``test_fraction`` of each class's videos is the test split (seeded by ``split_seed``),
    then ``val_fraction`` of the rest is the validation split."""

    name: str = "video_folder"
    root: str | None = None
    test_fraction: float = 0.2

    def check(self, path: str) -> list[str]:
        problems = root_problems(path, self.root, "one folder of video files per class (<class>/<video>.mp4)")
        if not 0 < self.test_fraction < 1:
            problems.append(f"{path}.test_fraction must be in (0, 1), got {self.test_fraction}; e.g. 0.2 "
                            "holds out 20 % of each class's videos for testing")
        elif 0 <= self.val_fraction < 1 and self.test_fraction + self.val_fraction >= 1:
            problems.append(f"{path}.test_fraction + {path}.val_fraction must be < 1 (train keeps the rest), "
                            f"got {self.test_fraction} + {self.val_fraction}")
        return problems + self.clip_problems(path)


def _folder_layout(root: Path) -> str:
    return (
        "expected one folder of video files per class (class names = sorted folder names), no split files:\n"
        f"  {root}/<class>/<video>.mp4   (e.g. {root}/jumping/clip_001.mp4)\n"
        f"video files: {' '.join(VIDEO_EXTENSIONS)} (any case), directly in the class folder; "
        "other files and hidden files are ignored"
    )


def _is_video(path: Path) -> bool:
    return path.is_file() and is_visible(path) and path.suffix.lower() in VIDEO_EXTENSIONS


def _video_files(class_dir: Path) -> list[Path]:
    """The visible video files directly in ``class_dir``, in natural-sort order of their names."""
    return sorted((p for p in class_dir.iterdir() if _is_video(p)), key=lambda p: natural_key(p.name))


def _scan(root: Path) -> tuple[list[tuple[Path, int]], list[str]]:
    """``(video, label)`` of every video (by class, then natural order) and the class names."""
    layout = _folder_layout(root)
    if not class_folders(root):
        loose = [p.name for p in sorted(root.iterdir(), key=lambda p: natural_key(p.name)) if _is_video(p)]
        if loose:
            raise DataError(
                f"video folder root {root} holds {len(loose)} video file(s) but no class folders:\n"
                f"{name_some(loose)}\nmove each video into a folder named after its class.\n{layout}"
            )
    return scan_class_folders(root, _video_files, layout, what="video files")


def load_video_folder(
    root: str | Path,
    *,
    test_fraction: float = 0.2,
    val_fraction: float = 0.0,
    split_seed: int = 0,
    **options: Unpack[ClipKeywords],
) -> VideoData:
    """Videos in a class-per-folder tree: ``root/<class>/<video>.mp4`` (no split files).

    Class names are the sorted visible sub-folders of ``root``; a class folder's videos are its
    visible files ending in one of :data:`VIDEO_EXTENSIONS` (any case; sub-folders are not read).
    A class folder without videos, or a root without class folders, is an error.

    Splits: :func:`~mmdd.core.loading.plan_splits` over every video, with one generator
    ``make_generator(split_seed)``: per class (in label order) one ``torch.randperm`` puts the
    first ``round(test_fraction·n_c)`` videos in test (clamped to ``[1, n_c - 1]`` when
    ``n_c ≥ 2``; a class with one video is train only); then, with ``val_fraction > 0``, the same
    rule over each class's remaining videos gives val. The rule is in ``info["split_rule"]``.
    The split is drawn over all classes before ``classes`` keeps a subset, so a video's split
    does not depend on which other classes are kept.

    ``options``: the clip options of every video loader (:class:`~.clips.ClipKeywords`);
    training clips start at random (seeded), val and test clips are centred.
    """
    opts = clip_request(**options)
    test_fraction = check_fraction(test_fraction, "test_fraction", zero=False, of="of each class's videos",
                                   example=0.2)
    val_fraction = check_fraction(val_fraction)
    root = check_root(root, "video folder", _folder_layout(Path(root).expanduser()))
    videos, all_names = _scan(root)
    labels = torch.tensor([label for _, label in videos], dtype=torch.long)
    plan = plan_splits(labels, test_fraction=test_fraction, val_fraction=val_fraction, seed=split_seed,
                       pool="all videos")
    parts = {"train": plan.train, "test": plan.test, **({"val": plan.val} if plan.val is not None else {})}
    entries = {s: [videos[i] for i in index.tolist()] for s, index in parts.items()}
    class_names, remap = restrict_classes(all_names, opts.classes, "video folder")
    rule = (
        f"class-stratified, seeded: per class (label order) one torch.randperm from make_generator({split_seed}); "
        f"the first round({test_fraction:g}*n_c) -> test (clamped to [1, n_c-1])"
        + (f", then round({val_fraction:g}*n_c) of the rest -> val (same generator)" if val_fraction > 0 else "")
        + "; the rest -> train"
    )
    load = LoadPlan(
        loader="video_folder",
        root=root,
        class_names=class_names,
        entries=sorted_entries(apply_restriction(entries, remap)),
        listed_in=f"the class folders of {root}",
        rule=rule,
        split_rule=plan.rule,
        options={"classes": chosen_classes(class_names, opts.classes), "test_fraction": test_fraction,
                 "val_fraction": val_fraction, "split_seed": int(split_seed)},
    )
    return finish_load(load, opts)


@register_dataset("video", "video_folder", config=VideoFolderConfig)
def read_video_folder(cfg: VideoFolderConfig) -> VideoData:
    # the validation split is drawn with the test split, from the file list: no with_val afterwards
    return load_video_folder(cfg.root, test_fraction=cfg.test_fraction, val_fraction=cfg.val_fraction,
                             split_seed=cfg.split_seed, **clip_keywords(cfg))
