"""Videos stored as pre-extracted frame images: ``root/<split>/<class>/<video>/<frame>``."""

from __future__ import annotations

from pathlib import Path
from typing import Unpack

from mmdd.core.data import class_folders
from mmdd.core.errors import DataError
from mmdd.core.loading import SPLIT_NAMES, check_root, is_visible
from mmdd.core.registry import register_dataset

from .clips import (FRAME_EXTENSIONS, ClipKeywords, LoadPlan, VideoData, apply_restriction, chosen_classes,
                    clip_keywords, clip_request, finish_load, restrict_classes, sorted_entries, with_val)
from .configs import FrameFoldersConfig


def _frames_layout(root: Path) -> str:
    exts = " ".join(FRAME_EXTENSIONS)
    return (
        "expected pre-extracted frames, one folder per video:\n"
        f"  {root}/train/<class>/<video>/<frame>.jpg   and   {root}/test/<class>/<video>/<frame>.jpg\n"
        f"  (optionally {root}/val/<class>/<video>/...; the same class folders in every split)\n"
        f"frames: {exts} (any case), read in natural-number order (img_2 before img_10)"
    )


def load_frame_folders(
    root: str | Path,
    **options: Unpack[ClipKeywords],
) -> VideoData:
    """Videos stored as frame images: ``root/<split>/<class>/<video>/<frame>.jpg|png``.

    ``train/`` and ``test/`` are required, ``val/`` is optional; each must hold the same class
    folders (class names = sorted train folder names). Every visible sub-folder of a class
    folder is one video; its frames are its image files in natural-sort order. A video folder
    without frames, or with a frame Pillow cannot decode, is an unreadable video (``on_error``).
    ``classes`` keeps a subset (sorted order, relabelled 0..K-1).

    ``options``: the clip options of every video loader (:class:`~.clips.ClipKeywords`).
    """
    opts = clip_request(**options)
    root = check_root(root, "frame folders", _frames_layout(Path(root).expanduser()))
    present = [s for s in SPLIT_NAMES if (root / s).is_dir()]
    for needed in ("train", "test"):
        if needed not in present:
            raise DataError(f"frame folders: {root / needed} does not exist.\n{_frames_layout(root)}")
    scanned: dict[str, dict[str, list[Path]]] = {}
    for s in present:
        cdirs = class_folders(root / s)
        if not cdirs:
            raise DataError(f"frame folders: {root / s} holds no class folders.\n{_frames_layout(root)}")
        scanned[s] = {
            c.name: [v for v in c.iterdir() if v.is_dir() and is_visible(v)] for c in cdirs
        }
    all_names = sorted(scanned["train"])
    for s, found in scanned.items():
        if sorted(found) != all_names:
            raise DataError(
                f"frame folders {root}: {s}/ has classes {sorted(found)} but train/ has {all_names}; "
                "expected the same class folders in each split"
            )
    entries = {s: [(v, all_names.index(c)) for c in all_names for v in found[c]] for s, found in scanned.items()}
    class_names, remap = restrict_classes(all_names, opts.classes, "frame folders")
    plan = LoadPlan(
        loader="frame_folders",
        root=root,
        class_names=class_names,
        entries=sorted_entries(apply_restriction(entries, remap)),
        listed_in=str(root),
        rule="folders: train/ -> train, test/ -> test" + (", val/ -> val" if "val" in present else ""),
        split_rule="folders train/, test/" + (", val/" if "val" in present else ""),
        options={"classes": chosen_classes(class_names, opts.classes)},
        frames_kind=True,
    )
    return finish_load(plan, opts)


@register_dataset("video", "frame_folders", config=FrameFoldersConfig)
def read_frame_folders(cfg: FrameFoldersConfig) -> VideoData:
    return with_val(load_frame_folders(cfg.root, **clip_keywords(cfg)), cfg)
