"""Your own audio-visual clips: video files with an audio track, one folder per class.

Two layouts, told apart by the folders under ``root``:

* ``root/<class>/<clip>.mp4`` — no split given: ``test_fraction`` of each class's clips is the test
  split (seeded, stratified, before any file is read);
* ``root/train/<class>/<clip>.mp4`` and ``root/test/<class>/…`` (optionally ``root/val/<class>/…``)
  — the splits are given (e.g. the generated audio-visual digits, split by speaker).

This is how a VGGSound or AudioSet subset is usually kept. One sample per clip: second ``second``
of the audio track and the frame at the middle of that second (:mod:`.clips`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from mmdd.core.checks import root_problems
from mmdd.core.data import class_folders, scan_class_folders
from mmdd.core.loading import check_root, hold_out_val, is_visible, plan_splits
from mmdd.core.registry import register_dataset

from .clips import AVData, AVEntry, AVLoadPlan, finish_av_load
from .configs import AVOptions, read_options

#: containers read as video files (any case)
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mkv", ".webm", ".mov", ".avi")
GIVEN_SPLITS = ("train", "val", "test")


@dataclass
class AVFolderConfig(AVOptions):
    """Video files with an audio track in class folders: ``root/<class>/<clip>.mp4`` (``test_fraction``
    of each class is the test split) or ``root/{train,test[,val]}/<class>/<clip>.mp4`` (given splits)."""

    name: str = "av_folder"
    root: str | None = None
    test_fraction: float = 0.2

    def check(self, path: str) -> list[str]:
        problems = root_problems(path, self.root, "video files with an audio track in class folders")
        if not 0 < self.test_fraction < 1:
            problems.append(f"{path}.test_fraction must be in (0, 1), got {self.test_fraction}")
        return problems + self.av_problems(path)


def _layout(root: Path) -> str:
    return ("expected video files with an audio track in one folder per class, either\n"
            f"  {root}/<class>/<clip>.mp4                (test_fraction of each class is held out), or\n"
            f"  {root}/train/<class>/<clip>.mp4 and {root}/test/<class>/<clip>.mp4 (optionally val/)\n"
            f"video files: {' '.join(VIDEO_EXTENSIONS)} (any case); other and hidden files are ignored")


def _videos(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and is_visible(p) and p.suffix.lower() in VIDEO_EXTENSIONS)


def _given_splits(root: Path) -> bool:
    names = {p.name for p in class_folders(root)}
    return {"train", "test"} <= names and names <= set(GIVEN_SPLITS)


def av_folder_plan(root: str | Path, *, second: int = 4, test_fraction: float = 0.2, split_seed: int = 0) -> AVLoadPlan:
    """The entries of an audio-visual class-folder tree (no file is read)."""
    root = check_root(root, "audio-visual folder", _layout(Path(root).expanduser()))
    layout = _layout(root)
    if _given_splits(root):
        train, class_names = scan_class_folders(root / "train", _videos, layout, what="video files")
        index = {n: i for i, n in enumerate(class_names)}
        entries = {"train": train}
        for split in ("val", "test"):
            if (root / split).is_dir():
                entries[split], _ = scan_class_folders(root / split, _videos, layout, class_to_idx=index,
                                                       what="video files")
        rule = "given: the train/" + ("val/" if "val" in entries else "") + "test folders"
        options = {"layout": "given splits"}
    else:
        files, class_names = scan_class_folders(root, _videos, layout, what="video files")
        labels = torch.tensor([label for _, label in files], dtype=torch.long)
        plan = plan_splits(labels, test_fraction=test_fraction, seed=split_seed, pool="all clips")
        entries = {"train": [files[i] for i in plan.train.tolist()], "test": [files[i] for i in plan.test.tolist()]}
        rule = plan.rule
        options = {"layout": "class folders", "test_fraction": test_fraction, "split_seed": split_seed}
    av_entries = {s: [AVEntry(Path(p), int(label), second) for p, label in items] for s, items in entries.items()}
    return AVLoadPlan("av_folder", root, class_names, av_entries, rule, {**options, "second": second})


@register_dataset("audio_visual", "av_folder", config=AVFolderConfig)
def read_av_folder(cfg: AVFolderConfig) -> AVData:
    plan = av_folder_plan(cfg.root, second=cfg.second, test_fraction=cfg.test_fraction, split_seed=cfg.split_seed)
    return hold_out_val(finish_av_load(plan, read_options(cfg)), cfg.val_fraction, cfg.split_seed)
